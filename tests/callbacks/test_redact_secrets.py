"""Secrets are redacted however short: configured values verbatim, and short sk- keys."""

from __future__ import annotations

import pytest

from aipowertools.callbacks._redact import REDACTED, Redactor


@pytest.mark.parametrize(
    "text",
    ["sk-1234", "key sk-test-SECRET123 here", "Authorization: sk-proj-abc_DEF-1234567890abcdef"],
)
def test_short_and_long_sk_keys(text: str) -> None:
    out = Redactor().redact_text(text)
    assert "sk-" not in out
    assert REDACTED in out


def test_configured_values_verbatim_whatever_their_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYPROXY_API_KEY", "px42")
    monkeypatch.setenv("SOME_TOKEN", "false")  # a setting, not a secret
    r = Redactor(secrets=["k9", ""])
    assert (
        r.redact_text("proxy key px42 and k9 used") == f"proxy key {REDACTED} and {REDACTED} used"
    )
    assert r.redact({"note": "k9"}) == {"note": REDACTED}
    assert r.redact_text("flag false") == "flag false"
    assert Redactor(defaults=False).redact_text("px42") == "px42"


def test_ordinary_words_are_kept() -> None:
    assert Redactor().redact_text("a risk-free task-list") == "a risk-free task-list"
