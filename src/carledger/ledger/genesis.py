"""The genesis document: a chain's founding organisations, keys, validators and policies.

Everyone who verifies anything about a chain starts from its genesis: a light client
that knows only this document (or its hash) can check a report offline. The document
is canonical JSON; its hash is ``sha256`` of those bytes and is the ``prev`` of block 0.

Shape (``docs/genesis.md`` is the reference)::

    {
      "format": "carledger.genesis.v1",
      "chain_id": "seoul-market",
      "created": "2026-11-22T00:00:00Z",
      "orgs": [{"id": "seoul-city", "name": "...", "roles": ["registry", ...],
                "admins": ["<hex key>", ...]}],
      "members": [{"key": "<hex>", "org": "seoul-city", "member": "reg-001",
                   "roles": ["registry"]}],
      "validators": [{"id": "node-1", "org": "seoul-city", "key": "<hex>"}],
      "markets": [{"id": "janganpyeong", "name": "...", "operator": "<org id>",
                   "gated": true}],
      "policy": {"org_admission": {"num": 2, "den": 3}}
    }
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carledger.crypto.keys import is_public_key_hex
from carledger.encoding import canonical
from carledger.encoding.timefmt import is_utc_time
from carledger.errors import InvalidInput

__all__ = ["GENESIS_FORMAT", "ROLES", "Genesis", "checkpoint_quorum"]

GENESIS_FORMAT = "carledger.genesis.v1"

#: Roles a member key can hold (DOMAIN.md), plus ``admin`` for org admin keys.
ROLES = frozenset(
    {
        "admin",
        "manufacturer",
        "registry",
        "market_operator",
        "dealer",
        "inspector",
        "repair_shop",
        "insurer",
        "lender",
        "rental",
        "scrapyard",
        "police",
        "gate_device",
        "citizen",
    }
)

ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MEMBER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def checkpoint_quorum(validators: int) -> int:
    """Signatures that certify a checkpoint: more than two thirds (2f+1 of 3f+1)."""
    if validators < 1:
        raise InvalidInput("invalid_genesis", "A chain needs at least one validator.")
    return (2 * validators) // 3 + 1


def _fail(message: str) -> InvalidInput:
    return InvalidInput("invalid_genesis", message)


def _need(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _fail(f"{where}.{key} is missing or not a {kind.__name__}.")
    return value


def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise _fail(f"{where} is not an id (1-64 of a-z, 0-9, '-').")
    return value


def _check_roles(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
        raise _fail(f"{where} is not a non-empty list of roles.")
    unknown = set(value) - ROLES
    if unknown:
        raise _fail(f"{where} names unknown roles: {', '.join(sorted(unknown))}.")
    return list(value)


def _check_key(value: Any, where: str) -> str:
    if not is_public_key_hex(value):
        raise _fail(f"{where} is not a public key (64 lowercase hex).")
    return str(value)


@dataclass(frozen=True, slots=True)
class Genesis:
    """A validated genesis document. Build with :meth:`from_dict` or :meth:`load`."""

    document: dict[str, Any]
    bytes: bytes
    hash: str

    @classmethod
    def from_dict(cls, doc: Any) -> Genesis:
        """Validate ``doc``; raise :class:`InvalidInput` (``invalid_genesis``) naming the fault."""
        if not isinstance(doc, dict):
            raise _fail("The genesis document is a JSON object.")
        canonical.check_plain(doc, max_depth=8)
        if doc.get("format") != GENESIS_FORMAT:
            raise _fail(f"format must be {GENESIS_FORMAT!r}.")
        _check_id(doc.get("chain_id"), "chain_id")
        created = _need(doc, "created", str, "genesis")
        if not is_utc_time(created, fraction=(0, 3)):
            raise _fail("created is a UTC time such as 2026-11-22T00:00:00Z.")
        orgs = _need(doc, "orgs", list, "genesis")
        if not orgs:
            raise _fail("A chain needs at least one organisation.")
        org_ids: set[str] = set()
        keys: set[str] = set()
        for i, org in enumerate(orgs):
            where = f"orgs[{i}]"
            if not isinstance(org, dict):
                raise _fail(f"{where} is not an object.")
            oid = _check_id(org.get("id"), f"{where}.id")
            if oid in org_ids:
                raise _fail(f"Organisation {oid} appears twice.")
            org_ids.add(oid)
            _need(org, "name", str, where)
            _check_roles(org.get("roles"), f"{where}.roles")
            admins = _need(org, "admins", list, where)
            if not admins:
                raise _fail(f"{where} needs at least one admin key.")
            for j, key in enumerate(admins):
                _check_key(key, f"{where}.admins[{j}]")
                if key in keys:
                    raise _fail(f"Key {key[:16]}... appears twice.")
                keys.add(key)
        org_roles = {o["id"]: set(o["roles"]) for o in orgs}
        for i, member in enumerate(doc.get("members", [])):
            where = f"members[{i}]"
            if not isinstance(member, dict):
                raise _fail(f"{where} is not an object.")
            key = _check_key(member.get("key"), f"{where}.key")
            if key in keys:
                raise _fail(f"Key {key[:16]}... appears twice.")
            keys.add(key)
            org_id = member.get("org")
            if org_id not in org_roles:
                raise _fail(f"{where}.org names no organisation of this genesis.")
            mid = member.get("member")
            if not isinstance(mid, str) or not MEMBER_RE.fullmatch(mid):
                raise _fail(f"{where}.member is not a member id.")
            roles = _check_roles(member.get("roles"), f"{where}.roles")
            if not set(roles) <= org_roles[org_id] | {"admin"}:
                raise _fail(f"{where} has roles its organisation does not hold.")
        validators = _need(doc, "validators", list, "genesis")
        if not validators:
            raise _fail("A chain needs at least one validator node.")
        vids: set[str] = set()
        validator_keys: set[str] = set()
        for i, val in enumerate(validators):
            where = f"validators[{i}]"
            if not isinstance(val, dict):
                raise _fail(f"{where} is not an object.")
            vid = _check_id(val.get("id"), f"{where}.id")
            if vid in vids:
                raise _fail(f"Validator {vid} appears twice.")
            vids.add(vid)
            if val.get("org") not in org_roles:
                raise _fail(f"{where}.org names no organisation of this genesis.")
            vkey = _check_key(val.get("key"), f"{where}.key")
            if vkey in validator_keys:
                raise _fail(f"{where}.key appears twice: each validator has its own key.")
            validator_keys.add(vkey)
        for i, market in enumerate(doc.get("markets", [])):
            where = f"markets[{i}]"
            if not isinstance(market, dict):
                raise _fail(f"{where} is not an object.")
            _check_id(market.get("id"), f"{where}.id")
            _need(market, "name", str, where)
            if market.get("operator") not in org_roles:
                raise _fail(f"{where}.operator names no organisation of this genesis.")
            if not isinstance(market.get("gated"), bool):
                raise _fail(f"{where}.gated is true or false.")
        policy = doc.get("policy", {})
        if not isinstance(policy, dict):
            raise _fail("policy is an object.")
        adm = policy.get("org_admission", {"num": 2, "den": 3})
        if not (
            isinstance(adm, dict)
            and type(adm.get("num")) is int
            and type(adm.get("den")) is int
            and 0 < adm["num"] <= adm["den"]
        ):
            raise _fail("policy.org_admission is {num, den} with 0 < num <= den.")
        data = canonical.encode(doc)
        return cls(document=doc, bytes=data, hash=hashlib.sha256(data).hexdigest())

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidInput("genesis_unreadable", f"Cannot read {path}: {exc}.") from exc
        return cls.from_dict(canonical.decode(raw, max_depth=8))

    @property
    def chain_id(self) -> str:
        return str(self.document["chain_id"])

    @property
    def created(self) -> str:
        return str(self.document["created"])

    @property
    def orgs(self) -> list[dict[str, Any]]:
        return list(self.document["orgs"])

    @property
    def members(self) -> list[dict[str, Any]]:
        return list(self.document.get("members", []))

    @property
    def validators(self) -> list[dict[str, Any]]:
        return list(self.document["validators"])

    @property
    def markets(self) -> list[dict[str, Any]]:
        return list(self.document.get("markets", []))

    @property
    def org_admission(self) -> tuple[int, int]:
        adm = self.document.get("policy", {}).get("org_admission", {"num": 2, "den": 3})
        return int(adm["num"]), int(adm["den"])

    def validator_keys(self) -> dict[str, str]:
        return {v["id"]: v["key"] for v in self.validators}
