"""Each state rule of each record type, violated once, with its stable code."""

from __future__ import annotations

from typing import Any

import pytest
import vehicle_payloads as P
from vehicle_payloads import MARKET, OPEN_MARKET, Car

from carledger.encoding import canonical
from carledger.errors import Conflict, NotFound, RuleViolation, Unauthorized


def car(ledger: Any, n: int = 1) -> Car:
    return Car(ledger, n)


# --- the per-VIN chain ---------------------------------------------------------------


def test_stale_prev_is_a_conflict_telling_to_reread(ledger: Any) -> None:
    c = car(ledger).born()
    old_head = c.state["head"]
    c.do("service.record", P.service(c.today), "repair-1")
    payload = {"vin": c.vin, "prev": old_head, **P.reading(40_000, c.today)}
    error = ledger.refused("odometer.reading", payload, ledger.key("repair-1"))
    assert isinstance(error, Conflict)
    assert error.code == "stale_head"
    assert error.detail["head"] == c.state["head"]
    assert "re-read" in error.message


def test_first_record_names_no_prev_and_later_ones_must(ledger: Any) -> None:
    c = car(ledger)
    bogus = P.h("nothing")
    error = ledger.refused(
        "service.record",
        {"vin": c.vin, "prev": bogus, **P.service(c.today)},
        ledger.key("repair-1"),
    )
    assert error.code == "stale_head"
    c.born()
    error = ledger.refused(
        "service.record",
        {"vin": c.vin, "prev": None, **P.service(c.today)},
        ledger.key("repair-1"),
    )
    assert error.code == "stale_head"


def test_records_dated_in_the_future_are_refused(ledger: Any) -> None:
    c = car(ledger).born()
    tomorrow = "2026-03-03"  # the block is 2026-03-02 09:00 in Korea
    error = c.refused("service.record", P.service(tomorrow), "repair-1")
    assert (error.code, error.detail["field"]) == ("date_in_future", "date")
    error = c.refused("odometer.reading", P.reading(1, tomorrow), "repair-1")
    assert (error.code, error.detail["field"]) == ("date_in_future", "observed_on")
    # 2026-03-02T15:30Z is already 2026-03-03 in Korea: the same record is accepted.
    ledger.advance(hours=15, minutes=30)
    c.do("service.record", P.service(tomorrow), "repair-1")


# --- lifecycle -----------------------------------------------------------------------


