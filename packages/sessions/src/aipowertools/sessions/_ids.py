"""Validation of session ids, keys and namespaces: no path traversal, no key-pattern injection."""

from __future__ import annotations

import re

from aipowertools.core.errors import ConfigurationError

# Letters, digits and a few separators that mean nothing to a file system, a Redis glob pattern
# (``* ? [ ]``), an S3 prefix or SQL LIKE (``% _`` are fine because we never use LIKE on ids).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,199}")


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a safe name for ``what`` (session id, key, namespace)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a str, got {type(value).__name__}")
    if not _NAME.fullmatch(value) or ".." in value:
        raise ConfigurationError(
            f"invalid {what} {value!r}: use 1-200 characters from letters, digits and "
            "'_ . @ + = -', starting with a letter or digit and without '..' (this keeps ids "
            "from escaping their directory, prefix or key pattern)"
        )
    return value
