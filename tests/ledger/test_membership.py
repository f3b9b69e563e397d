"""Membership through a real Ledger over SQLiteStore: enrol, revoke, expiry, rotation,
admission of organisations and validators.

A tiny ``test.note`` contract (dealers write ``note/<name>``) stands in for the
vehicle records, so a member's ordinary writes and their state effects can be seen.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput
from carledger.ledger.block import Proposal, RawTx
from carledger.ledger.contracts import BlockContext, Contract, Effects, StateView, TxContext
from carledger.ledger.executor import TxResult
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger, NodeIdentity, build_registry
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.store.sqlite import SQLiteStore


def key(label: str) -> SigningKey:
    return SigningKey(label.encode().ljust(32, b".")[:32])


CITY = key("city-admin")  # two admins, so one can be revoked or rotated
CITY2 = key("city-admin-2")
DEALERS = key("dealers-admin")
INSURE = key("insure-admin")
NODE = key("node-1")
NODE2 = key("node-2")
DEALER = key("dealer-1")


def _validate_note(payload: dict[str, Any]) -> None:
    if set(payload) != {"name", "text"}:
        raise InvalidInput("invalid_field", "test.note has name and text.")


def _note(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
    del state
    tx.require_role("dealer")
    return Effects(
        writes={f"note/{tx.payload['name']}": {"text": tx.payload["text"], "height": ctx.height}}
    )


NOTE = Contract("test.note", _validate_note, _note, "Test record: a dealer writes a note.")


def genesis_doc() -> dict[str, Any]:
    return {
        "format": "carledger.genesis.v1",
        "chain_id": "test-chain",
        "created": "2026-01-01T00:00:00Z",
        "orgs": [
            {
                "id": "city",
                "name": "City",
                "roles": ["registry", "dealer"],
                "admins": [CITY.public_hex, CITY2.public_hex],
            },
            {
                "id": "dealers",
                "name": "Dealers",
                "roles": ["dealer", "market_operator"],
                "admins": [DEALERS.public_hex],
            },
            {
                "id": "insure",
                "name": "Insurer",
                "roles": ["insurer"],
                "admins": [INSURE.public_hex],
            },
        ],
        "validators": [{"id": "node-1", "org": "city", "key": NODE.public_hex}],
    }


class Chain:
    """A ledger on disk plus helpers to sign records and apply one-block proposals."""

    def __init__(self, path: Path) -> None:
        self.genesis = Genesis.from_dict(genesis_doc())
        self.store = SQLiteStore.open(path / "ledger.db")
        self.ledger = Ledger(
            self.store,
            self.genesis,
            build_registry(self.genesis, [NOTE]),
            NodeIdentity("node-1", NODE),
        )
        self._nonce = itertools.count()
        self._second = itertools.count(1)

    def tx(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> Transaction:
        body = build_body(
            chain="test-chain",
            type=type_,
            payload=payload,
            signers=[k.public_hex for k in keys],
            created="2026-01-01T00:00:00Z",
            nonce=f"n{next(self._nonce)}",
        )
        return sign(body, list(keys))

    def block(self, *txs: Transaction, date: str | None = None) -> list[TxResult]:
        second = next(self._second)
        time = (
            f"{date}T00:00:00.000Z"
            if date
            else f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}.000Z"
        )
        proposal = Proposal(
            self.ledger.height + 1,
            time,
            "node-1",
            tuple(RawTx(t.body, t.signatures) for t in txs),
        )
        return list(self.ledger.apply(proposal).results)

    def one(self, tx: Transaction, date: str | None = None) -> str:
        [result] = self.block(tx, date=date)
        return result.code

    def enrol(
        self, admin: SigningKey, member: SigningKey, org: str, roles: list[str], **extra: Any
    ) -> Transaction:
        payload = {
            "key": member.public_hex,
            "org": org,
            "member": f"m-{member.public_hex[:8]}",
            "roles": roles,
            **extra,
        }
        return self.tx("member.enrol", payload, admin)

    def note(self, signer: SigningKey, name: str) -> Transaction:
        return self.tx("test.note", {"name": name, "text": f"by {signer.public_hex[:8]}"}, signer)

    def member(self, k: SigningKey) -> Any:
        return self.ledger.state(f"member/{k.public_hex}")


@pytest.fixture
def chain(tmp_path: Path) -> Any:
    c = Chain(tmp_path)
    yield c
    c.store.close()


# --- enrolment ------------------------------------------------------------------------------


def test_enrol_by_the_orgs_admin(chain: Chain) -> None:
    assert chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"])) == "ok"
    entry = chain.member(DEALER)
    assert entry["org"] == "dealers" and entry["roles"] == ["dealer"]
    assert entry["status"] == "active" and entry["since"] == 1
    assert chain.one(chain.note(DEALER, "first")) == "ok"
    assert chain.ledger.state("note/first") == {"text": f"by {DEALER.public_hex[:8]}", "height": 2}


def test_enrol_by_another_orgs_admin_is_refused(chain: Chain) -> None:
    assert chain.one(chain.enrol(INSURE, DEALER, "dealers", ["dealer"])) == "unauthorized_role"
    assert chain.member(DEALER) is None


def test_enrol_by_a_plain_member_is_refused(chain: Chain) -> None:
    chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]))
    other = key("dealer-2")
    assert chain.one(chain.enrol(DEALER, other, "dealers", ["dealer"])) == "unauthorized_role"


def test_enrol_roles_the_org_does_not_hold(chain: Chain) -> None:
    code = chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer", "inspector"]))
    assert code == "role_not_held_by_org"
    assert chain.member(DEALER) is None


def test_enrol_an_existing_key(chain: Chain) -> None:
    assert chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"])) == "ok"
    assert chain.one(chain.enrol(CITY, DEALER, "city", ["dealer"])) == "member_exists"
    assert chain.one(chain.enrol(DEALERS, INSURE, "dealers", ["dealer"])) == "member_exists"
    assert chain.member(DEALER)["org"] == "dealers"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"org": "dealers", "member": "m", "roles": ["dealer"]}, "missing_field"),
        (
            {"key": "not-a-key", "org": "dealers", "member": "m", "roles": ["dealer"]},
            "invalid_public_key",
        ),
        ({"org": "dealers", "member": "m", "roles": ["admin"]}, "invalid_roles"),
        ({"org": "dealers", "member": "m", "roles": ["wizard"]}, "unknown_role"),
        ({"org": "dealers", "member": "m", "roles": []}, "invalid_roles"),
        (
            {"org": "dealers", "member": "m", "roles": ["dealer"], "valid_until": "2026-13-01"},
            "invalid_date",
        ),
        ({"org": "dealers", "member": "m", "roles": ["dealer"], "boss": True}, "unknown_field"),
        ({"org": "nowhere", "member": "m", "roles": ["dealer"]}, "unknown_org"),
    ],
    ids=[
        "no-key",
        "bad-key",
        "admin-role",
        "unknown-role",
        "no-roles",
        "bad-date",
        "unknown-field",
        "unknown-org",
    ],
)
def test_enrol_payload_refused(chain: Chain, payload: dict[str, Any], code: str) -> None:
    if "key" not in payload and code != "missing_field":
        payload = {"key": DEALER.public_hex, **payload}
    assert chain.one(chain.tx("member.enrol", payload, DEALERS)) == code


def test_unknown_signer(chain: Chain) -> None:
    assert chain.one(chain.note(key("stranger"), "x")) == "unknown_signer"
    assert chain.ledger.state("note/x") is None


# --- revocation and expiry --------------------------------------------------------------------


def test_revoked_signers_later_records_refused_earlier_ones_stay(chain: Chain) -> None:
    chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]))
    before = chain.note(DEALER, "before")
    assert chain.one(before) == "ok"  # height 2
    revoke = chain.tx("member.revoke", {"key": DEALER.public_hex, "reason": "left"}, DEALERS)
    assert chain.one(revoke) == "ok"  # height 3
    assert chain.one(chain.note(DEALER, "after")) == "signer_revoked"

    entry = chain.member(DEALER)
    assert (entry["status"], entry["until"]) == ("revoked", 3)
    # The earlier record is still committed as ok and its effect is still in the state.
    stored = chain.store.tx_by_id(before.id)
    assert stored is not None and (stored.code, stored.height) == ("ok", 2)
    assert chain.ledger.state("note/before") is not None
    assert chain.ledger.state("note/after") is None
    # A revoked key stays revoked: it cannot be revoked again nor re-enrolled.
    again = chain.tx("member.revoke", {"key": DEALER.public_hex, "reason": "again"}, DEALERS)
    assert chain.one(again) == "member_not_active"
    assert chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"])) == "member_exists"


def test_membership_changes_count_from_the_next_record_of_the_same_block(chain: Chain) -> None:
    # The executor resolves each signer once a block while its entry is unchanged;
    # a revocation, an enrolment or a rotation inside the block must still count.
    new = key("dealer-1-new")
    results = chain.block(
        chain.note(DEALER, "not-yet"),
        chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]),
        chain.note(DEALER, "first"),
        chain.note(DEALER, "second"),
        chain.tx("member.revoke", {"key": DEALER.public_hex, "reason": "left"}, DEALERS),
        chain.note(DEALER, "revoked"),
        chain.enrol(DEALERS, new, "dealers", ["dealer"]),
        chain.note(new, "by-new"),
        chain.note(new, "by-new-again"),
    )
    assert [r.code for r in results] == [
        "unknown_signer",
        "ok",
        "ok",
        "ok",
        "ok",
        "signer_revoked",
        "ok",
        "ok",
        "ok",
    ]


def test_revoke_is_for_the_members_own_org(chain: Chain) -> None:
    chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]))
    revoke = chain.tx("member.revoke", {"key": DEALER.public_hex, "reason": "x"}, INSURE)
    assert chain.one(revoke) == "unauthorized_role"
    unknown = chain.tx("member.revoke", {"key": key("nobody").public_hex, "reason": "x"}, INSURE)
    assert chain.one(unknown) == "unknown_member"
    assert chain.member(DEALER)["status"] == "active"


def test_the_last_admin_of_an_org_stays(chain: Chain) -> None:
    revoke = chain.tx("member.revoke", {"key": DEALERS.public_hex, "reason": "x"}, DEALERS)
    assert chain.one(revoke) == "last_admin"
    revoke = chain.tx("member.revoke", {"key": CITY2.public_hex, "reason": "x"}, CITY)
    assert chain.one(revoke) == "ok"
    assert chain.ledger.state("org/city")["admins"] == [CITY.public_hex]
    assert chain.one(chain.enrol(CITY2, DEALER, "city", ["dealer"])) == "signer_revoked"


def test_valid_until_expiry(chain: Chain) -> None:
    tx = chain.enrol(DEALERS, DEALER, "dealers", ["dealer"], valid_until="2026-01-10")
    assert chain.one(tx) == "ok"
    assert chain.one(chain.note(DEALER, "on-the-day"), date="2026-01-10") == "ok"
    assert chain.one(chain.note(DEALER, "day-after"), date="2026-01-11") == "signer_expired"
    assert chain.ledger.state("note/on-the-day") is not None
    assert chain.ledger.state("note/day-after") is None


# --- key rotation -------------------------------------------------------------------------------


def test_key_rotation(chain: Chain) -> None:
    new = key("dealer-1-new")
    chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]))
    rotate = {"old": DEALER.public_hex, "new": new.public_hex}
    assert chain.one(chain.tx("key.rotate", rotate, DEALER, new)) == "ok"  # height 2

    old_entry, new_entry = chain.member(DEALER), chain.member(new)
    assert (old_entry["status"], old_entry["replaced_by"], old_entry["until"]) == (
        "rotated",
        new.public_hex,
        2,
    )
    assert (new_entry["status"], new_entry["org"], new_entry["roles"], new_entry["since"]) == (
        "active",
        "dealers",
        ["dealer"],
        2,
    )
    assert chain.one(chain.note(DEALER, "old")) == "signer_revoked"
    assert chain.one(chain.note(new, "new")) == "ok"


def test_rotation_needs_both_keys(chain: Chain) -> None:
    new = key("dealer-1-new")
    chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]))
    rotate = {"old": DEALER.public_hex, "new": new.public_hex}
    assert chain.one(chain.tx("key.rotate", rotate, DEALER)) == "unauthorized_role"
    # The new key alone is not a member: it may sign only a rotation naming it.
    assert chain.one(chain.tx("key.rotate", rotate, new)) == "unauthorized_role"
    # A third party cannot rotate someone else's key to its own.
    thief = key("thief")
    steal = {"old": DEALER.public_hex, "new": thief.public_hex}
    assert chain.one(chain.tx("key.rotate", steal, thief)) == "unauthorized_role"
    assert chain.member(DEALER)["status"] == "active"
    assert chain.member(thief) is None


def test_rotation_to_an_enrolled_key_is_refused(chain: Chain) -> None:
    other = key("dealer-2")
    chain.block(
        chain.enrol(DEALERS, DEALER, "dealers", ["dealer"]),
        chain.enrol(DEALERS, other, "dealers", ["dealer"]),
    )
    rotate = {"old": DEALER.public_hex, "new": other.public_hex}
    assert chain.one(chain.tx("key.rotate", rotate, DEALER, other)) == "member_exists"


def test_admin_rotation_updates_the_orgs_admins(chain: Chain) -> None:
    new = key("dealers-admin-new")
    rotate = {"old": DEALERS.public_hex, "new": new.public_hex}
    assert chain.one(chain.tx("key.rotate", rotate, DEALERS, new)) == "ok"
    assert chain.ledger.state("org/dealers")["admins"] == [new.public_hex]
    assert chain.member(new)["roles"] == ["admin"]
    assert chain.one(chain.enrol(DEALERS, DEALER, "dealers", ["dealer"])) == "signer_revoked"
    assert chain.one(chain.enrol(new, DEALER, "dealers", ["dealer"])) == "ok"


# --- organisations and validators ----------------------------------------------------------------

NEW_ADMIN = key("lender-admin")


def _admit(chain: Chain, *signers: SigningKey) -> Transaction:
    payload = {
        "id": "lender",
        "name": "A Lender",
        "roles": ["lender", "dealer"],
        "admins": [NEW_ADMIN.public_hex],
    }
    return chain.tx("org.admit", payload, *signers)


def test_org_admit_needs_a_quorum_of_orgs(chain: Chain) -> None:
    # Three orgs and the default 2/3 policy: admins of two different orgs must sign.
    assert chain.one(_admit(chain, CITY)) == "quorum_not_met"
    assert chain.one(_admit(chain, CITY, CITY2)) == "quorum_not_met"  # same org twice
    assert chain.ledger.state("org/lender") is None
    assert chain.one(chain.enrol(NEW_ADMIN, DEALER, "lender", ["lender"])) == "unknown_signer"


def test_org_admit_with_a_quorum(chain: Chain) -> None:
    assert chain.one(_admit(chain, CITY, INSURE)) == "ok"  # height 1
    org = chain.ledger.state("org/lender")
    assert org == {
        "name": "A Lender",
        "roles": ["dealer", "lender"],
        "admins": [NEW_ADMIN.public_hex],
        "admitted_at": 1,
    }
    assert chain.ledger.state("orgs")["ids"] == ["city", "dealers", "insure", "lender"]
    assert chain.one(chain.enrol(NEW_ADMIN, DEALER, "lender", ["lender"])) == "ok"
    assert chain.member(DEALER)["org"] == "lender"
    # Four orgs now: 2/3 of 4 rounds up to 3.
    assert chain.one(_admit(chain, CITY, INSURE)) == "quorum_not_met"
    assert chain.one(_admit(chain, CITY, INSURE, DEALERS)) == "org_exists"


def test_validator_add_takes_effect_from_the_next_height(chain: Chain) -> None:
    assert chain.ledger.validator_keys() == {"node-1": NODE.public_hex}
    assert chain.ledger.quorum() == 1
    add = chain.tx(
        "validator.add", {"id": "node-2", "org": "dealers", "key": NODE2.public_hex}, CITY, DEALERS
    )
    assert chain.one(add) == "ok"  # height 1
    nodes = chain.ledger.state("validators")["nodes"]
    assert nodes[-1] == {"id": "node-2", "org": "dealers", "key": NODE2.public_hex, "since": 2}
    # Block 1 is still certified by the validators that executed it.
    assert chain.ledger.validator_keys() == {"node-1": NODE.public_hex}
    assert chain.ledger.quorum() == 1
    chain.block()  # height 2
    assert chain.ledger.validator_keys() == {"node-1": NODE.public_hex, "node-2": NODE2.public_hex}
    assert chain.ledger.quorum() == 2


def test_validator_add_needs_a_quorum(chain: Chain) -> None:
    add = chain.tx(
        "validator.add", {"id": "node-2", "org": "dealers", "key": NODE2.public_hex}, DEALERS
    )
    assert chain.one(add) == "quorum_not_met"
    dup = chain.tx(
        "validator.add", {"id": "node-1", "org": "city", "key": NODE2.public_hex}, CITY, DEALERS
    )
    assert chain.one(dup) == "validator_exists"
