"""Who may write what, checked in the block path and at a running node's API.

- Every record type, every role that must not write it: the table of
  ``tests/vehicle/test_vehicle_records.py`` (its valid cases, its wrong roles) is run
  again here through real blocks (:meth:`Ledger.apply` over SQLite: executor,
  signer resolution, contract, validity code in the block), where each wrong role is
  refused with ``unauthorized_role`` (or its documented, more specific code) and the
  right signers are then accepted in the same state.
- At a running node: revoked and expired keys, a signature made for another chain,
  the same record sent again and a reused nonce are refused with their codes.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from security_support import network, report_figures, signed

from carledger.chain import registry_for
from carledger.crypto.keys import SigningKey
from carledger.ledger.block import Proposal, RawTx
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.store.sqlite import SQLiteStore
from carledger.vehicle import demo
from carledger.vehicle.indexes import vehicle_key
from tests_support import NodeProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vehicle"))
import test_vehicle_records as table

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


@dataclass
class Refusal:
    code: str
    message: str


@dataclass
class BlockLedger:
    """What the vehicle tests' in-memory ledger offers, over a real :class:`Ledger`:
    every submission is executed and committed as a block of its own."""

    network: demo.DemoNetwork
    ledger: Ledger
    time: dt.datetime = START
    nonce: int = 0
    codes: list[str] = field(default_factory=list)

    @property
    def block_time(self) -> str:
        return self.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.time.microsecond // 1000:03d}Z"

    @property
    def today(self) -> str:
        return (self.time + dt.timedelta(hours=9)).date().isoformat()

    def advance(self, **delta: float) -> None:
        self.time += dt.timedelta(**delta)

    def key(self, member: str) -> SigningKey:
        return self.network.key(member)

    def tx(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> Transaction:
        self.nonce += 1
        body = build_body(
            chain=self.network.chain,
            type=type_,
            payload=payload,
            signers=[k.public_hex for k in keys],
            created=self.block_time[:19] + "Z",
            nonce=f"b-{self.nonce}",
        )
        return sign(body, list(keys))

    def commit(self, tx: Transaction) -> str:
        self.time += dt.timedelta(seconds=1)
        block = self.ledger.apply(
            Proposal(
                self.ledger.height + 1,
                self.block_time,
                "node-1",
                (RawTx(tx.body, tx.signatures),),
            )
        )
        [result] = block.results
        self.codes.append(result.code)
        if result.code != "ok":
            return result.code
        return "ok"

    def do(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> str:
        tx = self.tx(type_, payload, *keys)
        code = self.commit(tx)
        assert code == "ok", (type_, code)
        return tx.id

    def refused(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> Refusal:
        before = self.ledger.head.state_root
        code = self.commit(self.tx(type_, payload, *keys))
        assert code != "ok", type_
        assert self.ledger.head.state_root == before  # a refusal changes no state
        return Refusal(code, "")

    def head(self, vin: str) -> str | None:
        state = self.ledger.state(vehicle_key(vin))
        return None if state is None else str(state["head"])

    def vehicle(self, vin: str) -> dict[str, Any]:
        state = self.ledger.state(vehicle_key(vin))
        assert state is not None
        return dict(state)


def _block_ledger() -> BlockLedger:
    net = demo.build_network("carledger-tests", START.date(), dealers=3)
    genesis = Genesis.from_dict(net.genesis)
    ledger = Ledger(SQLiteStore.open(":memory:"), genesis, registry_for(genesis))
    return BlockLedger(net, ledger)


WRONG_ROLES: dict[str, list[str]] = {}
for _type, _role in table.ROLE_CASES:
    WRONG_ROLES.setdefault(_type, []).append(_role)
TRIED: dict[str, int] = {}


@pytest.mark.parametrize("type_", sorted(WRONG_ROLES))
def test_every_role_that_must_not_write_is_refused_in_a_block(type_: str) -> None:
    ledger = _block_ledger()
    try:
        payload, keys = table._setup(ledger, type_)
        for role in WRONG_ROLES[type_]:
            wrong = table._member_with_only(ledger, role)
            if (type_, role) in table.SPECIFIC:
                signers = [wrong]
            elif type_ == "odometer.exception":
                signers = [wrong, keys[1]]
            else:
                signers = [wrong, *keys[1:]]
            refusal = ledger.refused(type_, payload, *signers)
            expected = table.SPECIFIC.get((type_, role), "unauthorized_role")
            assert refusal.code == expected, (type_, role, refusal.code)
        # The same record with the right signers is accepted in the same state.
        assert ledger.commit(ledger.tx(type_, payload, *keys)) == "ok"
        TRIED[type_] = len(WRONG_ROLES[type_])
    finally:
        ledger.ledger.store.close()  # type: ignore[attr-defined]


def test_role_table_figures() -> None:
    report_figures(
        "authorization.roles",
        {"record_types": len(TRIED), "wrong_role_attempts": sum(TRIED.values()), "accepted": 0},
    )


# --- at a running node ------------------------------------------------------------------------


def _post(url: str, tx: Transaction, wait: bool = True) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/transactions",
        params={"wait": str(wait).lower()},
        json=tx.to_wire(),
        timeout=30,
    )


def _code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json().get("code", "")


def test_revoked_expired_other_chain_and_replayed_are_refused(demo_node: NodeProcess) -> None:
    url = demo_node.url
    net = network()
    chain = net.chain
    dealer_org = net.members["dealer-01"].org
    admin = net.admins[dealer_org]
    revoked = SigningKey.generate()
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date().isoformat()
    enrol = signed(
        chain,
        "member.enrol",
        {"key": revoked.public_hex, "org": dealer_org, "member": "revoked-1", "roles": ["dealer"]},
        [admin],
    )
    assert _code(_post(url, enrol)) == (200, "ok")
    # valid_until in the past: enrolled, but expired from the start.
    late = SigningKey.generate()
    enrol = signed(
        chain,
        "member.enrol",
        {
            "key": late.public_hex,
            "org": dealer_org,
            "member": "expired-2",
            "roles": ["dealer"],
            "valid_until": yesterday,
        },
        [admin],
    )
    assert _post(url, enrol).status_code == 200
    revoke = signed(
        chain, "member.revoke", {"key": revoked.public_hex, "reason": "Key lost."}, [admin]
    )
    assert _post(url, revoke).status_code == 200

    def reading(key: SigningKey, **kw: Any) -> Transaction:
        vin = httpx.get(f"{url}/v1/vehicles", timeout=10).json()["vehicles"][0]["vin"]
        head = httpx.get(f"{url}/v1/vehicles/{vin}", timeout=10).json()["head"]
        today = dt.datetime.now(dt.UTC).date().isoformat()
        payload = {
            "vin": vin,
            "prev": head,
            "km": 123_456,
            "observed_on": today,
            "source": "service",
        }
        return signed(kw.pop("chain", chain), "odometer.reading", payload, [key], **kw)

    outcomes = {
        "revoked key": _code(_post(url, reading(revoked))),
        "expired key": _code(_post(url, reading(late))),
    }
    assert outcomes["revoked key"] == (403, "signer_revoked")
    assert outcomes["expired key"] == (403, "signer_expired")
    # The right key, signing a body made for another chain: refused as such...
    dealer = net.key("dealer-01")
    other = reading(dealer, chain="other-chain")
    outcomes["other chain"] = _code(_post(url, other))
    assert outcomes["other chain"] == (400, "wrong_chain")
    # ...and its signature does not carry over to this chain's body.
    here = reading(dealer)
    moved = {"body": here.to_wire()["body"], "signatures": other.to_wire()["signatures"]}
    r = httpx.post(f"{url}/v1/transactions", json=moved, timeout=30)
    outcomes["signature from another chain"] = _code(r)
    assert outcomes["signature from another chain"] == (422, "bad_signature")
    # A committed record sent again, and its nonce reused for another body.
    first = reading(dealer, nonce="replay-1")
    r = _post(url, first)
    assert r.status_code in (200, 422), r.text  # accepted, or a rule refused it in the block
    outcomes["replay"] = _code(_post(url, first))
    assert outcomes["replay"] == (409, "duplicate_transaction")
    if r.status_code == 200:
        again = reading(dealer, nonce="replay-1")
        outcomes["reused nonce"] = _code(_post(url, again))
        assert outcomes["reused nonce"] == (409, "duplicate_nonce")
    report_figures("authorization.node", {k: list(v) for k, v in outcomes.items()})
