"""Serial-numbered parts (engines, transmissions, battery packs, airbags...).

- ``part.install`` (repair_shop or manufacturer): ``serial`` is indexed under
  ``part/<serial>``. A serial installed on another live car is refused
  (``part_installed_elsewhere``: remove it there first); a part from a scrapped car
  may be installed again (salvage) and the index moves to the new car. Installing a
  serial this car already carries is ``part_already_installed``.
- ``part.remove`` (repair_shop or manufacturer): ``part_not_installed`` unless the
  car carries the serial.
"""

from __future__ import annotations

from carledger.errors import Conflict, RuleViolation
from carledger.vehicle import queries
from carledger.vehicle.fields import DATE, KM, NAME, PREV, SERIAL, VIN
from carledger.vehicle.indexes import part_key, vehicle_key
from carledger.vehicle.records.common import Ctx, VinRecord
from carledger.vehicle.schema import Obj, Str, opt

__all__ = ["RECORDS"]

PART = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "serial": SERIAL,
        "part_no": Str(1, 40),
        "maker": NAME,
        "position": Str(1, 40),
        "date": DATE,
        "odometer_km": opt(KM),
    }
)


def _install(ctx: Ctx) -> None:
    serial = ctx.payload["serial"]
    if ctx.state is not None and serial in ctx.state["parts"]:
        raise Conflict("part_already_installed", f"{ctx.vin} already carries part {serial}.")
    holder = ctx.view.get(part_key(serial))
    if holder is not None and holder["vin"] != ctx.vin:
        other = ctx.view.get(vehicle_key(holder["vin"]))
        if not queries.is_scrapped(other):
            raise RuleViolation(
                "part_installed_elsewhere",
                f"Part {serial} is installed on {holder['vin']}, a live vehicle; record "
                "part.remove there first.",
                vin=holder["vin"],
            )


def _remove(ctx: Ctx) -> None:
    serial = ctx.payload["serial"]
    if ctx.state is None or serial not in ctx.state["parts"]:
        raise RuleViolation("part_not_installed", f"{ctx.vin} carries no part {serial}.")


RECORDS = [
    VinRecord(
        "part.install",
        PART,
        "A serial-numbered part is installed.",
        roles=("repair_shop", "manufacturer"),
        rule=_install,
        immutable=("serial",),
    ),
    VinRecord(
        "part.remove",
        PART,
        "A serial-numbered part is removed.",
        roles=("repair_shop", "manufacturer"),
        rule=_remove,
        immutable=("serial",),
    ),
]
