"""Dates and UTC times as signed data carries them: ASCII digits, real calendar values.

``\\d`` in a Python regex also matches Arabic-Indic or fullwidth digits, and a
regex alone accepts 2026-02-30; these checks do neither.
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["DATE_RE", "is_date", "is_utc_time"]

DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_TIME_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?Z", re.ASCII
)


def is_date(text: object) -> bool:
    """True for a real calendar date written ``YYYY-MM-DD``."""
    if not isinstance(text, str) or not DATE_RE.fullmatch(text):
        return False
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def is_utc_time(text: object, *, fraction: tuple[int, int] = (0, 6)) -> bool:
    """True for ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` naming a real instant.

    ``fraction`` bounds the number of fractional-second digits (min, max).
    """
    if not isinstance(text, str):
        return False
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return False
    digits = len(match.group(3) or ".") - 1
    if not fraction[0] <= digits <= fraction[1]:
        return False
    try:
        _dt.datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}")
    except ValueError:
        return False
    return True
