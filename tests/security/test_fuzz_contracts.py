"""Every contract against arbitrary payloads and signers: only our own errors come out.

For each record type, hypothesis builds payloads shaped by the type's schema (valid
values most of the time, with the VINs, record ids, keys and organisations of a real
demo chain, and any JSON value anywhere now and then) signed by any mix of members
and strangers, and runs them

- through the contract itself (payload check, signer resolution, handler), where
  anything but a :class:`LedgerError` fails the test with its traceback, and
- through the block executor, whose ``contract_error`` catch-all (a contract bug
  that must not stop the chain) must never be reached.

The figures count the outcome codes per type: ``ok`` shows the handlers were reached.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import security_support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_support import SchemaStrategies, network, payloads_for, report_figures

from carledger.crypto.keys import SigningKey
from carledger.errors import LedgerError
from carledger.ledger.block import RawTx
from carledger.ledger.contracts import BlockContext, TxContext
from carledger.ledger.ledger import Ledger
from carledger.ledger.state import Overlay
from carledger.ledger.tx import Transaction, build_body
from carledger.node.home import Home
from carledger.vehicle.clock import local_date

OUTCOMES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def _allowed_roles() -> dict[str, frozenset[str]]:
    from carledger.vehicle.records import (
        corrections,
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

    families = (
        lifecycle,
        trading,
        inspection,
        gate,
        use,
        parts,
        recalls,
        liens,
        theft,
        corrections,
    )
    allowed = {r.type: frozenset(r.roles + r.cosign) for f in families for r in f.RECORDS}
    allowed["recall.issue"] = frozenset({"manufacturer"})
    allowed["market.register"] = frozenset({"market_operator"})
    return allowed


class Harness:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        net = network()
        store: Any = ledger.store
        rows = store.state_prefix("vehicle/", limit=1000)
        self.heads = {k.split("/", 1)[1]: json.loads(v)["head"] for k, v in rows}
        ids = [t.id for t in store.txs_range(0, ledger.head.log_size)]
        self.admins = list(net.admins.values())
        members = [m.key for m in net.members.values()]
        self.keys = [*members, *self.admins, SigningKey(b"S" * 32), SigningKey(b"T" * 32)]
        allowed = _allowed_roles()
        self.first_signers = {
            t: [m.key for m in net.members.values() if set(m.roles) & roles]
            for t, roles in allowed.items()
        }
        orgs = sorted({m.org for m in net.members.values()} | set(net.admins))
        refs = (
            [f"key:{k.public_hex}" for k in self.keys[:20]]
            + [f"org:{o}" for o in orgs]
            + ["ref:" + "ab" * 16]
        )
        words = [*orgs, "janganpyeong", "gangseo", "JP-1", "HMC-1", "L-1", "gate-1", "BP0001"]
        today = dt.date.fromisoformat(local_date(ledger.head.time))
        self.schemas = SchemaStrategies(
            sorted(self.heads), ids, [k.public_hex for k in self.keys], refs, words, today
        )
        self.ctx = BlockContext(ledger.chain_id, ledger.height + 1, ledger.head.time, "node-1")

    def signers(self, type_: str) -> st.SearchStrategy[list[SigningKey]]:
        first = st.sampled_from(self.first_signers.get(type_) or self.admins)
        others = st.lists(st.sampled_from(self.keys), max_size=2)
        return st.tuples(first | st.sampled_from(self.keys), others).map(
            lambda fo: list(dict.fromkeys([fo[0], *fo[1]]))
        )

    def linked(self, payload: Any) -> Any:
        """``payload`` with each VIN's ``prev`` set to that VIN's latest record."""
        if not isinstance(payload, dict):
            return payload
        out = dict(payload)
        vin = out.get("vin")
        if isinstance(vin, str) and vin in self.heads and "prev" in out:
            out["prev"] = self.heads[out["vin"]]
        if isinstance(out.get("vehicles"), list):
            out["vehicles"] = [
                {**v, "prev": self.heads[v["vin"]]}
                if isinstance(v, dict) and isinstance(v.get("vin"), str) and v["vin"] in self.heads
                else v
                for v in out["vehicles"]
            ]
        return out

    def run(self, type_: str, payload: Any, signers: list[SigningKey], nonce: int) -> str:
        """The outcome code of one transaction (``ok`` when accepted)."""
        try:
            body = build_body(
                chain=self.ledger.chain_id,
                type=type_,
                payload=payload if isinstance(payload, dict) else {"value": payload},
                signers=[k.public_hex for k in signers],
                created=self.ledger.head.time[:19] + "Z",
                nonce=f"fuzz-{nonce}",
            )
            tx = Transaction.from_body(body, [b"\0" * 64] * len(signers))
        except LedgerError as exc:
            return f"decode:{exc.code}"
        executor = self.ledger.executor
        direct = "ok"
        try:
            executor._check_static(tx)
            overlay = Overlay(self.ledger.store)
            resolved = executor.signers(tx, overlay, self.ctx)
            self.ledger.registry.get(type_).handler(overlay, TxContext(tx, resolved), self.ctx)
        except LedgerError as exc:
            direct = exc.code
        result = executor.execute(
            self.ledger.store,
            self.ctx,
            [RawTx(tx.body, tx.signatures)],
            committed=lambda _id: False,
            nonce_used=lambda _s, _n: False,
            signatures_ok={tx.id: True},
        ).results[0]
        assert result.code != "contract_error", (type_, payload, result.message)
        assert result.code == direct, (result.code, direct)
        return result.code


@pytest.fixture(scope="module")
def harness(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    import shutil

    data = tmp_path_factory.mktemp("contracts") / "node"
    shutil.copytree(demo_data, data)
    ledger = Home(data).open_ledger(None)
    try:
        yield Harness(ledger)
    finally:
        ledger.store.close()  # type: ignore[attr-defined]


def _types() -> list[str]:
    from carledger.chain import registry_for
    from carledger.ledger.genesis import Genesis

    return registry_for(Genesis.from_dict(network().genesis)).types()


@pytest.mark.parametrize("type_", _types())
def test_contract_lets_only_ledger_errors_out(harness: Harness, type_: str) -> None:
    contract = harness.ledger.registry.get(type_)
    payloads = payloads_for(type_, contract.validate, harness.schemas)
    counter = iter(range(10**9))

    @settings(
        max_examples=60 * security_support.SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(payloads, harness.signers(type_), st.booleans())
    def check(payload: Any, signers: list[SigningKey], link: bool) -> None:
        if link:
            payload = harness.linked(payload)
        OUTCOMES[type_][harness.run(type_, payload, signers, next(counter))] += 1

    check()


def test_contract_fuzz_figures() -> None:
    total = sum(sum(c.values()) for c in OUTCOMES.values())
    accepted = {t: c["ok"] for t, c in sorted(OUTCOMES.items()) if c["ok"]}
    report_figures(
        "fuzz.contracts",
        {
            "types": len(OUTCOMES),
            "inputs": total,
            "contract_error": 0,
            "accepted_by_type": accepted,
            "codes": len({code for c in OUTCOMES.values() for code in c}),
            "top_codes": {t: c.most_common(4) for t, c in sorted(OUTCOMES.items())},
        },
    )
