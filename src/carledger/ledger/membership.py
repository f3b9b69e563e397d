"""Membership: organisations, member keys and their roles, validators.

State entries (all written only by the transactions below or by the genesis):

- ``org/<id>``: ``{"name", "roles", "admins": [keys], "admitted_at": height}``
- ``orgs``: ``{"ids": [sorted org ids]}`` (for admission quorums)
- ``member/<key>``: ``{"org", "member", "roles", "status", "since", "until",
  "valid_until", "replaced_by"}``; ``status`` is ``active``, ``revoked`` or
  ``rotated``. Entries are never deleted, so a report can show who signed a record
  long after the key was retired.
- ``validators``: ``{"nodes": [{"id", "org", "key", "since"}]}``
- ``market/<id>``: ``{"name", "operator", "gated"}``

Record types:

- ``member.enrol`` (an admin of the org): key, org, member, roles, valid_until?
- ``member.revoke`` (an admin of the member's org): key, reason
- ``key.rotate`` (signed by both the old and the new key): old, new
- ``org.admit`` (admins of a quorum of existing orgs): id, name, roles, admins
- ``validator.add`` / ``validator.remove`` (admins of a quorum of orgs): id, org?, key?

A revoked or rotated key is refused for every transaction after its revocation,
including later ones in the same block; what it signed before stays valid.
"""

from __future__ import annotations

import re
from typing import Any

from carledger.crypto.keys import is_public_key_hex
from carledger.encoding.timefmt import is_date
from carledger.errors import Conflict, InvalidInput, NotFound, RuleViolation, Unauthorized
from carledger.ledger.contracts import (
    BlockContext,
    Contract,
    Effects,
    Signer,
    StateView,
    TxContext,
)
from carledger.ledger.genesis import ID_RE, MEMBER_RE, ROLES, Genesis

__all__ = ["CONTRACTS", "genesis_state", "resolve_signer"]


def genesis_state(genesis: Genesis) -> dict[str, Any]:
    """The state at height 0, derived from the genesis document alone."""
    state: dict[str, Any] = {}
    for org in genesis.orgs:
        state[f"org/{org['id']}"] = {
            "name": org["name"],
            "roles": sorted(org["roles"]),
            "admins": list(org["admins"]),
            "admitted_at": 0,
        }
        for key in org["admins"]:
            state[f"member/{key}"] = _member(org["id"], f"{org['id']}-admin", ["admin"], 0)
    state["orgs"] = {"ids": sorted(o["id"] for o in genesis.orgs)}
    for member in genesis.members:
        state[f"member/{member['key']}"] = _member(
            member["org"], member["member"], member["roles"], 0, member.get("valid_until")
        )
    state["validators"] = {
        "nodes": [
            {"id": v["id"], "org": v["org"], "key": v["key"], "since": 0}
            for v in genesis.validators
        ]
    }
    for market in genesis.markets:
        state[f"market/{market['id']}"] = {
            "name": market["name"],
            "operator": market["operator"],
            "gated": market["gated"],
        }
    return state


def _member(
    org: str, member: str, roles: list[str], since: int, valid_until: str | None = None
) -> dict[str, Any]:
    return {
        "org": org,
        "member": member,
        "roles": sorted(roles),
        "status": "active",
        "since": since,
        "until": None,
        "valid_until": valid_until,
        "replaced_by": None,
    }


def resolve_signer(state: StateView, key: str, ctx: BlockContext) -> Signer:
    """The active member behind ``key``; raise :class:`Unauthorized` otherwise.

    Codes: ``unknown_signer`` (never enrolled), ``signer_revoked`` (revoked or
    rotated away), ``signer_expired`` (``valid_until`` is before the block date).
    """
    entry = state.get(f"member/{key}")
    if entry is None:
        raise Unauthorized("unknown_signer", f"The key {key[:16]}... is not an enrolled member.")
    if entry["status"] != "active":
        raise Unauthorized(
            "signer_revoked",
            f"The key {key[:16]}... was {entry['status']} at height {entry['until']}.",
        )
    if entry.get("valid_until") and entry["valid_until"] < ctx.date:
        raise Unauthorized(
            "signer_expired", f"The key {key[:16]}... expired on {entry['valid_until']}."
        )
    return Signer(
        key=key, org=entry["org"], member=entry["member"], roles=frozenset(entry["roles"])
    )


# --- payload checks -------------------------------------------------------------


def _fields(payload: dict[str, Any], required: set[str], optional: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    missing = required - payload.keys()
    if missing:
        raise InvalidInput(
            "missing_field", f"payload lacks {', '.join(sorted(missing))}.", fields=sorted(missing)
        )
    extra = payload.keys() - required - optional
    if extra:
        raise InvalidInput(
            "unknown_field",
            f"payload has unknown fields {', '.join(sorted(extra))}.",
            fields=sorted(extra),
        )


def _key(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not is_public_key_hex(value):
        raise InvalidInput("invalid_public_key", f"payload.{name} is not a public key.", field=name)
    return str(value)


def _roles(value: Any) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(r, str) for r in value)
        or len(set(value)) != len(value)
    ):
        raise InvalidInput("invalid_roles", "roles is a non-empty list of distinct role names.")
    unknown = set(value) - ROLES
    if unknown:
        raise InvalidInput("unknown_role", f"Unknown roles: {', '.join(sorted(unknown))}.")
    return sorted(value)


