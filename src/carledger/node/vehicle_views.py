"""Read models of vehicles: state with derived facts, history, listings, reports, events."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from carledger.errors import InvalidInput, LedgerError, NotFound, StorageError
from carledger.ledger.ledger import Ledger
from carledger.node.views import _store, page_limit, record_view
from carledger.report.build import build_report
from carledger.report.summary import summary
from carledger.store.sqlite import StoredTx
from carledger.vehicle import vin as vins
from carledger.vehicle.fold import Record, named_prev
from carledger.vehicle.indexes import vehicle_key

__all__ = [
    "event_payload",
    "history_view",
    "listings_view",
    "report_view",
    "vehicle_view",
    "vehicles_view",
]


def _vin(text: str) -> str:
    return vins.normalise(text)


def vehicle_view(ledger: Ledger, vin: str) -> dict[str, Any]:
    """The vehicle's state and the facts derived from it as of the head block."""
    vin = _vin(vin)
    state = ledger.state(vehicle_key(vin))
    if state is None:
        raise NotFound("unknown_vehicle", f"No record about {vin} is on this chain.", vin=vin)
    head = ledger.head
    return {
        "vin": vin,
        "vin_info": vins.describe(vin),
        "head": state["head"],
        "records": state["records"],
        "as_of": {"height": head.height, "time": head.time},
        "summary": summary(state, head.time),
        "state": state,
    }


def vehicles_view(ledger: Ledger, *, after: str = "", limit: int = 50) -> dict[str, Any]:
    """VINs with records on this chain, in VIN order, ``limit`` at a time after ``after``."""
    limit = page_limit(limit)
    rows = _store(ledger).state_prefix(
        "vehicle/", after=f"vehicle/{after}" if after else "", limit=limit
    )
    vehicles = []
    for key, value in rows:
        state = json.loads(value)
        birth = state.get("birth") or {}
        vehicles.append(
            {
                "vin": key[len("vehicle/") :],
                "records": state["records"],
                "status": state["status"],
                "make": birth.get("make"),
                "model": birth.get("model"),
                "model_year": birth.get("model_year"),
            }
        )
    return {
        "vehicles": vehicles,
        "next": vehicles[-1]["vin"] if len(vehicles) == limit else None,
    }


def history_view(ledger: Ledger, vin: str, *, after: int = -1, limit: int = 100) -> dict[str, Any]:
    """The VIN's accepted records in commit order, ``limit`` at a time after log index ``after``."""
    vin = _vin(vin)
    limit = page_limit(limit)
    after = min(after, ledger.head.log_size)  # beyond the log: an empty page
    rows = _store(ledger).txs_of_vin(vin, after_seq=after, limit=limit + 1)
    if not rows and after < 0:
        raise NotFound("unknown_vehicle", f"No record about {vin} is on this chain.", vin=vin)
    state = ledger.state(vehicle_key(vin)) or {"log": {}, "head": None}
    page = rows[:limit]
    _check_chain(ledger, vin, state, page, after, last_page=len(rows) <= limit)
    records = []
    for tx in page:
        view = record_view(ledger, tx)
        entry = state["log"].get(tx.id, {})
        view["status"] = entry.get("status", "valid")
        if "target" in entry:
            view["target"] = entry["target"]
        view["linked_by"] = sorted(
            rid for rid, e in state["log"].items() if e.get("target") == tx.id
        )
        records.append(view)
    return {
        "vin": vin,
        "records": records,
        "next": rows[limit - 1].seq if len(rows) > limit else None,
    }


