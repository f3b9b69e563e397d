"""Derived facts for a reference time, cross-source inconsistencies, and corrections that
are themselves voided."""

from __future__ import annotations

from typing import Any

import vehicle_payloads as P
from vehicle_payloads import MARKET, Car

from carledger.vehicle.facts import facts


def _flags(state: dict[str, Any], as_of: str, code: str) -> list[dict[str, Any]]:
    return [f for f in facts(state, as_of) if f["code"] == code]


def test_car_not_present_depends_on_the_reference_time(ledger: Any) -> None:
    car = Car(ledger).in_market()
    listing = car.listed()
    ledger.advance(hours=1)
    car.left()
    exit_id = car.state["head"]
    left_at = ledger.block_time
    state = car.state
    assert _flags(state, "2026-03-03T00:59:00.000Z", "car_not_present") == []
    [flag] = _flags(state, "2026-03-03T01:00:01.000Z", "car_not_present")
    assert flag["severity"] == "critical" and flag["records"] == [listing, exit_id]
    assert left_at in flag["message"]
    # It comes back after two days: the episode stays on the record.
    ledger.advance(days=2)
    car.entered()
    state = car.state
    [absence] = state["absences"]
    assert (absence["left"], absence["back"]) == (left_at, ledger.block_time)
    [flag] = _flags(state, ledger.block_time, "car_not_present")
    assert flag["records"] == [listing, exit_id, state["head"]]


def test_a_short_absence_is_no_fact(ledger: Any) -> None:
    car = Car(ledger).in_market()
    car.listed()
    car.left()
    ledger.advance(hours=23)
    car.entered()
    assert car.state["absences"] == []
    assert _flags(car.state, ledger.block_time, "car_not_present") == []


def test_listing_closed_while_the_car_was_away(ledger: Any) -> None:
    car = Car(ledger).in_market()
    listing = car.listed()
    car.left()
    ledger.advance(days=3)
    car.do("listing.close", {"reason": "withdrawn"}, "operator-01")
    [absence] = car.state["absences"]
    assert (absence["listing"], absence["back"]) == (listing, None)
    assert len(_flags(car.state, ledger.block_time, "car_not_present")) == 1


def test_listing_whose_inspection_expired(ledger: Any) -> None:
    car = Car(ledger).born().bought().entered()
    inspection = car.inspected(valid_until="2026-03-10")
    listing = car.listed()
    assert _flags(car.state, "2026-03-10T14:00:00.000Z", "listing_inspection_expired") == []
    [flag] = _flags(car.state, "2026-03-10T15:00:00.000Z", "listing_inspection_expired")
    assert flag["records"] == [listing, inspection]


def test_inspection_below_an_earlier_reading(ledger: Any) -> None:
    car = Car(ledger).born()
    service = car.do("service.record", P.service("2025-12-01", 80_000), "repair-1")
    inspection = car.inspected(60_000)
    [flag] = _flags(car.state, ledger.block_time, "inspection_odometer_below_earlier")
    assert flag["records"] == [inspection, service]


def test_inspection_without_accident_while_the_insurer_saw_frame_damage(ledger: Any) -> None:
    car = Car(ledger).born()
    claim = car.do("insurance.claim", P.claim("2025-05-01", frame=True), "db-insurance-01")
    clean = car.inspected()
    [flag] = _flags(car.state, ledger.block_time, "inspection_missed_frame_damage")
    assert flag["records"] == [clean, claim]
    # An inspection that reports the repair is consistent.
    honest = car.inspected(panels={"pillar_b_left": ["W"], "roof": ["C"]})
    state = car.state
    assert state["inspections"][-1]["accident"] is True
    assert len(_flags(state, ledger.block_time, "inspection_missed_frame_damage")) == 1
    [accident] = _flags(state, ledger.block_time, "inspection_accident")
    assert accident["records"] == [honest]


def test_accident_and_simple_repair_are_derived_from_panels(ledger: Any) -> None:
    car = Car(ledger).born()
    cases = [
        ({}, (False, False)),
        ({"hood": ["X"]}, (False, True)),
        ({"hood": ["W"]}, (False, False)),
        ({"door_rear_left": ["A", "U"]}, (False, False)),
        ({"quarter_panel_left": ["W"]}, (True, False)),
        ({"roof": ["X"]}, (True, False)),
        ({"side_sill_right": ["C"]}, (False, False)),
        ({"cross_member": ["X"], "hood": ["X"]}, (True, False)),
        ({"floor_panel": ["T"]}, (False, False)),
        ({"package_tray": ["W"]}, (True, False)),
    ]
    for panels, expected in cases:
        car.inspected(panels=panels)
        entry = car.state["inspections"][-1]
        assert (entry["accident"], entry["simple_repair"]) == expected, panels