def _id(payload: dict[str, Any], name: str, pattern: re.Pattern[str] = ID_RE) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput("invalid_id", f"payload.{name} is not a valid identifier.", field=name)
    return value


def _reason(payload: dict[str, Any]) -> None:
    value = payload.get("reason")
    if not isinstance(value, str) or not 1 <= len(value) <= 500:
        raise InvalidInput("invalid_field", "payload.reason is 1-500 characters.", field="reason")


def _validate_enrol(p: dict[str, Any]) -> None:
    _fields(p, {"key", "org", "member", "roles"}, {"valid_until"})
    _key(p, "key")
    _id(p, "org")
    _id(p, "member", MEMBER_RE)
    _roles(p["roles"])
    if "admin" in p["roles"]:
        raise InvalidInput("invalid_roles", "Admin keys are named in org.admit, not enrolled.")
    vu = p.get("valid_until")
    if vu is not None and not is_date(vu):
        raise InvalidInput("invalid_date", "valid_until is a date YYYY-MM-DD.", field="valid_until")


def _validate_revoke(p: dict[str, Any]) -> None:
    _fields(p, {"key", "reason"})
    _key(p, "key")
    _reason(p)


def _validate_rotate(p: dict[str, Any]) -> None:
    _fields(p, {"old", "new"})
    if _key(p, "old") == _key(p, "new"):
        raise InvalidInput("invalid_field", "old and new are the same key.")


def _validate_admit(p: dict[str, Any]) -> None:
    _fields(p, {"id", "name", "roles", "admins"})
    _id(p, "id")
    name = p.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise InvalidInput("invalid_field", "payload.name is 1-200 characters.", field="name")
    roles = _roles(p["roles"])
    if "admin" in roles:
        raise InvalidInput("invalid_roles", "An organisation's roles do not include admin.")
    admins = p.get("admins")
    if not isinstance(admins, list) or not 1 <= len(admins) <= 8:
        raise InvalidInput("invalid_field", "admins is a list of 1-8 public keys.", field="admins")
    if not all(is_public_key_hex(a) for a in admins) or len(set(admins)) != len(admins):
        raise InvalidInput("invalid_public_key", "admins are distinct public keys.")


def _validate_validator_add(p: dict[str, Any]) -> None:
    _fields(p, {"id", "org", "key"})
    _id(p, "id")
    _id(p, "org")
    _key(p, "key")


def _validate_validator_remove(p: dict[str, Any]) -> None:
    _fields(p, {"id"})
    _id(p, "id")


# --- handlers -------------------------------------------------------------------


def _require_org_admin(state: StateView, tx: TxContext, org_id: str) -> None:
    org = state.get(f"org/{org_id}")
    if org is None:
        raise NotFound("unknown_org", f"There is no organisation {org_id}.")
    if not any(s.key in org["admins"] for s in tx.signers):
        raise Unauthorized(
            "unauthorized_role", f"{tx.tx.type} must be signed by an admin of {org_id}."
        )


