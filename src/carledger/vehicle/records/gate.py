"""The market and its IoT gates.

- ``gate.entry`` / ``gate.exit`` (a ``gate_device`` member of the market operator's
  organisation, ``not_market_gate`` otherwise): the car by ``vin`` or by ``plate``
  (exactly one; a plate is resolved through ``plate/<plate>``, ``unknown_plate``),
  the ``market``, the ``gate`` id and the device's UTC ``time``, which may be at most
  five minutes after the block time (``time_in_future``). A gate device reads the
  vehicle's head like any client: its record extends the VIN's chain.
  A listed car that leaves its market and is not back within 24 hours is flagged
  ``car_not_present`` (see :mod:`carledger.vehicle.facts`).
- ``market.register`` (market_operator): creates a market operated by the signer's
  organisation, or updates its name and ``gated`` flag (``not_market_operator`` for
  another organisation's market). Markets are also seeded from the genesis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carledger.errors import InvalidInput, NotFound, RuleViolation, Unauthorized
from carledger.ledger.contracts import BlockContext, Contract, Effects, StateView, TxContext
from carledger.vehicle.clock import CLOCK_SKEW_SECONDS, seconds
from carledger.vehicle.fields import ID, NAME, PLATE, PREV, VIN
from carledger.vehicle.indexes import market_key, plate_key
from carledger.vehicle.records.common import Ctx, VinRecord, authorize, require_market
from carledger.vehicle.schema import Bool, Obj, Str, Time, opt

__all__ = ["MARKET_CONTRACTS", "RECORDS"]


def _vin_or_plate(p: Mapping[str, Any], path: str) -> None:
    del path
    if ("vin" in p) == ("plate" in p):
        raise InvalidInput(
            "missing_field" if "vin" not in p else "invalid_field",
            "A gate record names the car by vin or by plate, exactly one of them.",
            field="vin",
        )


GATE = Obj(
    {
        "vin": opt(VIN),
        "plate": opt(PLATE),
        "prev": PREV,
        "market": ID,
        "gate": Str(1, 32, r"[A-Za-z0-9][A-Za-z0-9-]{0,31}", "letters, digits and '-'"),
        "time": Time(),
    },
    rule=_vin_or_plate,
)


def _gate_vin(view: StateView, payload: Mapping[str, Any]) -> str:
    if "vin" in payload:
        return str(payload["vin"])
    entry = view.get(plate_key(payload["plate"]))
    if entry is None:
        raise NotFound(
            "unknown_plate",
            f"No vehicle carries the plate {payload['plate']}.",
            plate=payload["plate"],
        )
    return str(entry["vin"])


def _gate(ctx: Ctx) -> None:
    p = ctx.payload
    market = require_market(ctx.view, p["market"])
    if market["operator"] not in {s.org for s in ctx.signers_with("gate_device")}:
        raise Unauthorized(
            "not_market_gate",
            f"Gate records of {p['market']} are signed by a gate device of its operator.",
        )
    if seconds(p["time"]) > seconds(ctx.block.time) + CLOCK_SKEW_SECONDS:
        raise RuleViolation(
            "time_in_future",
            f"The gate time {p['time']} is after the block time {ctx.block.time}.",
            field="time",
        )


RECORDS = [
    VinRecord(
        kind,
        GATE,
        f"A market gate saw the car {direction}.",
        roles=("gate_device",),
        rule=_gate,
        dates=(),
        vin_of=_gate_vin,
        immutable=("vin", "plate", "market"),
    )
    for kind, direction in (("gate.entry", "enter"), ("gate.exit", "leave"))
]


MARKET = Obj({"id": ID, "name": NAME, "gated": Bool()})


def _market_register(view: StateView, tx: TxContext, block: BlockContext) -> Effects:
    del block
    authorize(tx, ("market_operator",))
    p = tx.payload
    org = next(s.org for s in tx.signers if s.enrolled and s.has_role("market_operator"))
    existing = view.get(market_key(p["id"]))
    if existing is not None and existing["operator"] != org:
        raise Unauthorized(
            "not_market_operator",
            f"Market {p['id']} is operated by {existing['operator']}.",
        )
    entry = {"name": p["name"], "operator": org, "gated": p["gated"]}
    return Effects(writes={market_key(p["id"]): entry})


MARKET_CONTRACTS = [
    Contract(
        "market.register",
        MARKET,
        _market_register,
        "A market operator opens a market or changes whether it has gates.",
    ),
]
