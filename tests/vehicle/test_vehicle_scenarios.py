"""End to end: the Seoul market flow, and the whole life of a car."""

from __future__ import annotations

from typing import Any

import vehicle_payloads as P
from vehicle_payloads import MARKET, Car

from carledger.encoding import canonical
from carledger.vehicle.facts import facts, summary, warranty
from carledger.vehicle.fold import replay
from carledger.vehicle.history import history


def _codes(state: dict[str, Any], as_of: str) -> set[str]:
    return {f["code"] for f in facts(state, as_of)}


def _check_replay_and_history(ledger: Any, vin: str) -> list[dict[str, Any]]:
    state = ledger.vehicle(vin)
    assert canonical.encode(replay(vin, ledger.records[vin])) == canonical.encode(state)
    entries = history(ledger.attributed[vin])
    assert [e["id"] for e in entries] == [r.id for r in ledger.records[vin]]
    assert {e["id"]: e["status"] for e in entries} == {
        k: v["status"] for k, v in state["log"].items()
    }
    return entries


def test_seoul_market_flow(ledger: Any) -> None:
    car = Car(ledger).born()
    # 1. Purchase (매입): the dealer buys from the owner; the car is stock (상품용).
    car.do("trade.purchase", P.purchase(car.owner_ref, car.today, 42_000), "dealer-01")
    assert car.state["owners"][-1]["stock"] is True
    # The car drives into the market complex through a gate.
    ledger.advance(hours=2)
    car.entered()
    # 2. Performance and condition inspection (성능·상태 점검).
    ledger.advance(hours=20)
    inspection = car.do(
        "inspection.record",
        P.inspection(car.today, 42_010, panels={"hood": ["X"], "door_front_left": ["A"]}),
        "inspector-1",
    )
    # Listing (매물 등록): needs stock, a valid inspection and the car inside.
    listing = car.listed("JP-100")
    assert car.state["status"] == "listed"
    assert ledger.state.get(f"listing/{MARKET}/JP-100") == {
        "vin": car.vin,
        "dealer": "dealer-01",
        "price": 19_900_000,
        "opened": ledger.block_time,
        "id": listing,
    }
    # A test drive: out and back within the hour.
    ledger.advance(days=3)
    car.left()
    ledger.advance(minutes=50)
    car.entered()
    # 3. Vehicle lookup and 4. inspection lookup (who signed what).
    entries = _check_replay_and_history(ledger, car.vin)
    found = [e for e in entries if e["type"] == "inspection.record"]
    assert len(found) == 1
    assert found[0]["signers"] == [
        {
            "key": ledger.key("inspector-1").public_hex,
            "org": "inspect-1",
            "member": "inspector-1",
            "roles": ["inspector"],
        }
    ]
    state = car.state
    assert state["inspections"][0]["simple_repair"] is True
    assert state["inspections"][0]["accident"] is False
    flags = facts(state, ledger.block_time)
    # Born in 2022 with no reading until the purchase: a gap, and the simple repair.
    assert {f["code"] for f in flags} == {"inspection_simple_repair", "odometer_gap"}
    assert all(f["severity"] == "info" for f in flags)
    # 5. Sale (매도) signed by the dealer and the buyer's own key.
    ledger.advance(days=2)
    sale = car.do(
        "trade.sale", P.sale(car.buyer_ref, car.today, 42_050), "dealer-01", car.buyer_key
    )
    car.left()
    state = car.state
    assert state["status"] == "active" and state["listing"] is None
    assert state["owners"][-1]["ref"] == car.buyer_ref
    assert ledger.state.get(f"listing/{MARKET}/JP-100") is None
    assert warranty(state) == {
        "sale": sale,
        "inspection": inspection,
        "until": "2026-04-07",  # sold on 2026-03-08 (Korean date)
        "until_km": 44_050,
    }
    overview = summary(state)
    assert overview["owners"] == 2 and overview["stock_periods"][0]["end"] == sale
    _check_replay_and_history(ledger, car.vin)


