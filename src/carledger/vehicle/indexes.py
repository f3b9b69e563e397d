"""State keys of the vehicle records, and the indexes that span vehicles.

Keys written by the vehicle contracts:

- ``vehicle/<VIN>``: the folded vehicle state (:mod:`carledger.vehicle.fold`);
- ``plate/<plate>``: ``{"vin", "id"}``, the vehicle that currently carries a plate
  (dropped when the plate changes or the car is scrapped);
- ``listing/<market>/<listing_no>``: ``{"vin", "dealer", "price", "opened", "id"}``,
  the open listings of a market (what ``GET /v1/listings`` pages through);
- ``part/<serial>``: ``{"vin", "id", "on"}``, the vehicle a serial-numbered part is
  installed on now;
- ``market/<id>``: ``{"name", "operator", "gated"}`` (seeded from the genesis, or
  written by ``market.register``).

Each index entry is a pure function of one vehicle's state (:func:`index_entries`);
a handler writes the difference between the entries before and after its record
(:func:`index_writes`), so corrections and voids keep the indexes right without
special cases. An entry is only deleted while it still points at this VIN: a part
that moved on to another car stays indexed under that car.
"""

from __future__ import annotations

from typing import Any

from carledger.ledger.contracts import StateView
from carledger.vehicle import queries

__all__ = [
    "index_entries",
    "index_writes",
    "listing_key",
    "market_key",
    "part_key",
    "plate_key",
    "vehicle_key",
]


def vehicle_key(vin: str) -> str:
    return f"vehicle/{vin}"


def plate_key(plate: str) -> str:
    return f"plate/{plate}"


def listing_key(market: str, listing_no: str) -> str:
    return f"listing/{market}/{listing_no}"


def part_key(serial: str) -> str:
    return f"part/{serial}"


def market_key(market: str) -> str:
    return f"market/{market}"


def index_entries(vin: str, state: dict[str, Any] | None) -> dict[str, Any]:
    """The cross-vehicle index entries that ``state`` implies for ``vin``."""
    if state is None:
        return {}
    out: dict[str, Any] = {}
    plate = queries.current_plate(state)
    if plate is not None and not queries.is_scrapped(state):
        out[plate_key(plate)] = {"vin": vin, "id": queries.live(state["plates"])[-1]["id"]}
    listing = state["listing"]
    if listing is not None:
        out[listing_key(listing["market"], listing["no"])] = {
            "vin": vin,
            "dealer": listing["dealer"],
            "price": listing["price"],
            "opened": listing["opened"],
            "id": listing["id"],
        }
    for serial, part in state["parts"].items():
        out[part_key(serial)] = {"vin": vin, "id": part["id"], "on": part["on"]}
    return out


def index_writes(
    view: StateView, vin: str, before: dict[str, Any] | None, after: dict[str, Any]
) -> dict[str, Any]:
    """The index writes that take the indexes from ``before`` to ``after``."""
    old, new = index_entries(vin, before), index_entries(vin, after)
    writes: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for key in sorted(old.keys() - new.keys()):
        current = view.get(key)
        if current is not None and current.get("vin") == vin:
            writes[key] = None
    return writes
