"""An in-memory ledger for the vehicle contracts: no store, no executor, no clock.

:class:`Ledger` does what the executor does before and after a handler, in the same
order: payload check, signer resolution (enrolled members through
``membership.resolve_signer``, keys the contract declares unenrolled as bare
signers), handler, and applying the effects to a dict of canonical bytes. Every
submission is its own block. It also keeps each VIN's accepted records, so tests
can replay them through the fold and the history.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from carledger.crypto.keys import SigningKey
from carledger.encoding import canonical
from carledger.errors import LedgerError
from carledger.ledger.contracts import BlockContext, ContractRegistry, Effects, Signer, TxContext
from carledger.ledger.genesis import Genesis
from carledger.ledger.membership import genesis_state, resolve_signer
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.vehicle import contracts, demo
from carledger.vehicle.fold import Record
from carledger.vehicle.history import Attribution, HistoryRecord
from carledger.vehicle.indexes import vehicle_key

START = datetime.date(2026, 3, 2)
SEED = "carledger-tests"


class MemoryState:
    """A StateView over canonical bytes (each get decodes a fresh object)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.data: dict[str, bytes] = {k: canonical.encode(v) for k, v in values.items()}

    def get(self, key: str) -> Any | None:
        raw = self.data.get(key)
        return None if raw is None else json.loads(raw)

    def apply(self, effects: Effects) -> None:
        encoded = {k: None if v is None else canonical.encode(v) for k, v in effects.writes.items()}
        for key, value in encoded.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


@dataclass
class Ledger:
    network: demo.DemoNetwork
    state: MemoryState
    registry: ContractRegistry
    time: datetime.datetime
    height: int = 0
    nonce: int = 0
    records: dict[str, list[Record]] = field(default_factory=dict)
    attributed: dict[str, list[HistoryRecord]] = field(default_factory=dict)

    # -- clock --

    @property
    def block_time(self) -> str:
        return self.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.time.microsecond // 1000:03d}Z"

    @property
    def today(self) -> str:
        """The block's Korean local date."""
        return (self.time + datetime.timedelta(hours=9)).date().isoformat()

    def advance(self, **delta: float) -> None:
        self.time += datetime.timedelta(**delta)

    def set_time(self, at: str) -> None:
        moment = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
        assert moment >= self.time, "block times never decrease"
        self.time = moment

    # -- transactions --

    def key(self, member: str) -> SigningKey:
        return self.network.key(member)

    def tx(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> Transaction:
        self.nonce += 1
        body = build_body(
            chain=self.network.chain,
            type=type_,
            payload=payload,
            signers=[k.public_hex for k in keys],
            created=self.block_time,
            nonce=f"t-{self.nonce}",
        )
        return sign(body, list(keys))

    def submit(self, tx: Transaction) -> Effects:
        """Execute ``tx`` in a block of its own; raise its LedgerError if refused."""
        self.height += 1
        block = BlockContext(self.network.chain, self.height, self.block_time, "node-1")
        contract = self.registry.get(tx.type)
        contract.validate(tx.payload)
        unenrolled = contract.unenrolled(tx.payload)
        signers: list[Signer] = []
        for key in tx.signers:
            if self.state.get(f"member/{key}") is None and key in unenrolled:
                signers.append(Signer(key, "", "", frozenset(), enrolled=False))
            else:
                signers.append(resolve_signer(self.state, key, block))
        effects = contract.handler(self.state, TxContext(tx, tuple(signers)), block)
        self.state.apply(effects)
        attribution = tuple(
            Attribution(s.key, s.org or None, s.member or None, tuple(sorted(s.roles)))
            for s in signers
        )
        for vin in effects.vins:
            self.records.setdefault(vin, []).append(
                Record(tx.id, tx.type, tx.payload, tx.signers, self.height, self.block_time)
            )
            self.attributed.setdefault(vin, []).append(
                HistoryRecord(tx.id, tx.type, tx.payload, attribution, self.height, self.block_time)
            )
        return effects

    def do(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> str:
        """Build, sign and submit; return the record id."""
        tx = self.tx(type_, payload, *keys)
        self.submit(tx)
        return tx.id

    def refused(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> LedgerError:
        """Submit a record that must be refused; return the error (state unchanged)."""
        before = dict(self.state.data)
        with pytest.raises(LedgerError) as info:
            self.submit(self.tx(type_, payload, *keys))
        assert self.state.data == before
        return info.value

    # -- reading --

    def vehicle(self, vin: str) -> dict[str, Any]:
        state = self.state.get(vehicle_key(vin))
        assert state is not None, f"no state for {vin}"
        return dict(state)

    def head(self, vin: str) -> str | None:
        state = self.state.get(vehicle_key(vin))
        return None if state is None else str(state["head"])


def make_ledger(dealers: int = 3) -> Ledger:
    network = demo.build_network(SEED, START, dealers=dealers)
    genesis = Genesis.from_dict(network.genesis)
    return Ledger(
        network=network,
        state=MemoryState(genesis_state(genesis)),
        registry=ContractRegistry(contracts()),
        time=datetime.datetime(2026, 3, 2, 0, 0, tzinfo=datetime.UTC),
    )


@pytest.fixture
def ledger() -> Ledger:
    """A fresh ledger on the demo network with three dealers, at 2026-03-02 09:00 KST."""
    return make_ledger()


@pytest.fixture
def new_ledger() -> Callable[..., Ledger]:
    """A factory: ``new_ledger(dealers=60)``."""
    return make_ledger
