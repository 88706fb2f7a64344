"""The simulator opens its port without importing litellm (its import takes seconds).

Checked in a fresh interpreter by what is imported, not by timing: starting a
``Simulator`` (and listing its models over HTTP) leaves ``litellm`` out of ``sys.modules``;
the first request that needs token counts loads it.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys, urllib.request
from aipowertools.testing import SimModel, Simulator

sim = Simulator(models=[SimModel("gpt-4o-mini")]).start()
after_start = "litellm" in sys.modules
with urllib.request.urlopen(sim.base_url("openai") + "/models") as r:
    listed = json.load(r)["data"][0]["id"]
after_listing = "litellm" in sys.modules
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
request = urllib.request.Request(
    sim.base_url("openai") + "/chat/completions",
    data=body.encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as r:
    usage = json.load(r)["usage"]
sim.stop()
print(json.dumps([after_start, listed, after_listing, usage["prompt_tokens"] > 0,
                  "litellm" in sys.modules]))
"""


def test_starting_the_simulator_does_not_import_litellm() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    after_start, listed, after_listing, counted, loaded = json.loads(out.stdout.splitlines()[-1])
    assert after_start is False
    assert listed == "gpt-4o-mini"
    assert after_listing is False
    assert counted
    assert loaded is True  # loaded where it is needed: counting the first prompt
