"""Odometer flags: any sequence of readings (and exceptions, and voided readings) gets the
flags the definitions give, checked against a naive reference beside the fold."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from vehicle_payloads import h, vin_for

from carledger.encoding import canonical
from carledger.vehicle.facts import facts
from carledger.vehicle.fold import Record, fold
from carledger.vehicle.odometer import GAP_DAYS, MAX_KM_PER_DAY, MAX_PLAUSIBLE_KM

VIN = vin_for(1)
DAY0 = datetime.date(2015, 1, 1)


def _day(offset: int) -> str:
    return (DAY0 + datetime.timedelta(days=offset)).isoformat()


# An event: ("r", day, km) a reading, ("x", day, old, new) an exception,
# ("v", index) void the index-th reading accepted so far (a dispute upheld).
reading = st.tuples(st.just("r"), st.integers(0, 4000), st.integers(0, 2_200_000))
small_steps = st.tuples(st.just("r"), st.integers(0, 4000), st.integers(0, 400_000))
exception = st.tuples(
    st.just("x"), st.integers(0, 4000), st.integers(0, 400_000), st.integers(0, 1000)
)
void = st.tuples(st.just("v"), st.integers(0, 30))
events = st.lists(
    st.one_of(reading, small_steps, small_steps, exception, void), min_size=1, max_size=30
)


def _records(evs: list[tuple[Any, ...]]) -> list[Record]:
    records: list[Record] = []
    readings: list[str] = []
    prev: str | None = None
    for i, ev in enumerate(evs):
        rid = h(f"record-{i}")
        if ev[0] == "r":
            payload = {
                "vin": VIN,
                "prev": prev,
                "km": ev[2],
                "observed_on": _day(ev[1]),
                "source": "service",
            }
            rec = Record(
                rid, "odometer.reading", payload, ("k",), i + 1, "2026-03-02T00:00:00.000Z"
            )
            readings.append(rid)
        elif ev[0] == "x":
            payload = {
                "vin": VIN,
                "prev": prev,
                "date": _day(ev[1]),
                "old_km": ev[2],
                "new_km": ev[3],
                "reason": "cluster_replaced",
                "evidence_hash": h("e"),
            }
            rec = Record(
                rid, "odometer.exception", payload, ("k",), i + 1, "2026-03-02T00:00:00.000Z"
            )
            readings.append(rid)
        else:
            if not readings or ev[1] >= len(readings):
                continue
            target = readings[ev[1]]
            dispute = Record(
                rid,
                "record.dispute",
                {
                    "vin": VIN,
                    "prev": prev,
                    "target": target,
                    "reason": "x",
                    "evidence_hash": h("e"),
                },
                ("k",),
                i + 1,
                "2026-03-02T00:00:00.000Z",
            )
            records.append(dispute)
            rid = h(f"resolve-{i}")
            rec = Record(
                rid,
                "dispute.resolve",
                {
                    "vin": VIN,
                    "prev": dispute.id,
                    "dispute": dispute.id,
                    "outcome": "upheld",
                    "reason": "x",
                },
                ("k",),
                i + 1,
                "2026-03-02T00:00:00.000Z",
            )
        records.append(rec)
        prev = rec.id
    return records


def _naive(records: list[Record]) -> dict[str, list[str]]:
    """Flags straight from the definitions, without the fold's data structures."""
    voided = set()
    disputes = {r.id: r.payload["target"] for r in records if r.type == "record.dispute"}
    for r in records:
        if r.type == "dispute.resolve" and r.payload["outcome"] == "upheld":
            voided.add(disputes[r.payload["dispute"]])
    # (date, acceptance order, kind, km or baseline, id); kind 0 reading, 1 exception.
    items = []
    for n, r in enumerate(records):
        if r.id in voided:
            continue
        if r.type == "odometer.reading":
            items.append((r.payload["observed_on"], n, 0, r.payload["km"], r.id))
        elif r.type == "odometer.exception":
            items.append((r.payload["date"], n, 0, r.payload["old_km"], r.id))
            items.append((r.payload["date"], n, 1, r.payload["new_km"], r.id))
    items.sort()
    flags: dict[str, list[str]] = {}
    for i, (on, _n, kind, km, rid) in enumerate(items):
        if kind == 1:
            continue
        out: list[str] = []
        # The reference: the latest earlier baseline or good reading.
        reference = None
        for j in range(i - 1, -1, -1):
            e_on, _, e_kind, e_km, e_id = items[j]
            if e_kind == 1 or "good" in flags.get(f"{e_id}/{j}", []):
                reference = (e_on, e_km)
                break
        if km > MAX_PLAUSIBLE_KM:
            out.append("implausible")
        elif reference is not None and km < reference[1]:
            out.append("rollback")
        elif reference is not None:
            days = (
                datetime.date.fromisoformat(on) - datetime.date.fromisoformat(reference[0])
            ).days
            if km - reference[1] > MAX_KM_PER_DAY * max(1, days):
                out.append("implausible")
        earlier = [it for it in items[:i] if it[2] == 0]
        if earlier:
            gap = (
                datetime.date.fromisoformat(on) - datetime.date.fromisoformat(earlier[-1][0])
            ).days
            if gap > GAP_DAYS:
                out.append("gap")
        if "rollback" not in out and "implausible" not in out:
            flags[f"{rid}/{i}"] = [*out, "good"]
        else:
            flags[f"{rid}/{i}"] = out
    return {key.split("/")[0]: [f for f in v if f != "good"] for key, v in flags.items()}


