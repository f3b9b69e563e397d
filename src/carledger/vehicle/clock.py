"""Dates and times in vehicle rules: pure arithmetic on strings, never the wall clock.

Record dates (``date``, ``observed_on``...) are *Korean local dates*: the day printed
on the contract, the inspection form or the repair invoice. Korea keeps UTC+9 all
year (no daylight saving), so the local date of a block is the date of its UTC
block time plus nine hours. A record dated after the local date of the block that
commits it is refused (``date_in_future``): nobody can have observed tomorrow's
odometer. Gate events carry a UTC ``time`` and may be at most
:data:`CLOCK_SKEW_SECONDS` after the block time (device clocks drift).
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "LOCAL_OFFSET",
    "add_days",
    "days_between",
    "local_date",
    "seconds",
]

LOCAL_OFFSET = _dt.timedelta(hours=9)
CLOCK_SKEW_SECONDS = 300
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@lru_cache(maxsize=4096)
def _parse_time(text: str) -> _dt.datetime:
    # Accepts the shapes of block times and gate times: ...THH:MM:SS[.fff]Z.
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds(time: str) -> int:
    """Whole seconds since 1970 of a UTC time ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` (truncated)."""
    return (_parse_time(time) - _EPOCH) // _dt.timedelta(seconds=1)


def local_date(time: str) -> str:
    """The Korean local date (UTC+9) of a UTC time, ``YYYY-MM-DD``."""
    return (_parse_time(time) + LOCAL_OFFSET).date().isoformat()


@lru_cache(maxsize=8192)
def _ordinal(date: str) -> int:
    return _dt.date.fromisoformat(date).toordinal()


def days_between(earlier: str, later: str) -> int:
    """``later - earlier`` in days (negative when ``later`` is before ``earlier``)."""
    return _ordinal(later) - _ordinal(earlier)


def add_days(date: str, days: int) -> str:
    return _dt.date.fromordinal(_ordinal(date) + days).isoformat()
