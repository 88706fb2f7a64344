from __future__ import annotations

import io
import json
import re

import pytest

from aipowertools.callbacks import ConsoleSink, Redactor, StructuredLogger
from aipowertools.core.errors import ConfigurationError

OPENAI_KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234"
ANTHROPIC_KEY = "sk-ant-api03-ZyXwVuTsRqPoNmLkJiHg"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz"
GOOGLE = "AIzaSyA1234567890abcdefghijklmnopqrstu"
CUSTOM = "ACME-7f3a9c2e"
SECRETS = [OPENAI_KEY, ANTHROPIC_KEY, "eyJhbGciOiJIUzI1NiJ9", GOOGLE, CUSTOM, "hunter2", "s3cr3tpw"]


def test_secrets_never_reach_any_sink() -> None:
    buf = io.StringIO()
    log = StructuredLogger(
        "redact", store="memory://", sinks=[ConsoleSink(buf)], redact_patterns=[r"ACME-[0-9a-f]{8}"]
    )
    try:
        raise RuntimeError(f"provider said: invalid key {OPENAI_KEY} (header {BEARER})")
    except RuntimeError as exc:
        err = exc
    log.error(
        "call_failed",
        exc=err,
        message=f"retrying with {ANTHROPIC_KEY} and {CUSTOM}",
        headers={"Authorization": BEARER, "x-api-key": ANTHROPIC_KEY, "accept": "json"},
        api_key=OPENAI_KEY,
        config={"nested": [{"password": "hunter2"}, f"url=https://x/?api_key={GOOGLE}"]},
        dsn="postgresql://app:s3cr3tpw@db.internal:5432/prod",
    )
    log.flush()
    stored = json.dumps(log.query())
    printed = buf.getvalue()
    for secret in SECRETS:
        assert secret not in stored, secret
        assert secret not in printed, secret
    (event,) = log.query()
    assert event["headers"]["accept"] == "json"
    assert event["headers"]["Authorization"] == "[REDACTED]"
    assert event["error"]["type"] == "builtins.RuntimeError"
    assert "invalid key" in event["error"]["message"]
    assert "RuntimeError" in event["error"]["traceback"]
    assert event["dsn"] == "postgresql://app:[REDACTED]@db.internal:5432/prod"


def test_redactor_rules() -> None:
    r = Redactor()
    assert r.redact_text("Authorization: Bearer abcdefghijklmnop") == "Authorization: [REDACTED]"
    assert r.redact_text("api_key=sk-123456789012345678xyz&x=1") == "api_key=[REDACTED]&x=1"
    assert r.redact_text("AKIAABCDEFGHIJKLMNOP is aws") == "[REDACTED] is aws"
    assert r.redact_text("nothing to see") == "nothing to see"
    assert r.redact({"OPENAI_API_KEY": "x", "my_secret": "y", "n": 1, "f": 1.5, "b": None}) == {
        "OPENAI_API_KEY": "[REDACTED]",
        "my_secret": "[REDACTED]",
        "n": 1,
        "f": 1.5,
        "b": None,
    }
    assert r.redact(("a", {"token": "t"})) == ["a", {"token": "[REDACTED]"}]

    class Headers:
        def items(self):
            return [("authorization", "Basic abc")]

    assert r.redact(Headers()) == {"authorization": "[REDACTED]"}
    assert r.redact(object()).startswith("<object object")
    plain = Redactor([re.compile("foo")], keys=["pin"], defaults=False)
    assert plain.redact({"pin": 1, "api_key": "foo bar"}) == {
        "pin": "[REDACTED]",
        "api_key": "[REDACTED] bar",
    }
    assert (
        Redactor(defaults=False).redact_text("sk-abcdefghijklmnopqrstu")
        == "sk-abcdefghijklmnopqrstu"
    )
    with pytest.raises(ConfigurationError, match=r"redaction pattern '\(' is not a valid"):
        Redactor(["("])
    assert Redactor(["(?i)acme"]).redact_text("ACME corp") == "[REDACTED] corp"
