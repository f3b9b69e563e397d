"""Derived facts of a vehicle, explained to the reader, for a reference time passed in.

:func:`facts` returns the flags a report shows, each as
``{"code", "severity", "message", "records": [tx ids]}``: ``severity`` is
``critical`` (a buyer must look: fraud signs, contradictions, theft, total loss),
``warning`` (open items, accident history) or ``info`` (context). ``records`` names
the records that make the fact, so a reader can open them. The messages are plain
English; they are data for the report layer, which translates by ``code``.

Some facts depend on *when* one asks: a listed car that left the market yesterday
is not yet missing; an inspection expires. So ``as_of`` is a block time (the
checkpoint a report is made at), never the wall clock, and the result is a pure
function of ``(state, as_of)``.

:func:`summary` is the report's overview (owners, stock periods, uses, accidents
with costs, open items), independent of time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from carledger.vehicle import queries
from carledger.vehicle.clock import add_days, days_between, local_date, seconds
from carledger.vehicle.fold import ABSENCE_SECONDS
from carledger.vehicle.odometer import GAP_DAYS, trailing_gap_days

__all__ = ["WARRANTY_DAYS", "WARRANTY_KM", "facts", "summary", "warranty"]

State = dict[str, Any]
Fact = dict[str, Any]

#: The inspection is warranted to the buyer for 30 days or 2,000 km after a sale.
WARRANTY_DAYS = 30
WARRANTY_KM = 2_000


def _fact(code: str, severity: str, message: str, *records: str | None) -> Fact:
    return {
        "code": code,
        "severity": severity,
        "message": message,
        "records": [r for r in records if r is not None],
    }


def facts(state: State, as_of: str) -> list[Fact]:
    """Every flag of ``state`` as of the UTC time ``as_of`` (``YYYY-MM-DDTHH:MM:SS[.fff]Z``)."""
    today = local_date(as_of)
    out: list[Fact] = []
    out += _odometer(state, today)
    out += _market(state, as_of, today)
    out += _condition(state)
    out += _open_items(state)
    return out


# --- odometer --------------------------------------------------------------------


def _odometer(state: State, today: str) -> Iterator[Fact]:
    odo = state["odometer"]
    readings, exceptions = odo["readings"], queries.live(odo["exceptions"])
    events = [(r["on"], r["n"], 0, r) for r in queries.live(readings)]
    events += [(e["on"], e["n"], 1, e) for e in exceptions]
    events.sort(key=lambda ev: ev[:3])
    good: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    for _on, _n, kind, item in events:
        if kind == 1:
            yield _fact(
                "odometer_exception",
                "info",
                f"The odometer was replaced on {item['on']}: {item['old']:,} km on the old "
                f"unit, {item['new']:,} km on the new one; later readings are judged from it.",
                item["id"],
            )
            good = {"km": item["new"], "on": item["on"], "id": item["id"]}
            continue
        flags = item["flags"]
        source = state["log"][item["id"]]["type"]
        where = f"{item['km']:,} km on {item['on']} ({source})"
        if "rollback" in flags and good is not None:
            yield _fact(
                "odometer_rollback",
                "critical",
                f"The odometer read {where}, less than the {good['km']:,} km read on "
                f"{good['on']}: the odometer may have been turned back.",
                item["id"],
                good["id"],
            )
            if source == "inspection.record":
                yield _fact(
                    "inspection_odometer_below_earlier",
                    "critical",
                    f"The inspection of {item['on']} reports {item['km']:,} km, below the "
                    f"{good['km']:,} km recorded on {good['on']}.",
                    item["id"],
                    good["id"],
                )
        elif "implausible" in flags:
            yield _fact(
                "odometer_implausible",
                "warning",
                f"The reading {where} is implausible: above 2,000,000 km or more than "
                "3,000 km a day since the previous good reading.",
                item["id"],
                None if good is None else good["id"],
            )
        else:
            good = item
        if "gap" in flags and previous is not None:
            days = days_between(previous["on"], item["on"])
            yield _fact(
                "odometer_gap",
                "info",
                f"No odometer reading for {days} days, from {previous['on']} to {item['on']}.",
                previous["id"],
                item["id"],
            )
        previous = item
    gap = trailing_gap_days(readings, today)
    if gap is not None and gap > GAP_DAYS and not queries.is_scrapped(state) and previous:
        yield _fact(
            "odometer_gap",
            "info",
            f"No odometer reading since {previous['on']} ({gap} days).",
            previous["id"],
        )


# --- the market ------------------------------------------------------------------


def _market(state: State, as_of: str, today: str) -> Iterator[Fact]:
    for absence in state["absences"]:
        back = (
            f"came back at {absence['back']}"
            if absence["back"]
            else "did not come back before the listing closed"
        )
        yield _fact(
            "car_not_present",
            "critical",
            f"While listed ({absence['listing'][:12]}...), the car left {absence['market']} "
            f"at {absence['left']} and {back}: more than 24 hours away, a sign of a fake "
            "listing.",
            absence["listing"],
            absence["exit"],
            absence["entry"],
        )
    listing, gate = state["listing"], state["gate"]
    if listing is None:
        return
    if (
        gate is not None
        and not gate["inside"]
        and gate["market"] == listing["market"]
        and seconds(gate["time"]) >= seconds(listing["opened"])
        and seconds(as_of) - seconds(gate["time"]) > ABSENCE_SECONDS
    ):
        yield _fact(
            "car_not_present",
            "critical",
            f"The car is listed in {listing['market']} but left it at {gate['time']} and has "
            "not come back for more than 24 hours: the listing may be fake.",
            listing["id"],
            gate["id"],
        )
    inspection = queries.current_inspection(state)
    if inspection is None or today > inspection["valid_until"]:
        until = "" if inspection is None else f" (valid until {inspection['valid_until']})"
        yield _fact(
            "listing_inspection_expired",
            "critical",
            f"The car is listed without a valid performance inspection on {today}{until}.",
            listing["id"],
            None if inspection is None else inspection["id"],
        )


# --- condition and accidents -----------------------------------------------------


def _condition(state: State) -> Iterator[Fact]:
    inspections = queries.live(state["inspections"])
    accidents = queries.live(state["accidents"])
    for insp in inspections:
        if insp["accident"]:
            panels = ", ".join(f"{p} ({c})" for p, c in insp["repairs"].items())
            yield _fact(
                "inspection_accident",
                "warning",
                f"The inspection of {insp['on']} found accident repairs: {panels}.",
                insp["id"],
            )
        elif insp["simple_repair"]:
            yield _fact(
                "inspection_simple_repair",
                "info",
                f"The inspection of {insp['on']} found replaced outer panels (simple repair).",
                insp["id"],
            )
        else:
            for acc in accidents:
                if acc["frame"] and acc["on"] <= insp["on"]:
                    yield _fact(
                        "inspection_missed_frame_damage",
                        "critical",
                        f"The inspection of {insp['on']} reports no accident, but the "
                        f"{_source(acc)} recorded frame damage on {acc['on']}.",
                        insp["id"],
                        acc["id"],
                    )
        if insp["vin_marking"] != "good":
            yield _fact(
                "vin_marking_suspect",
                "critical",
                f"The inspection of {insp['on']} found the VIN marking {insp['vin_marking']}.",
                insp["id"],
            )
        if insp["tuning"] == "illegal":
            yield _fact(
                "illegal_tuning",
                "warning",
                f"The inspection of {insp['on']} found illegal tuning.",
                insp["id"],
            )
    for acc in accidents:
        cost = acc["parts"] + acc["labour"] + acc["paint"]
        yield _fact(
            "accident_record",
            "warning",
            f"The {_source(acc)} recorded an accident on {acc['on']}: own damage "
            f"{cost:,} KRW (parts {acc['parts']:,}, labour {acc['labour']:,}, paint "
            f"{acc['paint']:,}), other party {acc['other']:,} KRW"
            f"{', frame damage' if acc['frame'] else ''}.",
            acc["id"],
        )
    for event in ("total_loss", "flood", "fire"):
        ids = [a["id"] for a in accidents if a[event]]
        if event != "total_loss":
            ids += [i["id"] for i in inspections if i[event]]
        if ids:
            yield _fact(
                event,
                "critical",
                f"Recorded {event.replace('_', ' ')} history ({len(ids)} record(s)).",
                *ids,
            )


def _source(accident: dict[str, Any]) -> str:
    return "insurer" if accident["src"] == "insurance.claim" else "insurer or police"


# --- open items ------------------------------------------------------------------


def _open_items(state: State) -> Iterator[Fact]:
    if queries.is_scrapped(state):
        scrapped = state["scrapped"]
        yield _fact("scrapped", "info", f"Scrapped on {scrapped['on']}.", scrapped["id"])
    if queries.is_stolen(state):
        theft = queries.live(state["thefts"])[-1]
        yield _fact("stolen", "critical", f"Reported stolen on {theft['on']}.", theft["id"])
    for lien_id, lien in sorted(queries.active_liens(state).items()):
        yield _fact(
            "active_lien",
            "warning",
            f"Active {lien['kind']} {lien_id} of {lien['creditor']} for {lien['amount']:,} KRW "
            f"since {lien['on']}.",
            lien["id"],
        )
    for campaign, recall in sorted(queries.open_recalls(state).items()):
        yield _fact(
            "open_recall",
            "warning",
            f"Recall {campaign} ({recall['title']}) is not done yet.",
            recall["id"],
        )
    for dispute_id, dispute in sorted(state["disputes"].items()):
        if dispute["status"] == "open":
            yield _fact(
                "open_dispute",
                "warning",
                "A record is disputed and the dispute is not resolved yet.",
                dispute["target"],
                dispute_id,
            )
        elif dispute["status"] == "upheld":
            yield _fact(
                "void_record",
                "info",
                "A record was voided after a dispute was upheld.",
                dispute["target"],
                dispute_id,
                dispute["resolution"],
            )
    commercial = [u for u in queries.live(state["uses"]) if u["use"] != "private"]
    usage = queries.live(state["usage"])
    if commercial or usage:
        kinds = sorted({u["use"] for u in commercial} | {u["kind"] for u in usage})
        yield _fact(
            "commercial_use",
            "info",
            f"Used as {', '.join(kinds)} at some time.",
            *[u["id"] for u in commercial],
            *[u["id"] for u in usage],
        )


# --- overview --------------------------------------------------------------------


def summary(state: State) -> dict[str, Any]:
    """What a report shows at a glance; a pure function of the state."""
    owners = queries.live(state["owners"])
    stock_periods = []
    for i, entry in enumerate(owners):
        if entry["stock"]:
            nxt = owners[i + 1] if i + 1 < len(owners) else None
            stock_periods.append(
                {
                    "dealer": entry["ref"][4:],
                    "market": entry.get("market"),
                    "from": entry["from"],
                    "to": None if nxt is None else nxt["from"],
                    "purchase": entry["id"],
                    "end": None if nxt is None else nxt["id"],
                }
            )
    accidents = queries.live(state["accidents"])
    inspections = queries.live(state["inspections"])
    readings = queries.live(state["odometer"]["readings"])
    latest = queries.current_inspection(state)
    return {
        "vin": state["vin"],
        "status": state["status"],
        "records": state["records"],
        "owner": queries.current_owner(state),
        "owners": queries.owner_count(state),
        "ownership_changes": len(owners),
        "stock_periods": stock_periods,
        "plate": queries.current_plate(state),
        "uses": [{"use": u["use"], "from": u["from"]} for u in queries.live(state["uses"])],
        "usage": [
            {
                "kind": u["kind"],
                "firm": u["firm"],
                "from": u["from"],
                "to": None if u["end"] is None else u["end"]["on"],
            }
            for u in queries.live(state["usage"])
        ],
        "accidents": {
            "inspection_accident": any(i["accident"] for i in inspections),
            "inspection_simple_repair": any(i["simple_repair"] for i in inspections),
            "reported": len(accidents),
            "own_damage_krw": sum(a["parts"] + a["labour"] + a["paint"] for a in accidents),
            "other_party_krw": sum(a["other"] for a in accidents),
            "frame_damage": any(a["frame"] for a in accidents),
        },
        "odometer": {
            "readings": len(readings),
            "latest": None
            if not readings
            else {"on": readings[-1]["on"], "km": readings[-1]["km"]},
            "rollbacks": sum("rollback" in r["flags"] for r in readings),
            "implausible": sum("implausible" in r["flags"] for r in readings),
            "gaps": sum("gap" in r["flags"] for r in readings),
        },
        "inspection": None
        if latest is None
        else {
            "id": latest["id"],
            "on": latest["on"],
            "valid_until": latest["valid_until"],
            "accident": latest["accident"],
            "simple_repair": latest["simple_repair"],
        },
        "warranty": warranty(state),
        "liens": sorted(queries.active_liens(state)),
        "recalls": {
            "open": sorted(queries.open_recalls(state)),
            "done": sorted(k for k, v in state["recalls"].items() if v["done"] is not None),
        },
        "stolen": queries.is_stolen(state),
        "scrapped": queries.is_scrapped(state),
        "battery": None
        if not queries.live(state["battery"])
        else queries.live(state["battery"])[-1],
        "parts": sorted(state["parts"]),
        "disputes": {
            "open": sum(d["status"] == "open" for d in state["disputes"].values()),
            "upheld": sum(d["status"] == "upheld" for d in state["disputes"].values()),
            "rejected": sum(d["status"] == "rejected" for d in state["disputes"].values()),
        },
    }


def warranty(state: State) -> dict[str, Any] | None:
    """The inspection warranty of the latest dealer sale: 30 days or 2,000 km after it.

    None when the car was never sold by a dealer or had no inspection before the sale.
    """
    log = state["log"]
    sales = [o for o in queries.live(state["owners"]) if log[o["id"]]["type"] == "trade.sale"]
    if not sales:
        return None
    sale = sales[-1]
    before = [i for i in queries.live(state["inspections"]) if i["on"] <= sale["from"]]
    km = next((r["km"] for r in state["odometer"]["readings"] if r["id"] == sale["id"]), None)
    if not before or km is None:
        return None
    inspection = max(reversed(before), key=lambda i: i["on"])  # the latest; ties: last
    return {
        "sale": sale["id"],
        "inspection": inspection["id"],
        "until": add_days(sale["from"], WARRANTY_DAYS),
        "until_km": km + WARRANTY_KM,
    }