def _fold_all(records: list[Record]) -> dict[str, Any] | None:
    state = None
    for r in records:
        state = fold(VIN, state, r)
    return state


@settings(max_examples=300, deadline=None)
@given(events)
def test_flags_match_the_definitions(evs: list[tuple[Any, ...]]) -> None:
    records = _records(evs)
    state = _fold_all(records)
    if state is None:
        return
    expected = _naive(records)
    got = {r["id"]: r["flags"] for r in state["odometer"]["readings"] if not r.get("void")}
    assert got == expected
    # Every flag is explained to the reader.
    explained = facts(state, "2026-03-02T00:00:00.000Z")
    rollbacks = sum("rollback" in f for f in got.values())
    assert sum(f["code"] == "odometer_rollback" for f in explained) == rollbacks
    implausible = sum("implausible" in f for f in got.values())
    assert sum(f["code"] == "odometer_implausible" for f in explained) == implausible


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 2_000)), min_size=1, max_size=40))
def test_a_plausible_rising_odometer_has_no_flags(steps: list[tuple[int, int]]) -> None:
    day, km, evs = 0, 0, []
    for days, delta in steps:
        day += days
        km += min(delta, MAX_KM_PER_DAY * max(1, days))
        evs.append(("r", day, km))
    state = _fold_all(_records(evs))
    assert state is not None
    assert all(r["flags"] == [] for r in state["odometer"]["readings"])


@settings(max_examples=100, deadline=None)
@given(events)
def test_folding_twice_gives_the_same_bytes_and_never_mutates(evs: list[tuple[Any, ...]]) -> None:
    records = _records(evs)
    state_a: dict[str, Any] | None = None
    state_b: dict[str, Any] | None = None
    for r in records:
        before = None if state_a is None else canonical.encode(state_a)
        new_a = fold(VIN, state_a, r)
        if state_a is not None:
            assert canonical.encode(state_a) == before  # the input is untouched
        state_a = new_a
        state_b = fold(VIN, state_b, r)
        assert canonical.encode(state_a) == canonical.encode(state_b)


def test_exception_makes_a_new_baseline() -> None:
    evs = [("r", 0, 150_000), ("x", 10, 150_100, 0), ("r", 20, 900), ("r", 30, 600)]
    state = _fold_all(_records(evs))
    assert state is not None
    flags = [r["flags"] for r in state["odometer"]["readings"]]
    # 150,000; the old unit's last reading 150,100; 900 (fine, new unit); 600 (rollback).
    assert flags == [[], [], [], ["rollback"]]


