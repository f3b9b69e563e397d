"""The vehicle state: a pure fold over one VIN's accepted records.

``vehicle/<VIN>`` in the ledger state is exactly
``fold(vin, fold(vin, ... fold(vin, None, r1) ...), rn)`` over that VIN's accepted
records in commit order. A record offers only what a report carries: its id, type,
payload, signer keys, and the height and time of the block that committed it
(:class:`Record`). So a verifier holding a report's records can recompute the state
with :func:`replay` and compare its canonical bytes with the proven state entry.
This module therefore reads no ledger state, no clock and no other vehicle; it
never mutates its input (it copies what it changes) and it never judges: the
contract handlers refuse records *before* they reach the fold.

Facts that involve other vehicles (a plate's VIN, a market's listings, a part
serial's car) are kept under their own keys by :mod:`carledger.vehicle.indexes`.

The shape of the state (``docs/records.md`` describes every field)::

    vin, head, records, status,           chain head, record count, derived status
    birth, first_registered, plates, uses lifecycle
    owners                                ownership periods; stock periods of dealers
    usage                                 rental / lease periods
    listing, gate, absences               the market: active listing, last gate event
    inspections, accidents                condition and accident history
    odometer {readings, exceptions}       the series with its flags
    liens, recalls, thefts, scrapped, parts, battery
    disputes, log                         every record's type, signers and status

Corrections do not rewrite the entries they fix in place and forget: an entry that
was corrected keeps ``orig`` (its first values) and ``fixes`` (each correction's new
values), so a correction voided by an upheld dispute is undone exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from carledger.errors import VerificationFailure
from carledger.vehicle import queries
from carledger.vehicle.clock import seconds
from carledger.vehicle.inspection_form import derive
from carledger.vehicle.odometer import append_flagged, flag_series, insert_sorted

__all__ = [
    "ABSENCE_SECONDS",
    "Record",
    "empty",
    "fold",
    "named_prev",
    "replay",
]

State = dict[str, Any]
Entry = dict[str, Any]
Extract = Mapping[str, Callable[[Any], dict[str, Any]]]

#: A listed car away from its market longer than this is ``car_not_present``.
ABSENCE_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Record:
    """What the fold may know about an accepted record, and nothing more."""

    id: str
    type: str
    payload: Mapping[str, Any]
    signers: tuple[str, ...]
    height: int
    time: str


def empty(vin: str) -> State:
    """The state of a VIN before its first record."""
    return {
        "vin": vin,
        "head": None,
        "records": 0,
        "status": "active",
        "birth": None,
        "first_registered": None,
        "plates": [],
        "uses": [],
        "owners": [],
        "usage": [],
        "listing": None,
        "gate": None,
        "absences": [],
        "inspections": [],
        "accidents": [],
        "odometer": {"readings": [], "exceptions": []},
        "liens": {},
        "recalls": {},
        "thefts": [],
        "scrapped": None,
        "parts": {},
        "battery": [],
        "disputes": {},
        "log": {},
    }


def named_prev(vin: str, record: Record) -> str | None:
    """The previous record of ``vin`` that ``record`` names (its link in the VIN's chain)."""
    vehicles = record.payload.get("vehicles")
    if isinstance(vehicles, list):
        for item in vehicles:
            if item.get("vin") == vin:
                prev = item.get("prev")
                return None if prev is None else str(prev)
        raise VerificationFailure(
            "vin_chain_broken", f"Record {record.id} does not name {vin}.", record=record.id
        )
    prev = record.payload.get("prev")
    return None if prev is None else str(prev)


def replay(vin: str, records: Iterable[Record]) -> State | None:
    """Fold a VIN's records from nothing, checking that each names its predecessor.

    Raises :class:`VerificationFailure` (``vin_chain_broken``) when a record's ``prev``
    is not the id of the record before it: the list is incomplete or reordered.
    """
    state: State | None = None
    for record in records:
        expected = None if state is None else state["head"]
        if named_prev(vin, record) != expected:
            raise VerificationFailure(
                "vin_chain_broken",
                f"Record {record.id} of {vin} names {named_prev(vin, record)} as previous, "
                f"but the record before it is {expected}.",
                record=record.id,
            )
        state = fold(vin, state, record)
    return state


def fold(vin: str, state: State | None, record: Record) -> State:
    """The state of ``vin`` after ``record`` (``state`` is None before its first record).

    Pure: ``state`` is not modified; unchanged parts are shared with the result.
    Precondition: ``record`` was accepted for ``vin`` (its payload passed the schema).
    """
    s = dict(state) if state is not None else empty(vin)
    n = s["records"]
    s["records"] = n + 1
    s["head"] = record.id
    entry: Entry = {"type": record.type, "by": list(record.signers), "status": "valid"}
    if record.type in ("record.correct", "record.dispute"):
        entry["target"] = record.payload["target"]
    s["log"] = {**s["log"], record.id: entry}
    reading = _extract(READING_FIELDS.get(record.type, {}), record.payload)
    if "on" in reading and "km" in reading:
        _add_reading(s, {**reading, "id": record.id, "n": n, "flags": []})
    apply = _APPLY.get(record.type)
    if apply is not None:
        apply(s, record)
    s["status"] = queries.derive_status(s)
    return s


# --- what each record contributes ------------------------------------------------


def _extract(fields: Extract, payload: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in fields.items():
        if name in payload:
            out.update(fn(payload[name]))
    return out


def _on(value: Any) -> dict[str, Any]:
    return {"on": value}


def _km(value: Any) -> dict[str, Any]:
    return {"km": value}


def _rename(key: str) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {key: value}


_DATED_KM: Extract = {"date": _on, "odometer_km": _km}

#: Where each record type carries an odometer reading (date field, km field).
READING_FIELDS: dict[str, Extract] = {
    "odometer.reading": {"observed_on": _on, "km": _km},
    "inspection.record": {"date": _on, "overall": lambda o: {"km": o["odometer_km"]}},
    **dict.fromkeys(
        (
            "service.record",
            "trade.purchase",
            "trade.sale",
            "ownership.transfer",
            "vehicle.scrap",
            "accident.record",
            "insurance.claim",
            "battery.report",
            "recall.complete",
            "part.install",
            "part.remove",
        ),
        _DATED_KM,
    ),
}


def _overall(o: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "km": o["odometer_km"],
        "vin_marking": o["vin_marking"],
        "tuning": o["tuning"]["status"],
        "flood": "flood" in o["special_history"],
        "fire": "fire" in o["special_history"],
        "recall": o["recall"],
    }


INSPECTION_FIELDS: Extract = {
    "date": _on,
    "header": lambda h: {
        "issue_no": h["issue_no"],
        "valid_from": h["valid_from"],
        "valid_until": h["valid_until"],
    },
    "overall": _overall,
    "panels": derive,
}

ACCIDENT_FIELDS: Extract = {
    "date": _on,
    "own_damage": lambda d: {"parts": d["parts"], "labour": d["labour"], "paint": d["paint"]},
    "other_party_damage": _rename("other"),
    "total_loss": _rename("total_loss"),
    "flood": _rename("flood"),
    "fire": _rename("fire"),
    "frame_damage": _rename("frame"),
}
_ACCIDENT_DEFAULTS = {
    "parts": 0,
    "labour": 0,
    "paint": 0,
    "other": 0,
    "total_loss": False,
    "flood": False,
    "fire": False,
    "frame": False,
}

BATTERY_FIELDS: Extract = {
    "date": _on,
    "soh_permille": _rename("soh"),
    "capacity_wh": _rename("capacity_wh"),
    "cycles": _rename("cycles"),
}

LIEN_FIELDS: Extract = {"date": _on, "kind": _rename("kind"), "amount": _rename("amount")}

BIRTH_FIELDS: Extract = {
    name: _rename(name)
    for name in (
        "make",
        "model",
        "model_year",
        "trim",
        "color",
        "fuel",
        "transmission",
        "engine_code",
        "plant",
        "manufactured_on",
        "country",
    )
}

#: Which state entries a correction of each record type can change, by collection.
CORRECTABLE: dict[str, dict[str, Extract]] = {
    "readings": READING_FIELDS,
    "inspections": {"inspection.record": INSPECTION_FIELDS},
    "accidents": {"accident.record": ACCIDENT_FIELDS, "insurance.claim": ACCIDENT_FIELDS},
    "battery": {"battery.report": BATTERY_FIELDS},
    "liens": {"lien.register": LIEN_FIELDS},
    "birth": {"vehicle.register": BIRTH_FIELDS},
    "scrapped": {"vehicle.scrap": _DATED_KM},
}


def _append(s: State, key: str, item: Entry) -> None:
    s[key] = [*s[key], item]


def _replace_last_open(s: State, key: str, field: str, value: Entry) -> None:
    items = list(s[key])
    for i in range(len(items) - 1, -1, -1):
        if not items[i].get("void") and items[i][field] is None:
            items[i] = {**items[i], field: value}
            break
    s[key] = items


def _add_reading(s: State, reading: Entry) -> None:
    odo = s["odometer"]
    # Usually the latest reading: flagged alone (see append_flagged); else the series.
    readings = append_flagged(odo["readings"], odo["exceptions"], reading)
    if readings is None:
        readings = flag_series(insert_sorted(odo["readings"], reading), odo["exceptions"])
    s["odometer"] = {**odo, "readings": readings}


def _register(s: State, r: Record) -> None:
    s["birth"] = {**_extract(BIRTH_FIELDS, r.payload), "id": r.id}


def _registration(s: State, r: Record) -> None:
    p = r.payload
    if "first_registered_on" in p:
        s["first_registered"] = p["first_registered_on"]
    if "plate" in p and p["plate"] != queries.current_plate(s):
        _append(s, "plates", {"plate": p["plate"], "from": p["date"], "id": r.id})
    uses = queries.live(s["uses"])
    if "use" in p and (not uses or uses[-1]["use"] != p["use"]):
        _append(s, "uses", {"use": p["use"], "from": p["date"], "id": r.id})


def _transfer(s: State, r: Record) -> None:
    _append(
        s, "owners", {"ref": r.payload["to"], "from": r.payload["date"], "id": r.id, "stock": False}
    )


def _scrap(s: State, r: Record) -> None:
    s["scrapped"] = {"on": r.payload["date"], "km": r.payload["odometer_km"], "id": r.id}


def _purchase(s: State, r: Record) -> None:
    p = r.payload
    owner = {
        "ref": f"org:{p['dealer']}",
        "from": p["date"],
        "id": r.id,
        "stock": True,
        "market": p["market"],
    }
    _append(s, "owners", owner)


def _close_listing(s: State, r: Record) -> None:
    """End the active listing, recording an absence if the car was away too long."""
    listing, gate = s["listing"], s["gate"]
    if listing is None:
        return
    if (
        gate is not None
        and not gate["inside"]
        and gate["market"] == listing["market"]
        and seconds(gate["time"]) >= seconds(listing["opened"])
        and seconds(r.time) - seconds(gate["time"]) > ABSENCE_SECONDS
    ):
        _append(s, "absences", _absence(listing, gate, None, None))
    s["listing"] = None


def _absence(listing: Entry, gate: Entry, back: str | None, entry_id: str | None) -> Entry:
    return {
        "market": listing["market"],
        "listing": listing["id"],
        "left": gate["time"],
        "exit": gate["id"],
        "back": back,
        "entry": entry_id,
    }


def _listing_open(s: State, r: Record) -> None:
    p = r.payload
    held = queries.stock(s)
    s["listing"] = {
        "market": p["market"],
        "no": p["listing_no"],
        "price": p["price"],
        "dealer": None if held is None else held["ref"][4:],
        "opened": r.time,
        "id": r.id,
    }


def _listing_close(s: State, r: Record) -> None:
    _close_listing(s, r)


def _sale(s: State, r: Record) -> None:
    p = r.payload
    _close_listing(s, r)
    _append(s, "owners", {"ref": p["buyer_ref"], "from": p["date"], "id": r.id, "stock": False})


def _gate(inside: bool) -> Callable[[State, Record], None]:
    def apply(s: State, r: Record) -> None:
        p = r.payload
        last, listing = s["gate"], s["listing"]
        if (
            inside
            and last is not None
            and not last["inside"]
            and listing is not None
            and last["market"] == p["market"] == listing["market"]
            and seconds(last["time"]) >= seconds(listing["opened"])
            and seconds(p["time"]) - seconds(last["time"]) > ABSENCE_SECONDS
        ):
            _append(s, "absences", _absence(listing, last, p["time"], r.id))
        s["gate"] = {
            "market": p["market"],
            "gate": p["gate"],
            "inside": inside,
            "time": p["time"],
            "id": r.id,
        }

    return apply


def _inspection(s: State, r: Record) -> None:
    _append(s, "inspections", {**_extract(INSPECTION_FIELDS, r.payload), "id": r.id})


def _accident(s: State, r: Record) -> None:
    entry = {**_ACCIDENT_DEFAULTS, **_extract(ACCIDENT_FIELDS, r.payload)}
    _append(s, "accidents", {**entry, "src": r.type, "id": r.id})


def _part_install(s: State, r: Record) -> None:
    p = r.payload
    part = {
        "part_no": p["part_no"],
        "maker": p["maker"],
        "position": p["position"],
        "on": p["date"],
        "id": r.id,
    }
    s["parts"] = {**s["parts"], p["serial"]: part}


def _part_remove(s: State, r: Record) -> None:
    s["parts"] = {k: v for k, v in s["parts"].items() if k != r.payload["serial"]}


def _recall_issue(s: State, r: Record) -> None:
    p = r.payload
    recall = {"title": p["title"], "on": p["date"], "id": r.id, "done": None}
    s["recalls"] = {**s["recalls"], p["campaign"]: recall}


def _recall_complete(s: State, r: Record) -> None:
    p = r.payload
    recall = s["recalls"][p["campaign"]]
    done = {"on": p["date"], "id": r.id}
    s["recalls"] = {**s["recalls"], p["campaign"]: {**recall, "done": done}}


def _battery(s: State, r: Record) -> None:
    entry = {"cycles": None, **_extract(BATTERY_FIELDS, r.payload), "id": r.id}
    _append(s, "battery", entry)


def _lien_register(s: State, r: Record) -> None:
    p = r.payload
    lien = {**_extract(LIEN_FIELDS, p), "creditor": p["creditor"], "id": r.id, "released": None}
    s["liens"] = {**s["liens"], p["lien_id"]: lien}


def _lien_release(s: State, r: Record) -> None:
    p = r.payload
    lien = s["liens"][p["lien_id"]]
    released = {"on": p["date"], "id": r.id}
    s["liens"] = {**s["liens"], p["lien_id"]: {**lien, "released": released}}


def _theft_report(s: State, r: Record) -> None:
    _append(s, "thefts", {"on": r.payload["date"], "id": r.id, "recovered": None})


def _theft_recover(s: State, r: Record) -> None:
    _replace_last_open(s, "thefts", "recovered", {"on": r.payload["date"], "id": r.id})


def _usage_start(s: State, r: Record) -> None:
    p = r.payload
    usage = {"kind": p["kind"], "firm": p["firm"], "from": p["date"], "id": r.id, "end": None}
    _append(s, "usage", usage)


def _usage_end(s: State, r: Record) -> None:
    _replace_last_open(s, "usage", "end", {"on": r.payload["date"], "id": r.id})


def _exception(s: State, r: Record) -> None:
    p = r.payload
    n = s["records"] - 1
    odo = s["odometer"]
    old = {"on": p["date"], "km": p["old_km"], "id": r.id, "n": n, "flags": []}
    exc = {"on": p["date"], "old": p["old_km"], "new": p["new_km"], "id": r.id, "n": n}
    exceptions = insert_sorted(odo["exceptions"], exc)
    readings = insert_sorted(odo["readings"], old)
    s["odometer"] = {"readings": flag_series(readings, exceptions), "exceptions": exceptions}


# --- corrections, disputes, void ------------------------------------------------


def _restatus(s: State, target: str) -> None:
    log = s["log"]
    entry = log.get(target)
    if entry is None or entry["status"] == "void":
        return
    if any(d["target"] == target for d in queries.open_disputes(s).values()):
        status = "disputed"
    elif any(log[c]["status"] != "void" for c in entry.get("corrected_by", ())):
        status = "corrected"
    else:
        status = "valid"
    if status != entry["status"]:
        s["log"] = {**log, target: {**entry, "status": status}}


def _refix(entry: Entry) -> Entry:
    out = {**entry, **entry["orig"]}
    for fix in entry["fixes"]:
        if not fix.get("void"):
            out.update(fix["set"])
    return out


_LISTS = ("owners", "plates", "uses", "usage", "inspections", "accidents", "battery", "thefts")


def _map_entries(s: State, fn: Callable[[str, Entry], Entry]) -> None:
    """Apply ``fn(collection, entry)`` to every entry, copying only what changes."""
    for key in _LISTS:
        s[key] = _map_list(s[key], partial(fn, key))
    for key in ("liens", "recalls", "parts"):
        items = s[key]
        changed = {k: fn(key, v) for k, v in items.items()}
        if any(changed[k] is not items[k] for k in items):
            s[key] = changed
    for key in ("birth", "scrapped"):
        if s[key] is not None:
            s[key] = fn(key, s[key])
    odo = s["odometer"]
    readings = _map_list(odo["readings"], partial(fn, "readings"))
    exceptions = _map_list(odo["exceptions"], partial(fn, "exceptions"))
    if readings is not odo["readings"] or exceptions is not odo["exceptions"]:
        readings = sorted(readings, key=lambda e: (e["on"], e["n"]))
        s["odometer"] = {"readings": flag_series(readings, exceptions), "exceptions": exceptions}


def _map_list(items: list[Entry], fn: Callable[[Entry], Entry]) -> list[Entry]:
    new = [fn(e) for e in items]
    return new if any(a is not b for a, b in zip(new, items, strict=True)) else items


def _correct(s: State, r: Record) -> None:
    target, fields = r.payload["target"], r.payload["fields"]
    log = s["log"]
    ttype = log[target]["type"]
    old = log[target]
    s["log"] = {**log, target: {**old, "corrected_by": [*old.get("corrected_by", ()), r.id]}}

    def fix(collection: str, entry: Entry) -> Entry:
        extract = CORRECTABLE.get(collection, {}).get(ttype)
        if extract is None or entry.get("id") != target:
            return entry
        values = _extract(extract, fields)
        if not values:
            return entry
        orig = {**{k: entry.get(k) for k in values}, **entry.get("orig", {})}
        fixes = [*entry.get("fixes", ()), {"id": r.id, "set": values}]
        return _refix({**entry, "orig": orig, "fixes": fixes})

    _map_entries(s, fix)
    _restatus(s, target)


def _dispute(s: State, r: Record) -> None:
    target = r.payload["target"]
    dispute = {"target": target, "status": "open", "resolution": None}
    s["disputes"] = {**s["disputes"], r.id: dispute}
    _restatus(s, target)


def _resolve(s: State, r: Record) -> None:
    p = r.payload
    dispute = s["disputes"][p["dispute"]]
    s["disputes"] = {
        **s["disputes"],
        p["dispute"]: {**dispute, "status": p["outcome"], "resolution": r.id},
    }
    target = dispute["target"]
    if p["outcome"] == "upheld":
        _void(s, target)
    else:
        _restatus(s, target)


_ENDS = ("released", "recovered", "done", "end")


def _void(s: State, target: str) -> None:
    """Mark ``target`` void and undo what it contributed to the derived state."""
    log = s["log"]
    s["log"] = {**log, target: {**log[target], "status": "void"}}

    def void(collection: str, entry: Entry) -> Entry:
        del collection
        if entry.get("id") == target:
            return {**entry, "void": True}
        out = entry
        for end in _ENDS:
            value = out.get(end)
            if isinstance(value, dict) and value.get("id") == target:
                out = {**out, end: None}
        fixes = out.get("fixes")
        if fixes and any(f["id"] == target for f in fixes):
            fixes = [{**f, "void": True} if f["id"] == target else f for f in fixes]
            out = _refix({**out, "fixes": fixes})
        return out

    _map_entries(s, void)
    if s["listing"] is not None and s["listing"]["id"] == target:
        s["listing"] = None
    if s["parts"]:
        s["parts"] = {k: v for k, v in s["parts"].items() if not v.get("void")}
    corrected = s["log"][target].get("target")
    if corrected is not None and s["log"][target]["type"] == "record.correct":
        _restatus(s, corrected)


_APPLY: dict[str, Callable[[State, Record], None]] = {
    "vehicle.register": _register,
    "registration.record": _registration,
    "ownership.transfer": _transfer,
    "vehicle.scrap": _scrap,
    "trade.purchase": _purchase,
    "listing.open": _listing_open,
    "listing.close": _listing_close,
    "trade.sale": _sale,
    "gate.entry": _gate(inside=True),
    "gate.exit": _gate(inside=False),
    "inspection.record": _inspection,
    "accident.record": _accident,
    "insurance.claim": _accident,
    "part.install": _part_install,
    "part.remove": _part_remove,
    "recall.issue": _recall_issue,
    "recall.complete": _recall_complete,
    "battery.report": _battery,
    "lien.register": _lien_register,
    "lien.release": _lien_release,
    "theft.report": _theft_report,
    "theft.recover": _theft_recover,
    "usage.start": _usage_start,
    "usage.end": _usage_end,
    "record.correct": _correct,
    "record.dispute": _dispute,
    "dispute.resolve": _resolve,
    "odometer.exception": _exception,
}