def _check_chain(
    ledger: Ledger,
    vin: str,
    state: dict[str, Any],
    page: list[StoredTx],
    after: int,
    *,
    last_page: bool,
) -> None:
    """Refuse (``store_damaged``) a history page that is not an unbroken piece of the VIN's
    chain of signed records: a damaged per-VIN index must not hide or add a record."""
    expected: str | None = None
    for i, tx in enumerate(page):
        named: str | None = None
        ok = hashlib.sha256(tx.body).hexdigest() == tx.id and tx.id in state["log"]
        if ok:
            envelope = json.loads(tx.body)
            record = Record(tx.id, envelope["type"], envelope["payload"], (), tx.height, "")
            try:
                named = named_prev(vin, record)
            except LedgerError:
                ok = False
        if ok and i == 0 and named is not None:
            before = _store(ledger).tx_by_id(named)
            ok = named in state["log"] and before is not None and before.seq <= after
        elif ok and i > 0:
            ok = named == expected
        if not ok:
            raise StorageError(
                "store_damaged",
                f"The stored history of {vin} is not an unbroken chain of its records at log "
                f"index {tx.seq}: this node's store is damaged. Ask another node; operators: "
                "run `carledger verify`.",
            )
        expected = tx.id
    if last_page and page and expected != state["head"]:
        raise StorageError(
            "store_damaged",
            f"The stored history of {vin} ends before its latest record: this node's store "
            "is damaged. Ask another node; operators: run `carledger verify`.",
        )


def listings_view(
    ledger: Ledger,
    *,
    market: str | None = None,
    make: str | None = None,
    min_price: int | None = None,
    max_price: int | None = None,
    after: str = "",
    limit: int = 50,
) -> dict[str, Any]:
    """Open listings (from the ``listing/<market>/<no>`` index), filtered, in key order."""
    limit = page_limit(limit)
    if market is not None and ("/" in market or not market):
        raise InvalidInput("invalid_market", "market is a market id.")
    prefix = f"listing/{market}/" if market else "listing/"
    if after and not after.startswith(prefix):
        raise InvalidInput("invalid_cursor", "after is a cursor returned by this endpoint.")
    store = _store(ledger)
    out: list[dict[str, Any]] = []
    cursor = after
    head = ledger.head
    exhausted = False
    while len(out) < limit and not exhausted:
        rows = store.state_prefix(prefix, after=cursor, limit=200)
        exhausted = len(rows) < 200
        for key, value in rows:
            cursor = key
            entry = json.loads(value)
            state = ledger.state(vehicle_key(entry["vin"])) or {}
            birth = state.get("birth") or {}
            if not _matches(entry, birth, make, min_price, max_price):
                continue
            _, market_id, listing_no = key.split("/", 2)
            out.append(
                {
                    "key": key,
                    "market": market_id,
                    "listing_no": listing_no,
                    **entry,
                    "vehicle": {k: birth.get(k) for k in ("make", "model", "model_year", "fuel")},
                    "summary": summary(state, head.time) if state else None,
                }
            )
            if len(out) == limit:
                break
    more = len(out) == limit and not (exhausted and cursor == (rows[-1][0] if rows else cursor))
    return {"listings": out, "next": cursor if more else None}


def _matches(
    entry: dict[str, Any],
    birth: dict[str, Any],
    make: str | None,
    min_price: int | None,
    max_price: int | None,
) -> bool:
    price = int(entry.get("price", 0))
    if min_price is not None and price < min_price:
        return False
    if max_price is not None and price > max_price:
        return False
    return make is None or str(birth.get("make", "")).lower() == make.lower()


def report_view(ledger: Ledger, vin: str) -> dict[str, Any]:
    return build_report(ledger, _vin(vin))


def vins_of(payload: dict[str, Any]) -> list[str]:
    """The VINs a record payload is about (one, or each of ``vehicles``)."""
    if isinstance(payload.get("vin"), str):
        return [payload["vin"]]
    vehicles = payload.get("vehicles")
    if isinstance(vehicles, list):
        return [v["vin"] for v in vehicles if isinstance(v, dict) and isinstance(v.get("vin"), str)]
    return []


def event_payload(
    seq: int, height: int, tx_id: str, code: str, envelope: dict[str, Any]
) -> dict[str, Any]:
    """What the event stream says about one committed transaction."""
    raw = envelope.get("payload")
    payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {
        "seq": seq,
        "height": height,
        "id": tx_id,
        "type": envelope.get("type"),
        "code": code,
        "vins": vins_of(payload) if code == "ok" else [],
    }
