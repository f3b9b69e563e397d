"""The genesis document: every invalid shape is refused with a message naming the fault."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carledger.crypto.keys import SigningKey
from carledger.encoding import canonical
from carledger.errors import InvalidInput
from carledger.ledger.genesis import GENESIS_FORMAT, Genesis, checkpoint_quorum

K = [SigningKey(bytes([i]) * 32).public_hex for i in range(1, 10)]


def valid_doc() -> dict[str, Any]:
    return {
        "format": GENESIS_FORMAT,
        "chain_id": "seoul-market",
        "created": "2026-11-22T00:00:00Z",
        "orgs": [
            {"id": "seoul-city", "name": "서울특별시", "roles": ["registry"], "admins": [K[0]]},
            {
                "id": "jangan-dealers",
                "name": "Janganpyeong dealers",
                "roles": ["dealer", "market_operator"],
                "admins": [K[1], K[2]],
            },
        ],
        "members": [
            {"key": K[3], "org": "jangan-dealers", "member": "dealer-001", "roles": ["dealer"]}
        ],
        "validators": [
            {"id": "node-1", "org": "seoul-city", "key": K[4]},
            {"id": "node-2", "org": "jangan-dealers", "key": K[5]},
        ],
        "markets": [
            {"id": "janganpyeong", "name": "장안평", "operator": "jangan-dealers", "gated": True}
        ],
        "policy": {"org_admission": {"num": 2, "den": 3}},
    }


def test_valid_document() -> None:
    g = Genesis.from_dict(valid_doc())
    assert g.chain_id == "seoul-market"
    assert g.bytes == canonical.encode(valid_doc())
    assert g.hash == hashlib.sha256(g.bytes).hexdigest()
    assert g.validator_keys() == {"node-1": K[4], "node-2": K[5]}
    assert g.org_admission == (2, 3)
    assert [o["id"] for o in g.orgs] == ["seoul-city", "jangan-dealers"]


def test_minimal_document_uses_default_policy() -> None:
    doc = valid_doc()
    for optional in ("members", "markets", "policy"):
        del doc[optional]
    g = Genesis.from_dict(doc)
    assert g.org_admission == (2, 3)
    assert g.members == [] and g.markets == []


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(valid_doc(), indent=2, ensure_ascii=False), encoding="utf-8")
    assert Genesis.load(path).hash == Genesis.from_dict(valid_doc()).hash


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        Genesis.load(tmp_path / "nope.json")
    assert info.value.code == "genesis_unreadable"


def test_load_refuses_floats(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    text = json.dumps(valid_doc()).replace('"num": 2', '"num": 2.0')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        Genesis.load(path)
    assert info.value.code == "float_not_allowed"


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return edit


_DELETE = object()

# (name, edit, words the message must contain)
_INVALID: list[tuple[str, Edit, tuple[str, ...]]] = [
    ("format-missing", _set("format", _DELETE), ("format",)),
    ("format-wrong", _set("format", "carledger.genesis.v0"), ("format",)),
    ("chain-id-missing", _set("chain_id", _DELETE), ("chain_id",)),
    ("chain-id-upper", _set("chain_id", "Seoul"), ("chain_id",)),
    ("chain-id-long", _set("chain_id", "a" * 65), ("chain_id",)),
    ("created-missing", _set("created", _DELETE), ("created",)),
    ("created-local-time", _set("created", "2026-11-22T09:00:00+09:00"), ("created",)),
    ("orgs-missing", _set("orgs", _DELETE), ("orgs",)),
    ("orgs-not-list", _set("orgs", {"id": "x"}), ("orgs",)),
    ("orgs-empty", _set("orgs", []), ("organisation",)),
    ("org-not-object", _set("orgs.0", "seoul-city"), ("orgs[0]",)),
    ("org-id-bad", _set("orgs.0.id", "Seoul City"), ("orgs[0].id",)),
    ("org-id-duplicate", _set("orgs.1.id", "seoul-city"), ("seoul-city", "twice")),
    ("org-name-missing", _set("orgs.0.name", _DELETE), ("orgs[0].name",)),
    ("org-name-number", _set("orgs.0.name", 7), ("orgs[0].name",)),
    ("org-roles-empty", _set("orgs.0.roles", []), ("orgs[0].roles",)),
    ("org-roles-not-list", _set("orgs.0.roles", "registry"), ("orgs[0].roles",)),
    ("org-role-unknown", _set("orgs.0.roles", ["registry", "wizard"]), ("wizard",)),
    ("org-admins-missing", _set("orgs.0.admins", _DELETE), ("orgs[0].admins",)),
    ("org-admins-empty", _set("orgs.0.admins", []), ("orgs[0]", "admin")),
    ("org-admin-bad-key", _set("orgs.1.admins.1", K[2].upper()), ("orgs[1].admins[1]",)),
    ("org-admin-reused", _set("orgs.1.admins.1", K[0]), ("twice",)),
    ("member-not-object", _set("members.0", K[3]), ("members[0]",)),
    ("member-bad-key", _set("members.0.key", "abc"), ("members[0].key",)),
    ("member-key-is-admin", _set("members.0.key", K[1]), ("twice",)),
    ("member-unknown-org", _set("members.0.org", "nowhere"), ("members[0].org",)),
    ("member-bad-id", _set("members.0.member", "-dealer"), ("members[0].member",)),
    ("member-roles-empty", _set("members.0.roles", []), ("members[0].roles",)),
    ("member-role-unknown", _set("members.0.roles", ["pirate"]), ("pirate",)),
    ("member-role-not-held", _set("members.0.roles", ["inspector"]), ("members[0]", "roles")),
    ("validators-missing", _set("validators", _DELETE), ("validators",)),
    ("validators-empty", _set("validators", []), ("validator",)),
    ("validator-not-object", _set("validators.0", "node-1"), ("validators[0]",)),
    ("validator-bad-id", _set("validators.0.id", "Node 1"), ("validators[0].id",)),
    ("validator-duplicate-id", _set("validators.1.id", "node-1"), ("node-1", "twice")),
    ("validator-unknown-org", _set("validators.0.org", "nowhere"), ("validators[0].org",)),
    ("validator-bad-key", _set("validators.0.key", "00"), ("validators[0].key",)),
    ("market-not-object", _set("markets.0", "janganpyeong"), ("markets[0]",)),
    ("market-bad-id", _set("markets.0.id", "장안평"), ("markets[0].id",)),
    ("market-name-missing", _set("markets.0.name", _DELETE), ("markets[0].name",)),
    ("market-unknown-operator", _set("markets.0.operator", "nowhere"), ("markets[0].operator",)),
    ("market-gated-not-bool", _set("markets.0.gated", 1), ("markets[0].gated",)),
    ("policy-not-object", _set("policy", [2, 3]), ("policy",)),
    ("admission-zero", _set("policy.org_admission", {"num": 0, "den": 3}), ("org_admission",)),
    ("admission-over-one", _set("policy.org_admission", {"num": 4, "den": 3}), ("org_admission",)),
    ("admission-bool", _set("policy.org_admission", {"num": True, "den": 3}), ("org_admission",)),
    ("admission-missing-den", _set("policy.org_admission", {"num": 1}), ("org_admission",)),
]


@pytest.mark.parametrize(
    ("edit", "words"), [(e, w) for _, e, w in _INVALID], ids=[n for n, _, _ in _INVALID]
)
def test_invalid_genesis(edit: Edit, words: tuple[str, ...]) -> None:
    doc = copy.deepcopy(valid_doc())
    edit(doc)
    with pytest.raises(InvalidInput) as info:
        Genesis.from_dict(doc)
    assert info.value.code == "invalid_genesis"
    for word in words:
        assert word in info.value.message, info.value.message


@pytest.mark.parametrize("doc", [[], "genesis", None, 3])
def test_not_an_object(doc: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        Genesis.from_dict(doc)
    assert info.value.code == "invalid_genesis"


def test_two_validators_cannot_share_a_key() -> None:
    # One node's signature would count twice towards the checkpoint quorum.
    doc = valid_doc()
    doc["validators"][1]["key"] = doc["validators"][0]["key"]
    with pytest.raises(InvalidInput) as info:
        Genesis.from_dict(doc)
    assert info.value.code == "invalid_genesis"
    assert "validators[1].key" in info.value.message or "twice" in info.value.message


def test_float_anywhere_is_refused() -> None:
    doc = valid_doc()
    doc["policy"]["org_admission"]["num"] = 2.0
    with pytest.raises(InvalidInput) as info:
        Genesis.from_dict(doc)
    assert info.value.code == "float_not_allowed"


@pytest.mark.parametrize(
    ("validators", "quorum"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (7, 5), (10, 7)]
)
def test_checkpoint_quorum(validators: int, quorum: int) -> None:
    assert checkpoint_quorum(validators) == quorum
    # More than two thirds: a quorum always outweighs the f = (n - 1) // 3 faulty nodes twice.
    faulty = (validators - 1) // 3
    assert 3 * quorum > 2 * validators
    assert quorum >= 2 * faulty + 1


def test_checkpoint_quorum_needs_a_validator() -> None:
    with pytest.raises(InvalidInput) as info:
        checkpoint_quorum(0)
    assert info.value.code == "invalid_genesis"
