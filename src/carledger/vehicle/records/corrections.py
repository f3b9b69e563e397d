"""Corrections, disputes and odometer exceptions: how a record is fixed without editing it.

Records are never edited or deleted; these records add to the story and the report
shows both sides, linked. A scrapped car still accepts all three of the first.

- ``record.correct`` (the original author, i.e. a member of an organisation that
  signed the target or the same key, or the registry: ``not_original_author``):
  ``target`` (a record of this VIN, ``unknown_target``), ``fields`` with the
  corrected top-level fields, each checked against the target type's schema
  (``unknown_field``, ``field_not_correctable`` for fields that identify the record
  or its parties, the usual field codes), ``reason``. Corrections, disputes and
  resolutions are not corrected (``not_correctable``): a wrong correction is
  disputed, and voiding it undoes it. A void record is not corrected either
  (``target_void``). The corrected values flow into the vehicle state where the
  state holds them (odometer readings, inspections, accidents, batteries, liens,
  the birth record); the previous values stay in ``orig``.
- ``record.dispute`` (any member; or the current owner's own key, named as
  ``disputant``: ``not_owner``, ``owner_signature_required``): ``target``, ``reason``,
  ``evidence_hash``. One open dispute per target (``dispute_open``); disputes and
  resolutions are final (``not_disputable``).
- ``dispute.resolve`` (registry or market_operator): ``dispute``, ``outcome``
  (``upheld`` voids the target and undoes what it contributed to the state;
  ``rejected`` restores its status), ``reason``. ``unknown_dispute``,
  ``dispute_not_open``.
- ``odometer.exception`` (repair_shop with a registry co-signature:
  ``registry_cosign_required``): the instrument cluster or ECU was replaced; the old
  and new readings; later readings are judged from the new baseline.
"""

from __future__ import annotations

from typing import Any

from carledger.errors import Conflict, NotFound, RuleViolation, Unauthorized
from carledger.vehicle import queries
from carledger.vehicle.fields import DATE, HASH, KM, PREV, REASON, REF, TXID, VIN
from carledger.vehicle.records import (
    gate,
    inspection,
    liens,
    lifecycle,
    parts,
    recalls,
    theft,
    trading,
    use,
)
from carledger.vehicle.records.common import ANY_MEMBER, Ctx, VinRecord, party_signed, refs_parties
from carledger.vehicle.schema import AnyValue, Enum, Map, Obj, Str, opt

__all__ = ["RECORDS"]

_ALWAYS_IMMUTABLE = ("vin", "prev", "vehicles")


def _targets() -> dict[str, tuple[Obj, tuple[str, ...]]]:
    out: dict[str, tuple[Obj, tuple[str, ...]]] = {}
    for family in (lifecycle, trading, inspection, gate, use, parts, liens, theft, recalls):
        for rec in family.RECORDS:
            out[rec.type] = (rec.schema, _ALWAYS_IMMUTABLE + rec.immutable)
    out["recall.issue"] = (recalls.ISSUE, (*_ALWAYS_IMMUTABLE, "campaign"))
    out["odometer.exception"] = (EXCEPTION, _ALWAYS_IMMUTABLE)
    return out


#: A wrong correction is disputed (and voided, which undoes it), not corrected again;
#: disputes and their resolutions are final.
_NOT_CORRECTABLE = frozenset({"record.correct", "record.dispute", "dispute.resolve"})
_NOT_DISPUTABLE = frozenset({"record.dispute", "dispute.resolve"})


def _target(ctx: Ctx, code: str) -> dict[str, Any]:
    target = ctx.payload["target"]
    entry = None if ctx.state is None else ctx.state["log"].get(target)
    if entry is None:
        raise NotFound("unknown_target", f"{target} is not a record of {ctx.vin}.", target=target)
    excluded, verb = (
        (_NOT_CORRECTABLE, "corrected")
        if code == "not_correctable"
        else (_NOT_DISPUTABLE, "disputed")
    )
    if entry["type"] in excluded:
        raise RuleViolation(code, f"A {entry['type']} record is not {verb}.", target=target)
    if entry["status"] == "void":
        raise RuleViolation("target_void", f"{target} was voided by an upheld dispute.")
    return dict(entry)