def test_one_birth_record_per_vin(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused("vehicle.register", P.register("2022-01-03"), "hmc-01")
    assert (type(error), error.code) == (Conflict, "vehicle_exists")


def test_plate_of_another_live_car_is_refused(ledger: Any) -> None:
    a = car(ledger, 1).born()
    b = car(ledger, 2)
    b.do("vehicle.register", P.register("2022-01-03"), "hmc-01")
    error = b.refused("registration.record", P.registration(b.today, a.plate), "registry-01")
    assert error.code == "plate_in_use"
    # Once the first car is scrapped its plate is free again.
    a.do("vehicle.scrap", P.scrap(a.today), "scrap-01")
    assert ledger.state.get(f"plate/{a.plate}") is None
    b.do("registration.record", P.registration(b.today, a.plate), "registry-01")
    assert ledger.state.get(f"plate/{a.plate}")["vin"] == b.vin


def test_plate_change_moves_the_index(ledger: Any) -> None:
    c = car(ledger).born()
    c.do("registration.record", {"date": c.today, "plate": "99허1234"}, "registry-01")
    assert ledger.state.get(f"plate/{c.plate}") is None
    assert ledger.state.get("plate/99허1234")["vin"] == c.vin


def test_first_registration_is_set_once(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused(
        "registration.record", {"date": c.today, "first_registered_on": "2022-02-01"}, "registry-01"
    )
    assert error.code == "already_first_registered"


def test_registration_needs_something_to_register(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused("registration.record", {"date": c.today}, "registry-01")
    assert (error.code, error.detail["field"]) == ("missing_field", "plate")


def test_transfer_from_must_be_the_owner(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused(
        "ownership.transfer", P.transfer(c.buyer_ref, "org:dealer-02", c.today), "registry-01"
    )
    assert (type(error), error.code) == (RuleViolation, "owner_mismatch")
    error = c.refused(
        "ownership.transfer", P.transfer(c.owner_ref, c.owner_ref, c.today), "registry-01"
    )
    assert (error.code, error.detail["field"]) == ("invalid_field", "to")


def test_transfer_by_both_owners_without_the_registry(ledger: Any) -> None:
    c = car(ledger).born()
    body = P.transfer(c.owner_ref, c.buyer_ref, c.today)
    error = c.refused("ownership.transfer", body, c.buyer_key)
    assert (type(error), error.code) == (Unauthorized, "owner_signature_required")
    error = c.refused("ownership.transfer", body, c.owner_key)
    assert (type(error), error.code) == (Unauthorized, "new_owner_signature_required")
    error = c.refused("ownership.transfer", body, c.owner_key, c.buyer_key, "dealer-01")
    assert error.code == "unauthorized_role"
    c.do("ownership.transfer", body, c.owner_key, c.buyer_key)
    assert c.state["owners"][-1]["ref"] == c.buyer_ref


def test_a_new_car_is_sold_by_its_maker_with_the_buyer(ledger: Any) -> None:
    c = car(ledger)
    c.do("vehicle.register", P.register("2026-02-01"), "hmc-01")
    body = P.transfer(None, c.owner_ref, c.today, 5)
    error = c.refused("ownership.transfer", body, c.owner_key)
    assert error.code == "owner_signature_required"
    c.do("ownership.transfer", body, "hmc-01", c.owner_key)
    assert c.state["owners"][-1]["ref"] == c.owner_ref


def test_an_org_owner_signs_through_its_members(ledger: Any) -> None:
    c = car(ledger).born()
    c.do("ownership.transfer", P.transfer(c.owner_ref, "org:lotte-rental", c.today), "registry-01")
    body = P.transfer("org:lotte-rental", c.buyer_ref, c.today)
    c.do("ownership.transfer", body, "lotte-01", c.buyer_key)


def test_stolen_car_cannot_change_owner(ledger: Any) -> None:
    c = car(ledger).born()
    c.do("theft.report", P.theft(c.today), "police-01")
    body = P.transfer(c.owner_ref, c.buyer_ref, c.today)
    assert c.refused("ownership.transfer", body, "registry-01").code == "vehicle_stolen"
    assert c.refused("trade.purchase", P.purchase(c.owner_ref, c.today), "dealer-01").code == (
        "vehicle_stolen"
    )
    assert c.refused("vehicle.scrap", P.scrap(c.today), "scrap-01").code == "vehicle_stolen"
    c.do("gate.entry", P.gate(ledger.block_time), "gate-1")  # sightings are still welcome
    c.do("theft.recover", {"date": c.today}, "police-01")
    c.do("ownership.transfer", body, "registry-01")


def test_listed_car_cannot_change_owner_or_be_scrapped(ledger: Any) -> None:
    c = car(ledger).in_market()
    c.listed()
    body = P.transfer("org:dealer-01", c.buyer_ref, c.today)
    assert c.refused("ownership.transfer", body, "registry-01").code == "vehicle_listed"
    assert c.refused("vehicle.scrap", P.scrap(c.today), "scrap-01").code == "vehicle_listed"
    error = c.refused(
        "trade.purchase", P.purchase("org:dealer-01", c.today, dealer="dealer-02"), "dealer-02"
    )
    assert error.code == "vehicle_listed"


def test_scrapping_with_an_active_lien_needs_the_lender(ledger: Any) -> None:
    c = car(ledger).born()
    c.do("lien.register", P.lien_register("L-1", c.today), "hana-01")
    error = c.refused("vehicle.scrap", P.scrap(c.today), "scrap-01")
    assert (type(error), error.code, error.detail["lien"]) == (RuleViolation, "active_lien", "L-1")
    c.do("vehicle.scrap", P.scrap(c.today), "scrap-01", "hana-01")
    assert c.state["status"] == "scrapped"


def test_scrapping_after_the_lien_is_released(ledger: Any) -> None:
    c = car(ledger).born()
    c.do("lien.register", P.lien_register("L-1", c.today), "hana-01")
    c.do("lien.release", P.lien_release("L-1", c.today), "hana-01")
    c.do("vehicle.scrap", P.scrap(c.today), "registry-01")


@pytest.mark.parametrize(
    ("type_", "body", "signers"),
    [
        ("service.record", lambda c: P.service(c.today), ("repair-1",)),
        ("gate.entry", lambda c: P.gate(c.ledger.block_time), ("gate-1",)),
        (
            "ownership.transfer",
            lambda c: P.transfer(c.owner_ref, c.buyer_ref, c.today),
            ("registry-01",),
        ),
        ("vehicle.scrap", lambda c: P.scrap(c.today), ("registry-01",)),
        ("inspection.record", lambda c: P.inspection(c.today), ("inspector-1",)),
        ("theft.report", lambda c: P.theft(c.today), ("police-01",)),
    ],
)
def test_scrapped_car_accepts_only_corrections_and_disputes(
    ledger: Any, type_: str, body: Any, signers: tuple[str, ...]
) -> None:
    c = car(ledger).born()
    service = c.do("service.record", P.service(c.today), "repair-1")
    c.do("vehicle.scrap", P.scrap(c.today), "scrap-01")
    error = c.refused(type_, body(c), *signers)
    assert (type(error), error.code) == (RuleViolation, "vehicle_scrapped")
    c.do("record.correct", P.correct(service, {"odometer_km": 31_001}), "repair-1")
    dispute = c.do("record.dispute", P.dispute(service), "dealer-01")
    c.do("dispute.resolve", P.resolve(dispute, "rejected"), "registry-01")


def test_recall_leaves_scrapped_cars_out(ledger: Any) -> None:
    a, b = car(ledger, 1).born(), car(ledger, 2).born()
    b.do("vehicle.scrap", P.scrap(b.today), "scrap-01")
    vehicles = [{"vin": x.vin, "prev": x.state["head"]} for x in (a, b)]
    error = ledger.refused(
        "recall.issue", P.recall_issue("R-1", a.today, vehicles), ledger.key("hmc-01")
    )
    assert (error.code, error.detail["vin"]) == ("vehicle_scrapped", b.vin)


# --- trading -------------------------------------------------------------------------


def test_purchase_rules(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused(
        "trade.purchase", P.purchase(c.owner_ref, c.today, dealer="dealer-02"), "dealer-01"
    )
    assert (type(error), error.code) == (Unauthorized, "dealer_mismatch")
    error = c.refused(
        "trade.purchase", P.purchase(c.owner_ref, c.today, market="nowhere"), "dealer-01"
    )
    assert (type(error), error.code) == (NotFound, "unknown_market")
    error = c.refused("trade.purchase", P.purchase(c.buyer_ref, c.today), "dealer-01")
    assert error.code == "seller_not_owner"
    c.bought()
    error = c.refused("trade.purchase", P.purchase("org:dealer-01", c.today), "dealer-01")
    assert (type(error), error.code) == (Conflict, "already_in_stock")
    # Dealer to dealer: the seller is the holding dealer.
    c.do("trade.purchase", P.purchase("org:dealer-01", c.today, dealer="dealer-02"), "dealer-02")
    assert c.state["owners"][-1]["ref"] == "org:dealer-02"


def test_a_car_without_history_can_be_bought(ledger: Any) -> None:
    c = car(ledger)
    c.do("trade.purchase", P.purchase(None, c.today), "dealer-01")
    assert c.state["owners"][0]["stock"] is True


def test_listing_needs_the_dealer_to_hold_the_car(ledger: Any) -> None:
    c = car(ledger).born()
    c.inspected()
    c.entered()
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "not_in_stock"
    c.bought("dealer-02")
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "not_in_stock"
    c.listed(dealer="dealer-02")


def test_listing_needs_a_valid_inspection(ledger: Any) -> None:
    c = car(ledger).born().bought().entered()
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "no_valid_inspection"
    c.inspected(valid_until="2026-03-05")
    ledger.advance(days=4)  # 2026-03-06 in Korea: expired
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "no_valid_inspection"
    c.inspected()
    c.listed()


def test_void_inspection_does_not_back_a_listing(ledger: Any) -> None:
    c = car(ledger).born().bought().entered()
    inspection = c.inspected()
    dispute = c.do("record.dispute", P.dispute(inspection), "dealer-02")
    c.do("dispute.resolve", P.resolve(dispute), "registry-01")
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "no_valid_inspection"


def test_listing_in_a_gated_market_needs_the_car_inside(ledger: Any) -> None:
    c = car(ledger).born().bought()
    c.inspected()
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "car_not_in_market"
    c.entered()
    c.left()
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "car_not_in_market"
    c.entered()
    c.listed()


def test_listing_in_an_open_market_needs_no_gate(ledger: Any) -> None:
    c = car(ledger).born().bought(market=OPEN_MARKET)
    c.inspected()
    c.listed("GS-1", OPEN_MARKET)
    entry = ledger.state.get(f"listing/{OPEN_MARKET}/GS-1")
    assert entry["vin"] == c.vin and entry["dealer"] == "dealer-01"


def test_listing_numbers_and_double_listing(ledger: Any) -> None:
    a = car(ledger, 1).in_market()
    b = car(ledger, 2).in_market("dealer-02")
    a.listed("JP-7")
    assert b.refused("listing.open", P.listing_open("JP-7"), "dealer-02").code == "listing_no_taken"
    assert a.refused("listing.open", P.listing_open("JP-8"), "dealer-01").code == "already_listed"
    assert a.refused("listing.open", P.listing_open("JP-8", "nowhere"), "dealer-01").code == (
        "unknown_market"
    )
    b.listed("JP-8", dealer="dealer-02")


def test_stolen_car_cannot_be_listed(ledger: Any) -> None:
    c = car(ledger).in_market()
    c.do("theft.report", P.theft(c.today), "police-01")
    assert c.refused("listing.open", P.listing_open(), "dealer-01").code == "vehicle_stolen"


def test_listing_close_rules(ledger: Any) -> None:
    c = car(ledger).in_market()
    assert c.refused("listing.close", {"reason": "withdrawn"}, "dealer-01").code == "not_listed"
    c.listed()
    error = c.refused("listing.close", {"reason": "withdrawn"}, "dealer-02")
    assert (type(error), error.code) == (Unauthorized, "not_listing_party")
    c.do("listing.close", {"reason": "expired"}, "operator-01")
    assert ledger.state.get(f"listing/{MARKET}/JP-1") is None
    assert c.state["status"] == "active"


def test_sale_rules(ledger: Any) -> None:
    c = car(ledger).born()
    body = P.sale(c.buyer_ref, c.today)
    assert c.refused("trade.sale", body, "dealer-01", c.buyer_key).code == "not_in_stock"
    c.bought().entered()
    c.inspected()
    c.listed()
    error = c.refused("trade.sale", body, "dealer-01")
    assert (type(error), error.code) == (Unauthorized, "buyer_signature_required")
    pseudonym = P.sale(f"ref:{P.h('x')[:32]}", c.today)
    assert c.refused("trade.sale", pseudonym, "dealer-01").code == "buyer_signature_required"
    assert (
        c.refused("trade.sale", P.sale("org:dealer-01", c.today), "dealer-01").code == "same_owner"
    )
    assert c.refused("trade.sale", body, "dealer-02", c.buyer_key).code == "not_in_stock"
    c.do("trade.sale", body, "dealer-01", c.buyer_key)
    state = c.state
    assert state["listing"] is None and state["status"] == "active"
    assert state["owners"][-1] == {
        "ref": c.buyer_ref,
        "from": c.today,
        "id": state["head"],
        "stock": False,
    }
    assert ledger.state.get(f"listing/{MARKET}/JP-1") is None


def test_sale_to_another_firm_signed_by_its_member(ledger: Any) -> None:
    c = car(ledger).in_market()
    c.do("trade.sale", P.sale("org:lotte-rental", c.today), "dealer-01", "lotte-01")


# --- gates ---------------------------------------------------------------------------


def test_gate_rules(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused("gate.entry", P.gate(ledger.block_time, "nowhere"), "gate-1")
    assert error.code == "unknown_market"
    ledger.state.data["market/other"] = canonical.encode(
        {"name": "Other", "operator": "seoul-city", "gated": True}
    )
    error = c.refused("gate.entry", P.gate(ledger.block_time, "other"), "gate-1")
    assert (type(error), error.code) == (Unauthorized, "not_market_gate")
    error = c.refused("gate.entry", P.gate("2026-03-02T00:06:00Z"), "gate-1")
    assert (error.code, error.detail["field"]) == ("time_in_future", "time")
    c.do("gate.entry", P.gate("2026-03-02T00:04:59Z"), "gate-1")  # within the clock skew


def test_gate_by_plate(ledger: Any) -> None:
    c = car(ledger).born()
    body = {"plate": c.plate, "prev": c.state["head"], **P.gate(ledger.block_time)}
    ledger.do("gate.entry", body, ledger.key("gate-1"))
    assert c.state["gate"]["inside"] is True
    body = {"plate": "77가7777", "prev": None, **P.gate(ledger.block_time)}
    error = ledger.refused("gate.entry", body, ledger.key("gate-1"))
    assert (type(error), error.code) == (NotFound, "unknown_plate")
    both = {"vin": c.vin, "plate": c.plate, "prev": c.state["head"], **P.gate(ledger.block_time)}
    assert ledger.refused("gate.exit", both, ledger.key("gate-1")).code == "invalid_field"
    neither = {"prev": c.state["head"], **P.gate(ledger.block_time)}
    assert ledger.refused("gate.exit", neither, ledger.key("gate-1")).code == "missing_field"


def test_market_register(ledger: Any) -> None:
    body = {"id": "dongdaemun", "name": "Dongdaemun", "gated": False}
    ledger.do("market.register", body, ledger.key("operator-01"))
    assert ledger.state.get("market/dongdaemun")["operator"] == "janganpyeong-assoc"
    ledger.do("market.register", {**body, "gated": True}, ledger.key("operator-01"))
    assert ledger.state.get("market/dongdaemun")["gated"] is True
    ledger.state.data["market/city"] = canonical.encode(
        {"name": "City", "operator": "seoul-city", "gated": False}
    )
    error = ledger.refused("market.register", {**body, "id": "city"}, ledger.key("operator-01"))
    assert (type(error), error.code) == (Unauthorized, "not_market_operator")


# --- use -----------------------------------------------------------------------------


def test_claim_links_an_accident_of_this_car(ledger: Any) -> None:
    c = car(ledger).born()
    service = c.do("service.record", P.service(c.today), "repair-1")
    error = c.refused("insurance.claim", P.claim(c.today, service), "samsung-fire-01")
    assert (error.code, error.detail["field"]) == ("unknown_accident", "accident")
    accident = c.do("accident.record", P.accident(c.today), "police-01")
    c.do("insurance.claim", P.claim(c.today, accident), "samsung-fire-01")


def test_usage_rules(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused("usage.start", P.usage_start(c.today, firm="other-firm"), "lotte-01")
    assert (type(error), error.code) == (Unauthorized, "firm_mismatch")
    assert c.refused("usage.end", P.usage_end(c.today), "lotte-01").code == "usage_not_open"
    c.do("usage.start", P.usage_start(c.today), "lotte-01")
    error = c.refused("usage.start", P.usage_start(c.today), "lotte-01")
    assert (type(error), error.code) == (Conflict, "usage_open")
    c.do("usage.end", P.usage_end(c.today), "lotte-01")
    assert c.state["usage"][0]["end"]["id"] == c.state["head"]


# --- parts ---------------------------------------------------------------------------


def test_a_part_serial_cannot_be_on_two_live_cars(ledger: Any) -> None:
    a, b = car(ledger, 1).born(), car(ledger, 2).born()
    a.do("part.install", P.part("BP0001", a.today), "repair-1")
    error = a.refused("part.install", P.part("BP0001", a.today), "repair-1")
    assert (type(error), error.code) == (Conflict, "part_already_installed")
    error = b.refused("part.install", P.part("BP0001", b.today), "repair-1")
    assert (error.code, error.detail["vin"]) == ("part_installed_elsewhere", a.vin)
    assert b.refused("part.remove", P.part("BP0001", b.today), "repair-1").code == (
        "part_not_installed"
    )
    a.do("part.remove", P.part("BP0001", a.today), "repair-1")
    assert ledger.state.get("part/BP0001") is None
    b.do("part.install", P.part("BP0001", b.today), "repair-1")
    assert ledger.state.get("part/BP0001")["vin"] == b.vin


def test_a_part_from_a_scrapped_car_may_be_reused(ledger: Any) -> None:
    a, b = car(ledger, 1).born(), car(ledger, 2).born()
    a.do("part.install", P.part("ENG-77", a.today), "hmc-01")
    a.do("vehicle.scrap", P.scrap(a.today), "scrap-01")
    b.do("part.install", P.part("ENG-77", b.today), "repair-1")
    assert ledger.state.get("part/ENG-77")["vin"] == b.vin


# --- recalls -------------------------------------------------------------------------


def test_recall_rules(ledger: Any) -> None:
    a, b = car(ledger, 1).born(), car(ledger, 2).born()
    vehicles = [{"vin": x.vin, "prev": x.state["head"]} for x in (a, b)]
    stale = [vehicles[0], {"vin": b.vin, "prev": None}]
    error = ledger.refused(
        "recall.issue", P.recall_issue("R-1", a.today, stale), ledger.key("hmc-01")
    )
    assert (error.code, error.detail["vin"]) == ("stale_head", b.vin)
    twice = [vehicles[0], vehicles[0]]
    error = ledger.refused(
        "recall.issue", P.recall_issue("R-1", a.today, twice), ledger.key("hmc-01")
    )
    assert (error.code, error.detail["field"]) == ("invalid_field", "vehicles[1].vin")
    assert a.refused("recall.complete", P.recall_complete("R-1", a.today), "repair-1").code == (
        "recall_not_open"
    )
    tx = ledger.do("recall.issue", P.recall_issue("R-1", a.today, vehicles), ledger.key("hmc-01"))
    assert a.state["head"] == b.state["head"] == tx
    again = [{"vin": a.vin, "prev": tx}]
    error = ledger.refused(
        "recall.issue", P.recall_issue("R-1", a.today, again), ledger.key("hmc-01")
    )
    assert (type(error), error.code) == (Conflict, "recall_exists")
    a.do("recall.complete", P.recall_complete("R-1", a.today), "repair-1")
    assert a.refused("recall.complete", P.recall_complete("R-1", a.today), "repair-1").code == (
        "recall_not_open"
    )


# --- liens and theft -----------------------------------------------------------------


def test_lien_rules(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused("lien.register", P.lien_register("L-1", c.today, "other-bank"), "hana-01")
    assert (type(error), error.code) == (Unauthorized, "creditor_mismatch")
    c.do("lien.register", P.lien_register("S-1", c.today, "seoul-tax-office"), "registry-01")
    c.do("lien.register", P.lien_register("L-1", c.today), "hana-01")
    error = c.refused("lien.register", P.lien_register("L-1", c.today), "hana-01")
    assert (type(error), error.code) == (Conflict, "lien_exists")
    assert c.refused("lien.release", P.lien_release("L-9", c.today), "hana-01").code == (
        "lien_not_active"
    )
    error = c.refused("lien.release", P.lien_release("S-1", c.today), "hana-01")
    assert error.code == "creditor_mismatch"
    c.do("lien.release", P.lien_release("L-1", c.today), "hana-01")
    assert c.refused("lien.release", P.lien_release("L-1", c.today), "hana-01").code == (
        "lien_not_active"
    )
    c.do("lien.release", P.lien_release("S-1", c.today), "registry-01")


def test_theft_rules(ledger: Any) -> None:
    c = car(ledger).born()
    assert c.refused("theft.recover", {"date": c.today}, "police-01").code == "not_stolen"
    c.do("theft.report", P.theft(c.today), "police-01")
    assert c.state["status"] == "stolen"
    error = c.refused("theft.report", P.theft(c.today), "registry-01")
    assert (type(error), error.code) == (Conflict, "already_stolen")


# --- corrections and disputes ----------------------------------------------------------


def test_correction_rules(ledger: Any) -> None:
    c = car(ledger).born()
    service = c.do("service.record", P.service(c.today, 31_000), "repair-1")
    error = c.refused("record.correct", P.correct(P.h("none"), {"odometer_km": 1}), "repair-1")
    assert (type(error), error.code) == (NotFound, "unknown_target")
    error = c.refused("record.correct", P.correct(service, {"odometer_km": 1}), "repair-2")
    assert (type(error), error.code) == (Unauthorized, "not_original_author")
    for fields, code, field in [
        ({"vin": c.vin}, "field_not_correctable", "fields.vin"),
        ({"prev": None}, "field_not_correctable", "fields.prev"),
        ({"colour": "red"}, "unknown_field", "fields.colour"),
        ({"odometer_km": -1}, "out_of_range", "fields.odometer_km"),
        ({"date": "2026-02-30"}, "invalid_date", "fields.date"),
    ]:
        error = c.refused("record.correct", P.correct(service, fields), "repair-1")
        assert (error.code, error.detail["field"]) == (code, field)
    error = c.refused("record.correct", P.correct(service, {}), "repair-1")
    assert (error.code, error.detail["field"]) == ("invalid_field", "fields")
    correction = c.do("record.correct", P.correct(service, {"odometer_km": 31_500}), "registry-01")
    error = c.refused("record.correct", P.correct(correction, {"reason": "x"}), "registry-01")
    assert error.code == "not_correctable"
    transfer = c.state["owners"][-1]["id"]
    error = c.refused("record.correct", P.correct(transfer, {"to": c.buyer_ref}), "registry-01")
    assert (error.code, error.detail["field"]) == ("field_not_correctable", "fields.to")


def test_a_colleague_of_the_author_may_correct(ledger: Any) -> None:
    c = car(ledger).born()
    reading = c.do("odometer.reading", P.reading(40_000, c.today), "dealer-01")
    # dealer-01 is the only member of its org in the demo network: the same key corrects.
    c.do("record.correct", P.correct(reading, {"km": 41_000}), "dealer-01")
    assert c.state["odometer"]["readings"][-1]["km"] == 41_000


def test_dispute_rules(ledger: Any) -> None:
    c = car(ledger).born()
    service = c.do("service.record", P.service(c.today), "repair-1")
    dispute = c.do("record.dispute", P.dispute(service), "citizen-01")
    error = c.refused("record.dispute", P.dispute(service), "dealer-01")
    assert (type(error), error.code) == (Conflict, "dispute_open")
    assert c.refused("record.dispute", P.dispute(dispute), "dealer-01").code == "not_disputable"
    assert c.refused("record.correct", P.correct(dispute, {"reason": "x"}), "citizen-01").code == (
        "not_correctable"
    )
    assert c.refused("dispute.resolve", P.resolve(service), "registry-01").code == "unknown_dispute"
    c.do("dispute.resolve", P.resolve(dispute), "operator-01")
    assert c.refused("dispute.resolve", P.resolve(dispute), "registry-01").code == (
        "dispute_not_open"
    )
    assert c.refused("record.dispute", P.dispute(service), "dealer-01").code == "target_void"
    assert c.refused("record.correct", P.correct(service, {"odometer_km": 2}), "repair-1").code == (
        "target_void"
    )


def test_the_owner_disputes_with_their_own_key(ledger: Any) -> None:
    c = car(ledger).born()
    service = c.do("service.record", P.service(c.today), "repair-1")
    error = c.refused("record.dispute", P.dispute(service, c.buyer_ref), c.buyer_key)
    assert (type(error), error.code) == (RuleViolation, "not_owner")
    error = c.refused("record.dispute", P.dispute(service, c.owner_ref), "dealer-01")
    assert (type(error), error.code) == (Unauthorized, "owner_signature_required")
    c.do("record.dispute", P.dispute(service, c.owner_ref), c.owner_key)
    assert c.state["log"][service]["status"] == "disputed"


def test_odometer_exception_needs_the_registry(ledger: Any) -> None:
    c = car(ledger).born()
    error = c.refused("odometer.exception", P.exception(c.today, 50_000), "repair-1")
    assert (type(error), error.code) == (Unauthorized, "registry_cosign_required")
