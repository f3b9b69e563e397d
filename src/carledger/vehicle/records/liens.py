"""Liens: mortgages (저당) and seizures (압류).

- ``lien.register`` (lender or registry): ``lien_id`` unique per VIN
  (``lien_exists``), ``kind``, ``amount`` in KRW, ``creditor`` (an organisation id). A
  lender registers only its own liens (``creditor_mismatch``); the registry may
  register any (a tax office's seizure).
- ``lien.release`` (the creditor's lender, or the registry): ``lien_not_active``
  unless the lien is registered and not released.

An active lien blocks scrapping unless its creditor co-signs (``vehicle.scrap``).
"""

from __future__ import annotations

from carledger.errors import Conflict, RuleViolation, Unauthorized
from carledger.vehicle import queries
from carledger.vehicle.fields import DATE, HASH, KRW, ORG, PREV, VIN
from carledger.vehicle.records.common import Ctx, VinRecord
from carledger.vehicle.schema import Enum, Obj, Str, opt

__all__ = ["RECORDS"]

LIEN_ID = Str(1, 64, r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "letters, digits, '.', '_', '-'")

REGISTER = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "lien_id": LIEN_ID,
        "kind": Enum("mortgage", "seizure"),
        "amount": KRW,
        "creditor": ORG,
        "date": DATE,
        "document_hash": opt(HASH),
    }
)
RELEASE = Obj({"vin": VIN, "prev": PREV, "lien_id": LIEN_ID, "date": DATE})


def _creditor(ctx: Ctx, creditor: str) -> None:
    if ctx.signers_with("registry"):
        return
    if creditor not in {s.org for s in ctx.signers_with("lender")}:
        raise Unauthorized(
            "creditor_mismatch",
            f"A lender registers and releases only its own liens (creditor {creditor}).",
        )


def _register(ctx: Ctx) -> None:
    p = ctx.payload
    _creditor(ctx, p["creditor"])
    if ctx.state is not None and p["lien_id"] in ctx.state["liens"]:
        raise Conflict("lien_exists", f"{ctx.vin} already has a lien {p['lien_id']}.")


def _release(ctx: Ctx) -> None:
    p = ctx.payload
    lien = queries.active_liens(ctx.state).get(p["lien_id"])
    if lien is None:
        raise RuleViolation("lien_not_active", f"{ctx.vin} has no active lien {p['lien_id']}.")
    _creditor(ctx, lien["creditor"])


RECORDS = [
    VinRecord(
        "lien.register",
        REGISTER,
        "A mortgage or seizure is registered.",
        roles=("lender", "registry"),
        rule=_register,
        immutable=("lien_id", "creditor"),
    ),
    VinRecord(
        "lien.release",
        RELEASE,
        "A lien is released.",
        roles=("lender", "registry"),
        rule=_release,
        immutable=("lien_id",),
    ),
]
