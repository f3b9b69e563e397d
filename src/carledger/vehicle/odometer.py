"""Odometer series and their flags: ``rollback``, ``implausible``, ``gap``.

A reading is kept forever, whatever it says: a rolled-back reading is evidence that
someone recorded it, so it is flagged, never refused. The flags of the whole series
are recomputed whenever a reading, an exception, a correction or a void changes it,
because a reading may be back-dated between two earlier ones.

Definitions (``docs/records.md`` repeats them for readers). Readings and
``odometer.exception`` baselines are taken in time order: by date, then by the order
in which the records were accepted (``n``). Void readings are ignored.

- The *last good reading* starts empty. An exception (instrument cluster or ECU
  replaced) sets it to ``(new_km, date)``: later readings are judged from the new
  baseline.
- A reading above :data:`MAX_PLAUSIBLE_KM` is ``implausible``.
- Otherwise a reading below the last good reading is ``rollback``.
- Otherwise a reading that rose more than :data:`MAX_KM_PER_DAY` times
  ``max(1, days)`` since the last good reading is ``implausible``.
- Otherwise the reading is good and becomes the last good reading.
- A reading more than :data:`GAP_DAYS` days after the previous (non-void) reading
  also carries ``gap``. :func:`trailing_gap_days` measures the open gap up to a
  reference date.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from carledger.vehicle.clock import days_between

__all__ = [
    "GAP_DAYS",
    "MAX_KM_PER_DAY",
    "MAX_PLAUSIBLE_KM",
    "append_flagged",
    "flag_series",
    "insert_sorted",
    "reading_flags",
    "trailing_gap_days",
]

MAX_PLAUSIBLE_KM = 2_000_000
MAX_KM_PER_DAY = 3_000
#: Two years without any reading: Korean periodic inspections (정기검사) come every
#: one to two years, so a longer silence means readings are missing.
GAP_DAYS = 730


def insert_sorted(items: Sequence[dict[str, Any]], item: dict[str, Any]) -> list[dict[str, Any]]:
    """A new list with ``item`` placed by (``on``, ``n``); ``items`` is left untouched."""
    key = (item["on"], item["n"])
    i = len(items)
    while i > 0 and (items[i - 1]["on"], items[i - 1]["n"]) > key:
        i -= 1
    return [*items[:i], item, *items[i:]]


def _flags(
    readings: Sequence[dict[str, Any]], exceptions: Sequence[dict[str, Any]]
) -> list[list[str]]:
    # At the same (date, n) a reading comes before an exception: the exception's own
    # record reports the old cluster's last reading, then resets the baseline.
    events: list[tuple[str, int, int, int]] = [
        (r["on"], r["n"], 0, i) for i, r in enumerate(readings) if not r.get("void")
    ]
    events += [(e["on"], e["n"], 1, j) for j, e in enumerate(exceptions) if not e.get("void")]
    events.sort()
    flags: list[list[str]] = [[] for _ in readings]
    good: tuple[int, str] | None = None
    previous_on: str | None = None
    for on, _n, kind, index in events:
        if kind == 1:
            good = (exceptions[index]["new"], on)
            continue
        km = readings[index]["km"]
        flags[index] = found = reading_flags(km, on, good, previous_on)
        if "rollback" not in found and "implausible" not in found:
            good = (km, on)
        previous_on = on
    return flags


def reading_flags(
    km: int, on: str, good: tuple[int, str] | None, previous_on: str | None
) -> list[str]:
    """The flags of a reading of ``km`` on ``on``, after the last good reading or
    exception ``good`` (km, date) and the previous non-void reading's date."""
    out: list[str] = []
    if km > MAX_PLAUSIBLE_KM:
        out.append("implausible")
    elif good is not None and km < good[0]:
        out.append("rollback")
    elif good is not None and km - good[0] > MAX_KM_PER_DAY * max(1, days_between(good[1], on)):
        out.append("implausible")
    if previous_on is not None and days_between(previous_on, on) > GAP_DAYS:
        out.append("gap")
    return out


def flag_series(
    readings: Sequence[dict[str, Any]], exceptions: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``readings`` with their ``flags`` recomputed; unchanged entries are reused as is.

    Precondition: both lists are sorted by (``on``, ``n``) (see :func:`insert_sorted`).
    Entries are never mutated: a reading whose flags change is copied.
    """
    out: list[dict[str, Any]] = []
    for reading, flags in zip(readings, _flags(readings, exceptions), strict=True):
        out.append(reading if reading["flags"] == flags else {**reading, "flags": flags})
    return out


def append_flagged(
    readings: Sequence[dict[str, Any]],
    exceptions: Sequence[dict[str, Any]],
    reading: dict[str, Any],
) -> list[dict[str, Any]] | None:
    """``flag_series(insert_sorted(readings, reading), exceptions)`` in constant time when
    ``reading`` (not void) comes after every reading and exception; None otherwise.

    Precondition, besides :func:`flag_series`'s: ``readings`` carry the flags
    :func:`flag_series` gives them (every state the fold builds does: it recomputes
    them whenever the series changes). A reading's flags depend only on the events
    before it, so those of the earlier readings stay, and the state at the end of the
    series is read off them: the last good reading is the last event that set it (an
    exception, or a reading flagged neither ``rollback`` nor ``implausible``), and the
    previous date is that of the last non-void reading. A new reading usually is the
    latest, so each record no longer re-flags the car's whole history.
    ``tests/vehicle/test_vehicle_odometer.py`` checks it against the full recompute.
    """
    if reading.get("void"):
        return None
    key = (reading["on"], reading["n"], 0)
    last_reading: dict[str, Any] | None = None
    good: tuple[tuple[str, int, int], int, str] | None = None  # (event key, km, on)
    for r in reversed(readings):  # sorted: the first one looked at is the latest
        if (r["on"], r["n"], 0) >= key:
            return None
        if r.get("void"):
            continue
        if last_reading is None:
            last_reading = r
        if "rollback" not in r["flags"] and "implausible" not in r["flags"]:
            good = ((r["on"], r["n"], 0), r["km"], r["on"])
            break
    for e in exceptions:  # few; not assumed sorted here
        if (e["on"], e["n"], 1) >= key:
            return None
        if not e.get("void") and (good is None or (e["on"], e["n"], 1) > good[0]):
            good = ((e["on"], e["n"], 1), e["new"], e["on"])
    flags = reading_flags(
        reading["km"],
        reading["on"],
        None if good is None else (good[1], good[2]),
        None if last_reading is None else last_reading["on"],
    )
    return [*readings, reading if reading["flags"] == flags else {**reading, "flags": flags}]


def trailing_gap_days(readings: Sequence[dict[str, Any]], as_of_date: str) -> int | None:
    """Days from the latest non-void reading to ``as_of_date`` (None without readings)."""
    dates = [r["on"] for r in readings if not r.get("void")]
    if not dates:
        return None
    return days_between(max(dates), as_of_date)