CORRECT = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "target": TXID,
        # Checked against the target's own schema by the handler (it needs the target).
        "fields": Map(Str(1, 64), AnyValue(), 32, min_len=1),
        "reason": REASON,
    }
)


def _correct(ctx: Ctx) -> None:
    entry = _target(ctx, "not_correctable")
    if not ctx.signers_with("registry"):
        authors = set(entry["by"])
        orgs = set()
        for key in authors:
            member = ctx.view.get(f"member/{key}")
            if member is not None:
                orgs.add(member["org"])
        if not any(s.key in authors or (s.enrolled and s.org in orgs) for s in ctx.tx.signers):
            raise Unauthorized(
                "not_original_author",
                "record.correct is signed by the organisation that wrote the target, or by "
                "the registry.",
            )
    schema, immutable = _TARGETS[entry["type"]]
    schema.check_fields(ctx.payload["fields"], "fields", immutable)


DISPUTE = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "target": TXID,
        "reason": REASON,
        "evidence_hash": HASH,
        "disputant": opt(REF),
    }
)


def _dispute(ctx: Ctx) -> None:
    _target(ctx, "not_disputable")
    if any(d["target"] == ctx.payload["target"] for d in queries.open_disputes(ctx.state).values()):
        raise Conflict(
            "dispute_open",
            f"{ctx.payload['target']} is already disputed; wait for the resolution.",
        )
    disputant = ctx.payload.get("disputant")
    if disputant is not None:
        if disputant != queries.current_owner(ctx.state):
            raise RuleViolation("not_owner", f"disputant is not the current owner of {ctx.vin}.")
        if not party_signed(ctx.tx, disputant):
            raise Unauthorized(
                "owner_signature_required", "A dispute in the owner's name is signed by the owner."
            )


RESOLVE = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "dispute": TXID,
        "outcome": Enum("upheld", "rejected"),
        "reason": REASON,
    }
)


def _resolve(ctx: Ctx) -> None:
    dispute_id = ctx.payload["dispute"]
    dispute = None if ctx.state is None else ctx.state["disputes"].get(dispute_id)
    if dispute is None:
        raise NotFound("unknown_dispute", f"{dispute_id} is not a dispute of {ctx.vin}.")
    if dispute["status"] != "open":
        raise RuleViolation(
            "dispute_not_open", f"The dispute {dispute_id} was already {dispute['status']}."
        )


EXCEPTION = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "old_km": KM,
        "new_km": KM,
        "reason": Enum("cluster_replaced", "ecu_replaced"),
        "evidence_hash": HASH,
    }
)


def _exception(ctx: Ctx) -> None:
    if not ctx.signers_with("registry"):
        raise Unauthorized(
            "registry_cosign_required",
            "odometer.exception is signed by the repair shop and co-signed by the registry.",
        )


RECORDS = [
    VinRecord(
        "record.correct",
        CORRECT,
        "Corrects fields of an earlier record; both stay visible, linked.",
        roles=(),
        cosign=ANY_MEMBER,
        rule=_correct,
        dates=(),
        after_scrap=True,
    ),
    VinRecord(
        "record.dispute",
        DISPUTE,
        "Disputes an earlier record until it is resolved.",
        roles=(),
        cosign=ANY_MEMBER,
        rule=_dispute,
        dates=(),
        after_scrap=True,
        parties=refs_parties("disputant"),
    ),
    VinRecord(
        "dispute.resolve",
        RESOLVE,
        "Upholds (voids the target) or rejects a dispute.",
        roles=("registry", "market_operator"),
        rule=_resolve,
        dates=(),
        after_scrap=True,
    ),
    VinRecord(
        "odometer.exception",
        EXCEPTION,
        "Instrument cluster or ECU replaced: a new odometer baseline.",
        roles=("repair_shop",),
        cosign=("registry",),
        rule=_exception,
    ),
]

_TARGETS = _targets()