def test_open_items(ledger: Any) -> None:
    car = Car(ledger).born()
    car.do("lien.register", P.lien_register("L-1", car.today), "hana-01")
    vehicles = [{"vin": car.vin, "prev": car.state["head"]}]
    ledger.do("recall.issue", P.recall_issue("R-1", car.today, vehicles), ledger.key("hmc-01"))
    car.do("theft.report", P.theft(car.today), "police-01")
    service = car.do("service.record", P.service(car.today), "repair-1")
    car.do("record.dispute", P.dispute(service), "dealer-01")
    codes = {f["code"]: f["severity"] for f in facts(car.state, ledger.block_time)}
    assert codes["active_lien"] == "warning"
    assert codes["open_recall"] == "warning"
    assert codes["stolen"] == "critical"
    assert codes["open_dispute"] == "warning"


def test_voiding_a_correction_restores_the_original(ledger: Any) -> None:
    car = Car(ledger).born()
    service = car.do("service.record", P.service(car.today, 31_000), "repair-1")
    first = car.do("record.correct", P.correct(service, {"odometer_km": 3_100}), "repair-1")
    second = car.do("record.correct", P.correct(service, {"date": "2026-03-01"}), "repair-1")
    reading = car.state["odometer"]["readings"][-1]
    assert (reading["km"], reading["on"]) == (3_100, "2026-03-01")
    dispute = car.do("record.dispute", P.dispute(first), "repair-2")
    car.do("dispute.resolve", P.resolve(dispute), "registry-01")
    state = car.state
    reading = next(r for r in state["odometer"]["readings"] if r["id"] == service)
    assert (reading["km"], reading["on"]) == (31_000, "2026-03-01")
    assert state["log"][service]["status"] == "corrected"  # the second correction stands
    assert state["log"][first]["status"] == "void"
    dispute = car.do("record.dispute", P.dispute(second), "repair-2")
    car.do("dispute.resolve", P.resolve(dispute), "registry-01")
    state = car.state
    reading = next(r for r in state["odometer"]["readings"] if r["id"] == service)
    assert (reading["km"], reading["on"]) == (31_000, car.today)
    assert state["log"][service]["status"] == "valid"


def test_a_rejected_dispute_restores_the_status(ledger: Any) -> None:
    car = Car(ledger).born()
    service = car.do("service.record", P.service(car.today), "repair-1")
    dispute = car.do("record.dispute", P.dispute(service), "dealer-01")
    assert car.state["log"][service]["status"] == "disputed"
    car.do("dispute.resolve", P.resolve(dispute, "rejected"), "operator-01")
    assert car.state["log"][service]["status"] == "valid"


def test_voiding_a_listing_or_a_part_cleans_the_indexes(ledger: Any) -> None:
    car = Car(ledger).in_market()
    listing = car.listed()
    install = car.do("part.install", P.part("BP0001", car.today), "repair-1")
    for target in (listing, install):
        dispute = car.do("record.dispute", P.dispute(target), "registry-01")
        car.do("dispute.resolve", P.resolve(dispute), "registry-01")
    state = car.state
    assert state["listing"] is None and state["parts"] == {} and state["status"] == "active"
    assert ledger.state.get(f"listing/{MARKET}/JP-1") is None
    assert ledger.state.get("part/BP0001") is None


def test_voiding_a_transfer_restores_the_previous_owner(ledger: Any) -> None:
    car = Car(ledger).born()
    transfer = car.do(
        "ownership.transfer", P.transfer(car.owner_ref, car.buyer_ref, car.today), "registry-01"
    )
    dispute = car.do("record.dispute", P.dispute(transfer, car.buyer_ref), car.buyer_key)
    car.do("dispute.resolve", P.resolve(dispute), "registry-01")
    assert car.state["owners"][-1]["ref"] == car.buyer_ref  # the entry stays, marked void
    assert car.state["owners"][-1]["void"] is True
    car.do("trade.purchase", P.purchase(car.owner_ref, car.today), "dealer-01")
