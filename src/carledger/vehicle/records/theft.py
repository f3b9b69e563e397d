"""Theft: ``theft.report`` and ``theft.recover`` (police or registry).

A stolen car cannot change owner or be listed (``vehicle_stolen``, enforced by the
trading and lifecycle records); other records (a gate sighting, a service) are
still accepted, since they help find it. ``already_stolen`` / ``not_stolen`` keep
the reports paired.
"""

from __future__ import annotations

from carledger.errors import Conflict, RuleViolation
from carledger.vehicle import queries
from carledger.vehicle.fields import DATE, HASH, PREV, VIN
from carledger.vehicle.records.common import Ctx, VinRecord
from carledger.vehicle.schema import Obj, opt

__all__ = ["RECORDS"]

REPORT = Obj({"vin": VIN, "prev": PREV, "date": DATE, "case_hash": opt(HASH)})
RECOVER = Obj({"vin": VIN, "prev": PREV, "date": DATE})


def _report(ctx: Ctx) -> None:
    if queries.is_stolen(ctx.state):
        raise Conflict("already_stolen", f"{ctx.vin} is already reported stolen.")


def _recover(ctx: Ctx) -> None:
    if not queries.is_stolen(ctx.state):
        raise RuleViolation("not_stolen", f"{ctx.vin} is not reported stolen.")


RECORDS = [
    VinRecord(
        "theft.report",
        REPORT,
        "The car is reported stolen.",
        roles=("police", "registry"),
        rule=_report,
    ),
    VinRecord(
        "theft.recover",
        RECOVER,
        "A stolen car is recovered.",
        roles=("police", "registry"),
        rule=_recover,
    ),
]
