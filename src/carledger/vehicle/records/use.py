"""Records of use: odometer readings, services, accidents and claims, batteries, usage.

- ``odometer.reading`` (repair_shop, inspector, registry, dealer or manufacturer
  telematics): ``km`` observed on ``observed_on``. Never refused for what it says:
  rollbacks and implausible readings are flagged (:mod:`carledger.vehicle.odometer`).
- ``service.record`` (repair_shop): work items, parts used, odometer.
- ``accident.record`` (insurer or police) and ``insurance.claim`` (insurer): own
  damage split into parts/labour/paint, other-party damage, total loss, flood, fire,
  frame damage. Claim details stay off chain; only ``claim_hash`` is on chain. A
  claim may link the ``accident`` record it settles (``unknown_accident``).
- ``battery.report`` (manufacturer, repair_shop, inspector): state of health in
  per-mille, capacity in Wh, charge cycles.
- ``usage.start`` / ``usage.end`` (rental: rental and lease firms): a use period of
  the firm ``firm`` (the signer's organisation, ``firm_mismatch``); one open period
  at a time (``usage_open`` / ``usage_not_open``).
"""

from __future__ import annotations

from carledger.errors import Conflict, RuleViolation, Unauthorized
from carledger.vehicle import queries
from carledger.vehicle.fields import (
    DATE,
    HASH,
    KM,
    KRW,
    NAME,
    ORG,
    PREV,
    SERIAL,
    TXID,
    VIN,
)
from carledger.vehicle.records.common import Ctx, VinRecord
from carledger.vehicle.schema import Bool, Enum, Int, List, Obj, Str, opt

__all__ = ["RECORDS"]

READING = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "km": KM,
        "observed_on": DATE,
        "source": Enum("service", "inspection", "registry", "dealer", "telematics"),
    }
)

SERVICE = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "odometer_km": KM,
        "items": List(Obj({"code": Str(1, 32), "description": Str(1, 200)}), 50, min_len=1),
        "parts": List(
            Obj(
                {
                    "part_no": Str(1, 40),
                    "serial": opt(SERIAL),
                    "maker": opt(NAME),
                    "quantity": Int(1, 1000),
                }
            ),
            50,
        ),
        "total_cost": opt(KRW),
        "invoice_hash": opt(HASH),
    }
)

OWN_DAMAGE = Obj({"parts": KRW, "labour": KRW, "paint": KRW})

ACCIDENT = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "own_damage": opt(OWN_DAMAGE),
        "other_party_damage": opt(KRW),
        "total_loss": Bool(),
        "flood": Bool(),
        "fire": Bool(),
        "frame_damage": opt(Bool()),
        "odometer_km": opt(KM),
        "report_hash": opt(HASH),
    }
)

CLAIM = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "own_damage": OWN_DAMAGE,
        "other_party_damage": KRW,
        "total_loss": Bool(),
        "flood": Bool(),
        "fire": Bool(),
        "frame_damage": opt(Bool()),
        "claim_hash": HASH,
        "accident": opt(TXID),
        "odometer_km": opt(KM),
    }
)


def _claim(ctx: Ctx) -> None:
    link = ctx.payload.get("accident")
    if link is None:
        return
    entry = None if ctx.state is None else ctx.state["log"].get(link)
    if entry is None or entry["type"] != "accident.record":
        raise RuleViolation(
            "unknown_accident",
            f"accident names no accident.record of {ctx.vin}.",
            field="accident",
        )


BATTERY = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "soh_permille": Int(0, 1000),
        "capacity_wh": Int(0, 1_000_000),
        "cycles": opt(Int(0, 1_000_000)),
        "odometer_km": opt(KM),
    }
)

USAGE_START = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "kind": Enum("rental", "lease"),
        "firm": ORG,
        "date": DATE,
        "contract_hash": opt(HASH),
    }
)
USAGE_END = Obj({"vin": VIN, "prev": PREV, "firm": ORG, "date": DATE})


def _firm(ctx: Ctx) -> None:
    if ctx.payload["firm"] not in {s.org for s in ctx.signers_with("rental")}:
        raise Unauthorized(
            "firm_mismatch", "A usage record is signed by a member of the firm it names."
        )


def _usage_start(ctx: Ctx) -> None:
    _firm(ctx)
    current = queries.open_usage(ctx.state)
    if current is not None:
        raise Conflict(
            "usage_open",
            f"{ctx.vin} is in a {current['kind']} period of {current['firm']} since "
            f"{current['from']}; end it first.",
        )


def _usage_end(ctx: Ctx) -> None:
    _firm(ctx)
    current = queries.open_usage(ctx.state)
    if current is None or current["firm"] != ctx.payload["firm"]:
        raise RuleViolation(
            "usage_not_open", f"{ctx.vin} has no open use period of {ctx.payload['firm']}."
        )


RECORDS = [
    VinRecord(
        "odometer.reading",
        READING,
        "An odometer reading.",
        roles=("repair_shop", "inspector", "registry", "dealer", "manufacturer"),
        dates=("observed_on",),
    ),
    VinRecord(
        "service.record",
        SERVICE,
        "Maintenance or repair work by a repair shop.",
        roles=("repair_shop",),
    ),
    VinRecord(
        "accident.record",
        ACCIDENT,
        "An accident reported by an insurer or the police.",
        roles=("insurer", "police"),
    ),
    VinRecord(
        "insurance.claim",
        CLAIM,
        "An insurance claim (details off chain, their hash on chain).",
        roles=("insurer",),
        rule=_claim,
    ),
    VinRecord(
        "battery.report",
        BATTERY,
        "Traction battery state of health.",
        roles=("manufacturer", "repair_shop", "inspector"),
    ),
    VinRecord(
        "usage.start",
        USAGE_START,
        "A rental or lease period begins.",
        roles=("rental",),
        rule=_usage_start,
        immutable=("firm", "kind"),
    ),
    VinRecord(
        "usage.end",
        USAGE_END,
        "A rental or lease period ends.",
        roles=("rental",),
        rule=_usage_end,
        immutable=("firm",),
    ),
]
