"""Redaction of secrets before an event reaches any sink.

Two rules run over every event: values of sensitive keys (``api_key``, ``authorization``,
``password`` ...) are replaced whole, and every string anywhere in the event is scanned for
secret-looking substrings (provider API keys, bearer tokens, basic-auth URLs, configured
patterns) which are replaced in place.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from aipowertools.core.errors import ConfigurationError

REDACTED = "[REDACTED]"

_DEFAULT_PATTERNS: tuple[str, ...] = (
    # Bearer / token authorization values.
    r"(?i)\b(?:bearer|token)\s+[A-Za-z0-9._~+/=-]{8,}",
    # Provider keys: OpenAI / Anthropic / OpenRouter style (sk-..., sk-ant-..., sk-proj-...).
    # Short ones too: test and proxy keys such as sk-1234 or sk-test-SECRET123.
    r"\bsk-[A-Za-z0-9_-]{4,}",
    # Google API keys.
    r"\bAIza[0-9A-Za-z_-]{30,}",
    # AWS access key ids.
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    # GitHub tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    # Hugging Face, Groq, xAI, Slack tokens.
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\bgsk_[A-Za-z0-9]{30,}",
    r"\bxai-[A-Za-z0-9]{30,}",
    r"\bxox[abpr]-[A-Za-z0-9-]{10,}",
    # JWTs.
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    # key=value pairs in query strings, env dumps and error messages.
    r"(?i)\b(?:api[_-]?key|access[_-]?token|secret|password|passwd)\s*[=:]\s*[^\s&'\",;]+",
)

_BUILTIN = re.compile(
    "|".join(f"(?i:{p[4:]})" if p.startswith("(?i)") else f"(?:{p})" for p in _DEFAULT_PATTERNS)
)
# Lower-cased literals one of which every built-in pattern's match contains.
_TRIGGERS = (
    "bearer", "token", "sk-", "aiza", "akia", "asia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "hf_", "gsk_", "xai-", "xox", "eyj", "key", "secret", "passw",
)  # fmt: skip

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")

# Credentials inside URLs: scheme://user:password@host -> keep user, drop password.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)")

_SENSITIVE_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "token",
        "cookie",
        "set-cookie",
        "x-goog-api-key",
        "openai_api_key",
        "anthropic_api_key",
    }
)


class Redactor:
    """Removes secrets from event fields, nested containers, exceptions and headers.

    Args:
        patterns: Extra regular expressions whose matches are replaced with ``[REDACTED]``.
        keys: Extra field names whose values are always replaced whole (case-insensitive).
        defaults: Whether to apply the built-in key and pattern rules.
        secrets: Secret values replaced verbatim wherever they appear, whatever their length.
            With ``defaults``, the values of environment variables named like credentials
            (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``; 4 characters or more)
            are added, so a configured provider key never reaches a sink, however short.

    Example:
        >>> Redactor().redact_text("Authorization: Bearer abcdefghijklmnop")
        'Authorization: [REDACTED]'
    """

    def __init__(
        self,
        patterns: Iterable[str | re.Pattern[str]] = (),
        *,
        keys: Iterable[str] = (),
        defaults: bool = True,
        secrets: Iterable[str] = (),
    ) -> None:
        custom: list[str] = []
        for pattern in patterns:
            custom.append(pattern.pattern if isinstance(pattern, re.Pattern) else pattern)
        for source in custom:
            try:
                re.compile(source)
            except re.error as exc:
                raise ConfigurationError(
                    f"redaction pattern {source!r} is not a valid regular expression ({exc}); "
                    "escape literal text with re.escape()"
                ) from None
        self._defaults = defaults
        self._builtin = _BUILTIN if defaults else None
        self._custom = re.compile("|".join(_scoped(s) for s in custom)) if custom else None
        self._url = _URL_PASSWORD if defaults else None
        self._keys = frozenset(k.lower() for k in keys) | (_SENSITIVE_KEYS if defaults else set())
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}
        values = {v for v in secrets if isinstance(v, str) and v}
        if defaults:
            values |= _environment_secrets()
        self._secrets = tuple(sorted(values, key=len, reverse=True))
        self._literal = (
            re.compile("|".join(re.escape(v) for v in self._secrets)) if self._secrets else None
        )

    def is_sensitive_key(self, key: str) -> bool:
        """Whether values stored under ``key`` are always replaced whole."""
        known = self._key_cache.get(key)
        if known is None:
            lowered = key.lower()
            known = lowered in self._keys or lowered.endswith(("_api_key", "-api-key", "_secret"))
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = known
        return known

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every secret-looking substring replaced."""
        # Short strings (names, models, event types) repeat a lot: remember their result.
        cache = self._text_cache
        hit = cache.get(text)
        if hit is not None:
            return hit
        if len(text) > 128:
            return self._redact_text(text)
        if self._custom is None and _UUID.match(text):
            return text  # run and span ids: nothing secret can look like this
        hit = self._redact_text(text)
        if len(cache) >= 4096:
            cache.clear()
        cache[text] = hit
        return hit

    def _redact_text(self, text: str) -> str:
        if self._literal is not None and any(v in text for v in self._secrets):
            text = self._literal.sub(REDACTED, text)
        if self._builtin is not None and len(text) >= 7:
            if self._url is not None and "://" in text:
                text = self._url.sub(r"\g<head>" + REDACTED, text)
            # Every built-in pattern starts with one of a few literals: look for those first,
            # which is several times cheaper than running the combined expression.
            lowered = text.lower()
            if any(trigger in lowered for trigger in _TRIGGERS):
                text = self._builtin.sub(_replacement, text)
        if self._custom is not None:
            text = self._custom.sub(_replacement, text)
        return text

    def redact(self, value: Any) -> Any:
        """Return a redacted, JSON-friendly copy of ``value`` (dicts, lists, exceptions ...)."""
        kind = type(value)
        if kind is str:
            return self.redact_text(value)
        if value is None or kind is int or kind is float or kind is bool:
            return value
        if kind is list or kind is tuple:  # before the (slow) Mapping ABC check
            return [self.redact(v) for v in value]
        if kind is dict or isinstance(value, Mapping):
            out = {}
            known = self._key_cache
            texts = self._text_cache
            for k, v in value.items():
                key = k if type(k) is str else str(k)
                sensitive = known.get(key)
                if sensitive is None:
                    sensitive = self.is_sensitive_key(key)
                vkind = type(v)
                if sensitive:
                    out[key] = REDACTED
                elif vkind is str:
                    hit = texts.get(v)  # the cached result of redact_text, inline
                    out[key] = hit if hit is not None else self.redact_text(v)
                elif v is None or vkind is int or vkind is float or vkind is bool:
                    out[key] = v
                else:
                    out[key] = self.redact(v)
            return out
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.redact(v) for v in value]
        if isinstance(value, BaseException):
            return self.redact_exception(value)
        if hasattr(value, "items") and callable(value.items):  # httpx.Headers and friends
            try:
                return self.redact(dict(value.items()))
            except Exception:  # pragma: no cover - exotic mapping types
                pass
        return self.redact_text(str(value))

    def redact_exception(self, exc: BaseException) -> dict[str, Any]:
        """Describe an exception (type, message, traceback) with secrets removed."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return {
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": self.redact_text(str(exc)),
            "traceback": self.redact_text(text),
        }


_CREDENTIAL_NAME = re.compile(r"(?i)(?:API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD)$")


def _environment_secrets() -> set[str]:
    """Values of credential-named environment variables (long enough not to be noise)."""
    return {
        value
        for name, value in os.environ.items()
        if len(value) >= 4 and _CREDENTIAL_NAME.search(name) and value.lower() not in _NOT_SECRET
    }


# Values such variables hold that are settings, not secrets.
_NOT_SECRET = frozenset({"true", "false", "none", "null"})


def _scoped(source: str) -> str:
    # Global inline flags such as "(?i)" must become scoped ones to be combined with "|".
    match = re.match(r"^\(\?([aiLmsux]+)\)", source)
    if match:
        return f"(?{match.group(1)}:{source[match.end() :]})"
    return f"(?:{source})"


def _replacement(match: re.Match[str]) -> str:
    text = match.group(0)
    # Keep the label of "key=value" / "Bearer xyz" so the log still says what was there.
    for sep in ("=", ":"):
        head, found, _ = text.partition(sep)
        if found and any(w in head.lower() for w in ("key", "token", "secret", "pass")):
            return f"{head}{sep}{REDACTED}"
    return REDACTED
