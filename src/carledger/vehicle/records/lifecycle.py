"""Lifecycle records: birth, registration, ownership, scrapping.

- ``vehicle.register`` (manufacturer or registry): the birth record, once per VIN
  (``vehicle_exists``). It need not be the VIN's first record: cars already on the
  road enter the ledger through whatever record comes first.
- ``registration.record`` (registry): first registration date, plate, use type. A
  plate carried by another live car is refused (``plate_in_use``); a first
  registration date is set once (``already_first_registered``; correct it instead).
- ``ownership.transfer``: by the registry alone, or signed by the current owner and
  the new owner (``owner_signature_required`` / ``new_owner_signature_required``).
  A car with no recorded owner can be sold new by its manufacturer with the buyer.
  ``from`` must be the current owner (``owner_mismatch``). Refused while stolen
  (``vehicle_stolen``) or listed (``vehicle_listed``).
- ``vehicle.scrap`` (scrapyard or registry): refused while stolen or listed, and
  while a lien is active unless its creditor co-signs (``active_lien``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carledger.errors import Conflict, InvalidInput, RuleViolation, Unauthorized
from carledger.vehicle import queries
from carledger.vehicle.fields import DATE, FUELS, HASH, KM, KRW, NAME, PLATE, PREV, REF, USES, VIN
from carledger.vehicle.indexes import plate_key
from carledger.vehicle.inspection_form import TRANSMISSIONS
from carledger.vehicle.records.common import (
    Ctx,
    VinRecord,
    party_signed,
    refs_parties,
    require_not_listed,
    require_not_stolen,
)
from carledger.vehicle.schema import Int, Nullable, Obj, Str, opt

__all__ = ["RECORDS"]


REGISTER = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "make": NAME,
        "model": NAME,
        "model_year": Int(1950, 2100),
        "trim": NAME,
        "color": NAME,
        "fuel": FUELS,
        "transmission": TRANSMISSIONS,
        "engine_code": Str(1, 32),
        "plant": Str(1, 64),
        "manufactured_on": DATE,
        "country": Str(2, 2, r"[A-Z]{2}", "ISO 3166 alpha-2 such as KR"),
    }
)


def _register(ctx: Ctx) -> None:
    birth = None if ctx.state is None else ctx.state["birth"]
    if birth is not None and not birth.get("void"):
        raise Conflict(
            "vehicle_exists",
            f"{ctx.vin} already has a birth record ({birth['id']}); correct it instead.",
        )


def _one_of_registration(p: Mapping[str, Any], path: str) -> None:
    del path
    if not {"first_registered_on", "plate", "use"} & p.keys():
        raise InvalidInput(
            "missing_field",
            "registration.record needs at least one of first_registered_on, plate and use.",
            field="plate",
        )


REGISTRATION = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "first_registered_on": opt(DATE),
        "plate": opt(PLATE),
        "use": opt(USES),
    },
    rule=_one_of_registration,
)


def _registration(ctx: Ctx) -> None:
    p = ctx.payload
    first = None if ctx.state is None else ctx.state["first_registered"]
    if "first_registered_on" in p and first is not None and first != p["first_registered_on"]:
        raise RuleViolation(
            "already_first_registered",
            f"{ctx.vin} was first registered on {first}; correct that record instead.",
        )
    if "plate" in p:
        holder = ctx.view.get(plate_key(p["plate"]))
        if holder is not None and holder["vin"] != ctx.vin:
            raise Conflict(
                "plate_in_use",
                f"The plate {p['plate']} is registered to another vehicle.",
                plate=p["plate"],
            )


def _different_owner(p: Mapping[str, Any], path: str) -> None:
    del path
    if p["from"] == p["to"]:
        raise InvalidInput(
            "invalid_field", "payload.to is a different owner than from.", field="to"
        )


TRANSFER = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "from": Nullable(REF),
        "to": REF,
        "date": DATE,
        "price": KRW,
        "odometer_km": KM,
        "contract_hash": HASH,
    },
    rule=_different_owner,
)


def _transfer(ctx: Ctx) -> None:
    p, tx = ctx.payload, ctx.tx
    owner = queries.current_owner(ctx.state)
    if p["from"] != owner:
        raise RuleViolation(
            "owner_mismatch",
            f"from is not the current owner of {ctx.vin} ({owner or 'none recorded'}).",
        )
    require_not_stolen(ctx)
    require_not_listed(ctx)
    if ctx.signers_with("registry"):
        return
    seller_signed = (
        party_signed(tx, owner) if owner is not None else bool(ctx.signers_with("manufacturer"))
    )
    if not seller_signed:
        raise Unauthorized(
            "owner_signature_required",
            "ownership.transfer is signed by the current owner (or, for a car without an "
            "owner, its manufacturer) and the new owner, or by the registry alone.",
        )
    if not party_signed(tx, p["to"]):
        raise Unauthorized(
            "new_owner_signature_required",
            "ownership.transfer is signed by the new owner too, unless the registry signs it.",
        )


SCRAP = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "odometer_km": KM,
        "certificate_hash": HASH,
    }
)


def _scrap(ctx: Ctx) -> None:
    require_not_stolen(ctx)
    require_not_listed(ctx)
    signing_orgs = {s.org for s in ctx.tx.signers if s.enrolled}
    for lien_id, lien in sorted(queries.active_liens(ctx.state).items()):
        if lien["creditor"] not in signing_orgs:
            raise RuleViolation(
                "active_lien",
                f"Lien {lien_id} of {lien['creditor']} is active; the lender must co-sign the "
                "scrapping or release the lien first.",
                lien=lien_id,
            )


RECORDS = [
    VinRecord(
        "vehicle.register",
        REGISTER,
        "The birth record of a vehicle (once per VIN).",
        roles=("manufacturer", "registry"),
        rule=_register,
        dates=("manufactured_on",),
    ),
    VinRecord(
        "registration.record",
        REGISTRATION,
        "First registration, plate change or use type, by the registry.",
        roles=("registry",),
        rule=_registration,
        dates=("date", "first_registered_on"),
        immutable=("plate",),
    ),
    VinRecord(
        "ownership.transfer",
        TRANSFER,
        "A change of owner, signed by both owners or by the registry.",
        roles=(),
        cosign=("registry", "manufacturer"),
        rule=_transfer,
        parties=refs_parties("from", "to"),
        immutable=("from", "to"),
    ),
    VinRecord(
        "vehicle.scrap",
        SCRAP,
        "The end of a vehicle; afterwards it accepts only corrections and disputes.",
        roles=("scrapyard", "registry"),
        cosign=("lender",),
        rule=_scrap,
    ),
]
