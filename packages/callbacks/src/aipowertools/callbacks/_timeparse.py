"""Parsing of the time bounds accepted by ``query``."""

from __future__ import annotations

import datetime as dt

from aipowertools.core.errors import ConfigurationError


def to_epoch(
    value: str | float | dt.datetime | dt.date | None, *, end: bool = False
) -> float | None:
    """Convert a time bound to epoch seconds (UTC when no zone is given).

    A bare date (``"2026-01-31"`` or a ``date``) as an ``end`` bound means the end of that day,
    so ``start_time="2026-01-01", end_time="2026-01-31"`` covers all of January.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(
            f"time bound must be a date, datetime, ISO string or epoch, not {value!r}"
        )
    if isinstance(value, (int, float)):
        return float(value)
    date_only = False
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
        date_only = True
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                moment = dt.datetime.fromisoformat(text)
                date_only = True
            else:
                moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"cannot read time bound {value!r}: use an ISO date or datetime such as "
                "'2026-01-31' or '2026-01-31T12:00:00+00:00', a datetime, or epoch seconds"
            ) from None
    else:
        raise ConfigurationError(
            f"time bound must be a date, datetime, ISO string or epoch, not {type(value).__name__}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if date_only and end:
        moment = moment + dt.timedelta(days=1)
        return moment.timestamp() - 1e-6
    return moment.timestamp()