def test_back_dated_reading_is_judged_in_time_order() -> None:
    evs = [("r", 0, 10_000), ("r", 100, 50_000), ("r", 50, 60_000)]
    state = _fold_all(_records(evs))
    assert state is not None
    readings = state["odometer"]["readings"]
    assert [r["km"] for r in readings] == [10_000, 60_000, 50_000]
    assert [r["flags"] for r in readings] == [[], [], ["rollback"]]


def test_gap_and_trailing_gap() -> None:
    evs = [("r", 0, 10_000), ("r", GAP_DAYS + 1, 20_000)]
    state = _fold_all(_records(evs))
    assert state is not None
    assert state["odometer"]["readings"][1]["flags"] == ["gap"]
    as_of = (DAY0 + datetime.timedelta(days=2 * GAP_DAYS + 5)).isoformat() + "T00:00:00.000Z"
    gaps = [f for f in facts(state, as_of) if f["code"] == "odometer_gap"]
    assert len(gaps) == 2


def test_thresholds_are_exclusive() -> None:
    at_limits = [  # exactly at each limit: no flag
        ("r", 0, 1_000),
        ("r", GAP_DAYS, 101_000),
        ("r", GAP_DAYS + 10, 101_000 + 10 * MAX_KM_PER_DAY),
        ("r", GAP_DAYS + 10, 101_000 + 11 * MAX_KM_PER_DAY),  # the same day counts as one
    ]
    state = _fold_all(_records(at_limits))
    assert state is not None
    flags = [r["flags"] for r in state["odometer"]["readings"]]
    assert flags == [[], [], [], []]
    over = [
        ("r", 0, 1_000),
        ("r", GAP_DAYS + 1, 1_000),
        ("r", GAP_DAYS + 2, 1_000 + MAX_KM_PER_DAY + 1),
        ("r", GAP_DAYS + 3, MAX_PLAUSIBLE_KM + 1),
        ("r", GAP_DAYS + 4, MAX_PLAUSIBLE_KM),
    ]
    state = _fold_all(_records(over))
    assert state is not None
    assert [r["flags"] for r in state["odometer"]["readings"]] == [
        [],
        ["gap"],
        ["implausible"],
        ["implausible"],
        ["implausible"],  # 2,000,000 is not above the limit, but rose too fast
    ]


# Mostly forward in time (the usual case, where the fold flags a new reading alone).
forward = st.lists(
    st.one_of(
        st.tuples(st.just("r"), st.integers(0, 900), st.integers(0, 2_100_000)),
        st.tuples(st.just("r"), st.integers(0, 40), st.integers(0, 150_000)),
        st.tuples(st.just("r"), st.integers(0, 40), st.integers(0, 150_000)),
        exception,
        void,
    ),
    min_size=1,
    max_size=30,
)


def _forward_days(evs: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Days as steps from the previous event (readings and exceptions), so most go forward;
    an exception keeps its own day to go backwards now and then."""
    day, out = 0, []
    for ev in evs:
        if ev[0] == "r":
            day += ev[1]
            out.append(("r", day, ev[2]))
        else:
            out.append(ev)
    return out


@settings(max_examples=400, deadline=None)
@given(st.one_of(forward.map(_forward_days), events))
def test_the_latest_reading_is_flagged_as_the_whole_series_would_be(
    evs: list[tuple[Any, ...]],
) -> None:
    """fold's constant-time path (odometer.append_flagged) gives, record by record, the
    very state (same canonical bytes) that re-flagging the whole series gives."""
    import carledger.vehicle.fold as fold_module
    from carledger.vehicle.odometer import flag_series

    records = _records(evs)
    fast = slow = None
    original = fold_module.append_flagged
    for r in records:
        fast = fold(VIN, fast, r)
        fold_module.append_flagged = lambda *args: None  # type: ignore[assignment]
        try:
            slow = fold(VIN, slow, r)
        finally:
            fold_module.append_flagged = original
        assert canonical.encode(fast) == canonical.encode(slow)
        odo = fast["odometer"]
        assert odo["readings"] == flag_series(odo["readings"], odo["exceptions"])