def test_a_whole_life(ledger: Any) -> None:
    car = Car(ledger)
    owner_a = f"ref:{P.h('owner a')[:32]}"
    car.do("vehicle.register", P.register("2019-05-20"), "hmc-01")
    car.do("registration.record", P.registration("2019-06-10", car.plate), "registry-01")
    car.do("ownership.transfer", P.transfer(None, owner_a, "2019-06-10", 12), "registry-01")
    car.do("service.record", P.service("2020-06-01", 14_000), "repair-1")
    crash = car.do("accident.record", P.accident("2020-09-01", frame=True), "samsung-fire-01")
    car.do("insurance.claim", P.claim("2020-09-01", crash, frame=True), "samsung-fire-01")
    typo = car.do("service.record", P.service("2021-06-01", 290_000), "repair-1")
    car.do("record.correct", P.correct(typo, {"odometer_km": 29_000}), "repair-1")
    vehicles = [{"vin": car.vin, "prev": car.state["head"]}]
    car.ledger.do(
        "recall.issue", P.recall_issue("HMC-21-7", "2021-07-01", vehicles), ledger.key("hmc-01")
    )
    car.do("lien.register", P.lien_register("HC-1", "2021-08-01"), "hana-01")
    car.do(
        "ownership.transfer",
        P.transfer(owner_a, car.owner_ref, "2022-03-01", 38_000),
        "registry-01",
    )
    car.do("registration.record", {"date": "2022-03-01", "plate": "12허3456"}, "registry-01")
    car.do("recall.complete", P.recall_complete("HMC-21-7", "2022-04-01"), "repair-2")
    wrong = car.do("accident.record", P.accident("2023-01-05"), "police-01")
    dispute = car.do("record.dispute", P.dispute(wrong, car.owner_ref), car.owner_key)
    car.do("dispute.resolve", P.resolve(dispute), "registry-01")
    car.do("service.record", P.service("2024-02-01", 61_000), "repair-2")
    # A dealer buys it, the odometer is turned back; the inspection repeats the lie
    # and says "no accident" although the insurer saw frame damage.
    car.do("trade.purchase", P.purchase(car.owner_ref, car.today, 35_000), "dealer-01")
    car.entered()
    car.inspected(35_010)
    car.do("lien.release", P.lien_release("HC-1", car.today), "hana-01")
    car.do("trade.sale", P.sale(car.buyer_ref, car.today, 35_020), "dealer-01", car.buyer_key)
    car.do("vehicle.scrap", P.scrap(car.today, 35_100), "scrap-01")
    error = car.refused("service.record", P.service(car.today), "repair-1")
    assert error.code == "vehicle_scrapped"

    state = car.state
    assert state["status"] == "scrapped"
    codes = _codes(state, ledger.block_time)
    assert {
        "odometer_rollback",
        "inspection_odometer_below_earlier",
        "inspection_missed_frame_damage",
        "accident_record",
        "void_record",
        "scrapped",
    } <= codes
    assert "open_recall" not in codes and "active_lien" not in codes
    # The typo was corrected: no implausible reading is left, the original is kept.
    fixed = next(r for r in state["odometer"]["readings"] if r["id"] == typo)
    assert (fixed["km"], fixed["orig"], fixed["flags"]) == (29_000, {"km": 290_000}, [])
    # The voided accident no longer counts.
    overview = summary(state)
    assert overview["accidents"]["reported"] == 2  # the accident and its claim
    assert overview["owners"] == 3
    assert ledger.state.get("plate/12허3456") is None  # scrapped: the plate is returned
    assert overview["recalls"] == {"open": [], "done": ["HMC-21-7"]}
    entries = {e["id"]: e for e in _check_replay_and_history(ledger, car.vin)}
    assert entries[typo]["status"] == "corrected"
    assert entries[typo]["effective"]["odometer_km"] == 29_000
    assert entries[wrong]["status"] == "void"
    assert entries[dispute]["outcome"] == "upheld"
    assert entries[wrong]["voided_by"] == entries[dispute]["resolved_by"]
    # Still accepted after scrapping: a correction.
    car.do(
        "record.correct", P.correct(state["scrapped"]["id"], {"odometer_km": 35_101}), "scrap-01"
    )
    assert car.state["scrapped"]["km"] == 35_101
