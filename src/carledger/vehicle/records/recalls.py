"""Recalls: ``recall.issue`` for a set of VINs, ``recall.complete`` per car.

- ``recall.issue`` (manufacturer): one record for up to 200 VINs, each named with
  its own ``prev`` (``vehicles: [{vin, prev}]``); the record extends every one of
  those chains and is indexed under each VIN, in the payload's order. Refused as a
  whole when any VIN is stale (``stale_head``, naming the VIN), scrapped
  (``vehicle_scrapped``) or already has the campaign (``recall_exists``).
- ``recall.complete`` (repair_shop): ``recall_not_open`` unless the campaign is open
  on this car.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carledger.errors import Conflict, InvalidInput, RuleViolation
from carledger.ledger.contracts import BlockContext, Contract, Effects, StateView, TxContext
from carledger.vehicle import queries
from carledger.vehicle.clock import local_date
from carledger.vehicle.fields import DATE, KM, PREV, VIN
from carledger.vehicle.indexes import vehicle_key
from carledger.vehicle.records.common import (
    Ctx,
    VinRecord,
    authorize,
    check_dates,
    check_head,
    extend,
    record_of,
    require_live,
)
from carledger.vehicle.schema import List, Obj, Str, opt

__all__ = ["MAX_RECALL_VINS", "RECALL_CONTRACTS", "RECORDS"]

MAX_RECALL_VINS = 200

CAMPAIGN = Str(1, 40, r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", "letters, digits, '.', '_', '-'")


def _distinct_vins(p: Mapping[str, Any], path: str) -> None:
    del path
    seen: set[str] = set()
    for i, item in enumerate(p["vehicles"]):
        if item["vin"] in seen:
            raise InvalidInput(
                "invalid_field",
                f"payload.vehicles names {item['vin']} twice.",
                field=f"vehicles[{i}].vin",
            )
        seen.add(item["vin"])


ISSUE = Obj(
    {
        "campaign": CAMPAIGN,
        "title": Str(1, 200),
        "date": DATE,
        "remedy": opt(Str(1, 500)),
        "vehicles": List(Obj({"vin": VIN, "prev": PREV}), MAX_RECALL_VINS, min_len=1),
    },
    rule=_distinct_vins,
)


def _issue(view: StateView, tx: TxContext, block: BlockContext) -> Effects:
    authorize(tx, ("manufacturer",))
    p = tx.payload
    check_dates(p, ("date",), local_date(block.time))
    record = record_of(tx, block)
    writes: dict[str, Any] = {}
    for item in p["vehicles"]:
        vin = item["vin"]
        state = view.get(vehicle_key(vin))
        check_head(vin, state, item["prev"])
        require_live(vin, state)
        if state is not None and p["campaign"] in state["recalls"]:
            raise Conflict("recall_exists", f"{vin} already has recall {p['campaign']}.", vin=vin)
        writes.update(extend(view, vin, state, record))
    return Effects(writes=writes, vins=tuple(item["vin"] for item in p["vehicles"]))


COMPLETE = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "campaign": CAMPAIGN,
        "date": DATE,
        "odometer_km": opt(KM),
    }
)


def _complete(ctx: Ctx) -> None:
    campaign = ctx.payload["campaign"]
    if campaign not in queries.open_recalls(ctx.state):
        raise RuleViolation(
            "recall_not_open", f"Recall {campaign} is not open on {ctx.vin}.", campaign=campaign
        )


RECALL_CONTRACTS = [
    Contract(
        "recall.issue",
        ISSUE,
        _issue,
        "A manufacturer recalls a set of vehicles.",
    ),
]

RECORDS = [
    VinRecord(
        "recall.complete",
        COMPLETE,
        "The recall work was done on this car.",
        roles=("repair_shop",),
        rule=_complete,
        immutable=("campaign",),
    ),
]
