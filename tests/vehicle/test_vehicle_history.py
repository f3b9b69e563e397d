"""The history of a VIN: statuses, links, who signed."""

from __future__ import annotations

from typing import Any

from vehicle_payloads import h

from carledger.vehicle.history import Attribution, HistoryRecord, history

SHOP = (Attribution("k1", "repair-1", "repair-1", ("repair_shop",)),)
CITY = (Attribution("k2", "seoul-city", "registry-01", ("registry",)),)
OWNER = (Attribution("k3", None, None, ()),)


def rec(n: int, type_: str, payload: dict[str, Any], signers: Any = SHOP) -> HistoryRecord:
    return HistoryRecord(h(str(n)), type_, payload, signers, n, f"2026-03-02T00:00:0{n}.000Z")


def test_statuses_and_links() -> None:
    service = rec(1, "service.record", {"odometer_km": 10})
    fix = rec(2, "record.correct", {"target": service.id, "fields": {"odometer_km": 100}})
    other = rec(3, "odometer.reading", {"km": 5})
    dispute = rec(4, "record.dispute", {"target": other.id}, OWNER)
    upheld = rec(5, "dispute.resolve", {"dispute": dispute.id, "outcome": "upheld"}, CITY)
    open_one = rec(6, "record.dispute", {"target": service.id})
    entries = {e["id"]: e for e in history([service, fix, other, dispute, upheld, open_one])}
    # An open dispute outranks a correction; an upheld one makes the target void.
    assert entries[service.id]["status"] == "disputed"
    assert entries[service.id]["corrected_by"] == [fix.id]
    assert entries[service.id]["effective"] == {"odometer_km": 100}
    assert entries[service.id]["payload"] == {"odometer_km": 10}
    assert entries[fix.id]["corrects"] == service.id
    assert entries[other.id]["status"] == "void"
    assert entries[other.id]["voided_by"] == upheld.id
    assert entries[dispute.id]["outcome"] == "upheld"
    assert entries[dispute.id]["resolved_by"] == upheld.id
    assert entries[upheld.id]["resolves"] == dispute.id
    assert entries[open_one.id]["outcome"] == "open"
    assert entries[dispute.id]["signers"] == [
        {"key": "k3", "org": None, "member": None, "roles": []}
    ]


def test_a_voided_correction_no_longer_corrects() -> None:
    service = rec(1, "service.record", {"odometer_km": 10})
    fix = rec(2, "record.correct", {"target": service.id, "fields": {"odometer_km": 100}})
    dispute = rec(3, "record.dispute", {"target": fix.id})
    upheld = rec(4, "dispute.resolve", {"dispute": dispute.id, "outcome": "upheld"}, CITY)
    entries = {e["id"]: e for e in history([service, fix, dispute, upheld])}
    assert entries[fix.id]["status"] == "void"
    assert entries[service.id]["status"] == "valid"
    assert "effective" not in entries[service.id]


def test_a_rejected_dispute_leaves_the_record_valid() -> None:
    service = rec(1, "service.record", {"odometer_km": 10})
    dispute = rec(2, "record.dispute", {"target": service.id})
    rejected = rec(3, "dispute.resolve", {"dispute": dispute.id, "outcome": "rejected"}, CITY)
    entries = {e["id"]: e for e in history([service, dispute, rejected])}
    assert entries[service.id]["status"] == "valid"
    assert entries[service.id]["disputed_by"] == [dispute.id]
    assert entries[dispute.id]["outcome"] == "rejected"