def _require_admission_quorum(state: StateView, tx: TxContext, num: int, den: int) -> None:
    ids = state.get("orgs")["ids"]
    signing_orgs = {
        org_id
        for org_id in ids
        if any(s.key in state.get(f"org/{org_id}")["admins"] for s in tx.signers)
    }
    needed = -(-len(ids) * num // den)  # ceiling, in integers
    if len(signing_orgs) < needed:
        raise Unauthorized(
            "quorum_not_met",
            f"{tx.tx.type} needs admins of {needed} of {len(ids)} organisations; "
            f"{len(signing_orgs)} signed.",
            needed=needed,
            signed=len(signing_orgs),
        )


def _enrol(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
    p = tx.payload
    _require_org_admin(state, tx, p["org"])
    org = state.get(f"org/{p['org']}")
    if not set(p["roles"]) <= set(org["roles"]):
        raise RuleViolation(
            "role_not_held_by_org",
            f"{p['org']} may not grant {', '.join(sorted(set(p['roles']) - set(org['roles'])))}.",
        )
    if state.get(f"member/{p['key']}") is not None:
        raise Conflict("member_exists", "This key is already enrolled (keys are never reused).")
    entry = _member(p["org"], p["member"], p["roles"], ctx.height, p.get("valid_until"))
    return Effects(writes={f"member/{p['key']}": entry})


def _revoke(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
    p = tx.payload
    entry = state.get(f"member/{p['key']}")
    if entry is None:
        raise NotFound("unknown_member", "There is no member with this key.")
    _require_org_admin(state, tx, entry["org"])
    if entry["status"] != "active":
        raise Conflict("member_not_active", f"This key is already {entry['status']}.")
    entry.update(status="revoked", until=ctx.height)
    writes: dict[str, Any] = {f"member/{p['key']}": entry}
    org = state.get(f"org/{entry['org']}")
    if p["key"] in org["admins"]:
        if len(org["admins"]) == 1:
            raise RuleViolation("last_admin", "The last admin key of an organisation stays.")
        org["admins"].remove(p["key"])
        writes[f"org/{entry['org']}"] = org
    return Effects(writes=writes)


def _rotate(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
    p = tx.payload
    old, new = p["old"], p["new"]
    if set(tx.tx.signers) != {old, new}:
        raise Unauthorized(
            "unauthorized_role", "key.rotate is signed by exactly the old and the new key."
        )
    # The new key cannot be a member yet: the contract declares it unenrolled.
    entry = state.get(f"member/{old}")
    if entry is None or entry["status"] != "active":
        raise Unauthorized("signer_revoked", "The old key is not an active member.")
    if state.get(f"member/{new}") is not None:
        raise Conflict("member_exists", "The new key is already enrolled.")
    successor = dict(entry, since=ctx.height, until=None, status="active", replaced_by=None)
    entry.update(status="rotated", until=ctx.height, replaced_by=new)
    writes: dict[str, Any] = {f"member/{old}": entry, f"member/{new}": successor}
    org = state.get(f"org/{entry['org']}")
    if old in org["admins"]:
        org["admins"] = [new if a == old else a for a in org["admins"]]
        writes[f"org/{entry['org']}"] = org
    return Effects(writes=writes)


def _admit(num: int, den: int) -> Any:
    def handler(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
        p = tx.payload
        _require_admission_quorum(state, tx, num, den)
        if state.get(f"org/{p['id']}") is not None:
            raise Conflict("org_exists", f"Organisation {p['id']} exists already.")
        for key in p["admins"]:
            if state.get(f"member/{key}") is not None:
                raise Conflict("member_exists", f"Key {key[:16]}... is already enrolled.")
        writes: dict[str, Any] = {
            f"org/{p['id']}": {
                "name": p["name"],
                "roles": sorted(p["roles"]),
                "admins": list(p["admins"]),
                "admitted_at": ctx.height,
            },
            "orgs": {"ids": sorted([*state.get("orgs")["ids"], p["id"]])},
        }
        for key in p["admins"]:
            writes[f"member/{key}"] = _member(p["id"], f"{p['id']}-admin", ["admin"], ctx.height)
        return Effects(writes=writes)

    return handler


def _validator_add(num: int, den: int) -> Any:
    def handler(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
        p = tx.payload
        _require_admission_quorum(state, tx, num, den)
        if state.get(f"org/{p['org']}") is None:
            raise NotFound("unknown_org", f"There is no organisation {p['org']}.")
        nodes = state.get("validators")["nodes"]
        if any(n["id"] == p["id"] or n["key"] == p["key"] for n in nodes):
            raise Conflict("validator_exists", "A validator with this id or key exists.")
        # Effective from the next height: checkpoints of this block are still
        # certified by the validators that executed it.
        nodes.append({"id": p["id"], "org": p["org"], "key": p["key"], "since": ctx.height + 1})
        return Effects(writes={"validators": {"nodes": nodes}})

    return handler


def _validator_remove(num: int, den: int) -> Any:
    def handler(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
        del ctx
        _require_admission_quorum(state, tx, num, den)
        nodes = state.get("validators")["nodes"]
        kept = [n for n in nodes if n["id"] != tx.payload["id"]]
        if len(kept) == len(nodes):
            raise NotFound("unknown_validator", f"There is no validator {tx.payload['id']}.")
        if not kept:
            raise RuleViolation("last_validator", "The last validator cannot be removed.")
        return Effects(writes={"validators": {"nodes": kept}})

    return handler


def contracts(genesis: Genesis) -> list[Contract]:
    num, den = genesis.org_admission
    return [
        Contract("member.enrol", _validate_enrol, _enrol, "An org admin enrols a member key."),
        Contract("member.revoke", _validate_revoke, _revoke, "An org admin revokes a key."),
        Contract(
            "key.rotate",
            _validate_rotate,
            _rotate,
            "A member replaces its key.",
            unenrolled=lambda p: frozenset({p["new"]}),
        ),
        Contract("org.admit", _validate_admit, _admit(num, den), "A quorum admits an org."),
        Contract(
            "validator.add", _validate_validator_add, _validator_add(num, den), "Add a validator."
        ),
        Contract(
            "validator.remove",
            _validate_validator_remove,
            _validator_remove(num, den),
            "Remove a validator.",
        ),
    ]


CONTRACTS = contracts
