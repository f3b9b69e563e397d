"""Submission checks in worker processes answer exactly as the node's own process does.

Two nodes on the same genesis take the same requests (good records, every kind of bad
one) through the API: one checks in its own process, one with a :class:`CheckPool`.
Their answers must be the same, byte for byte apart from block heights; the pool's
checks must really run in the workers; and a killed worker costs no request.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from carledger.api.app import create_app
from carledger.bench.data import Market, live_market
from carledger.bench.load import child_pids
from carledger.chain import registry_for
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.node import prechecks, service
from carledger.node.prechecks import CheckPool
from carledger.node.service import Node, NodeSettings
from tests_support import start_node

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module")
def market() -> Market:
    return live_market(TODAY)


@pytest.fixture(scope="module")
def records(market: Market) -> list[Transaction]:
    return [d.tx for d in market.live_records(40)][:120]


def _node(market: Market, path: Path, workers: int) -> Node:
    ledger = market.init_home(path).open_ledger()
    checks = CheckPool(ledger.genesis, registry_for, workers) if workers else None
    node = Node(ledger, NodeSettings(block_interval_ms=5), checks=checks)
    node.start()
    return node


@pytest.fixture
def pair(market: Market, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    inline, pooled = _node(market, tmp_path / "a", 0), _node(market, tmp_path / "b", 1)
    try:
        yield inline, pooled
    finally:
        for node in (inline, pooled):
            node.stop()
            node.ledger.store.close()


def _batch(txs: list[Transaction]) -> bytes:
    return json.dumps([t.to_wire() for t in txs]).encode()


def _pool(node: Node) -> CheckPool:
    assert node.checks is not None
    return node.checks


def _signed(market: Market, **fields: Any) -> Transaction:
    body = build_body(
        chain=fields.pop("chain", market.genesis().chain_id),
        type=fields.pop("type", "vehicle.odometer"),
        payload=fields.pop("payload", {}),
        signers=[market.import_key.public_hex],
        created="2026-11-22T00:00:00Z",
    )
    return sign(body, [market.import_key])


def _requests(market: Market, records: list[Transaction]) -> list[bytes]:
    """Request bodies in order: accepted records, then every kind of refusal."""
    good = [t.to_wire() for t in records[:60]]
    tampered = dict(records[60].to_wire())
    tampered["signatures"] = [bytes(64).hex()]
    envelope = json.loads(records[61].body)
    fields = [f'"{k}":{json.dumps(envelope[k])}' for k in sorted(envelope, reverse=True)]
    reordered = "{" + ",".join(fields) + "}"
    not_canonical = {
        "body": base64.b64encode(reordered.encode()).decode(),
        "signatures": records[61].to_wire()["signatures"],
    }
    mixed = [
        records[62].to_wire(),
        {"body": "***", "signatures": []},
        "not an object",
        {"signatures": records[63].to_wire()["signatures"]},
        tampered,
        not_canonical,
        _signed(market, chain="another-chain").to_wire(),
        _signed(market).to_wire(),  # schema: an odometer record with no fields
        records[0].to_wire(),  # committed already
        {**records[64].to_wire(), "extra": 1},
        records[65].to_wire(),
    ]
    docs: list[Any] = [good, good[:5], mixed, records[66].to_wire()]
    bodies = [json.dumps(d).encode() for d in docs]
    bodies += [
        json.dumps({"body": "***", "signatures": []}).encode(),  # single: the problem itself
        json.dumps(tampered).encode(),
        b'{"body": "a", "body": "b"}',  # duplicate keys
        b"[]",
        b"[1,",
        b'"a string"',
        json.dumps([good[0]] * (prechecks.MAX_BATCH + 1)).encode(),
    ]
    return bodies


def _answers(node: Node, bodies: list[bytes]) -> list[tuple[int, Any]]:
    async def run() -> list[tuple[int, Any]]:
        transport = httpx.ASGITransport(app=create_app(node))
        out = []
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            for body in bodies:
                r = await client.post(
                    "/v1/transactions",
                    content=body,
                    params={"wait": "true"},
                    headers={"content-type": "application/json"},
                )
                out.append((r.status_code, _without_heights(r.json())))
        return out

    return asyncio.run(run())


def _without_heights(doc: Any) -> Any:
    """Block heights and log positions depend on how the cutter grouped the records."""
    if isinstance(doc, dict):
        return {
            k: _without_heights(v) for k, v in doc.items() if k not in ("height", "index", "seq")
        }
    if isinstance(doc, list):
        return [_without_heights(v) for v in doc]
    return doc


def test_workers_answer_as_the_node_does(
    pair: tuple[Node, Node], market: Market, records: list[Transaction]
) -> None:
    inline, pooled = pair
    bodies = _requests(market, records)
    expected = _answers(inline, bodies)
    got = _answers(pooled, bodies)
    assert _pool(pooled).worker_pids()
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"request {i}"
    # The corpus does reach every path: accepted, refused per item, refused whole.
    statuses = [s for s, _ in expected]
    codes = {
        r.get("error", {}).get("code")
        for s, doc in expected
        if s == 200 and isinstance(doc, dict)
        for r in doc.get("results", [])
    }
    assert statuses[0] == 200 and all(r["status"] == "committed" for r in expected[0][1]["results"])
    assert {
        "invalid_base64",
        "invalid_envelope",
        "missing_field",
        "bad_signature",
        "not_canonical",
        "wrong_chain",
        "duplicate_transaction",
        "unknown_field",
    } <= codes
    assert any(c not in (None, "duplicate_transaction") for c in codes)
    assert statuses[4:] == [400, 422, 400, 400, 400, 400, 400]
    assert inline.ledger.height > 1 and pooled.ledger.store.committed_ids(
        [t.id for t in records[:60]]
    ) == {t.id for t in records[:60]}


def test_checks_run_in_the_workers(
    pair: tuple[Node, Node],
    market: Market,
    records: list[Transaction],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the node's own precheck broken, only the pooled node still takes records."""
    inline, pooled = pair
    body = _batch(records[:10])
    _pool(pooled).check(b"[1]", pooled.ledger.executor)  # the workers are up

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a stateless check ran in the node's process")

    monkeypatch.setattr(prechecks, "static_errors", broken)
    monkeypatch.setattr(service, "static_errors", broken)
    [(status, doc)] = _answers(pooled, [body])
    assert status == 200
    assert [r["status"] for r in doc["results"]] == ["committed"] * 10
    txs = inline.decode_submission(body).transactions
    with pytest.raises(AssertionError, match="node's process"):
        inline.check_many(txs)


def test_a_killed_worker_costs_no_request(
    pair: tuple[Node, Node], records: list[Transaction]
) -> None:
    _, pooled = pair
    checks = _pool(pooled)
    checks.check(b"[1]", pooled.ledger.executor)
    [victim] = checks.worker_pids()
    os.kill(victim, signal.SIGKILL)
    assert _gone([victim], seconds=10)
    body = _batch(records[:10])
    [(status, doc)] = _answers(pooled, [body])
    assert status == 200
    assert [r["status"] for r in doc["results"]] == ["committed"] * 10
    assert checks.replaced == 1
    [(status, doc)] = _answers(pooled, [_batch(records[10:20])])
    assert [r["status"] for r in doc["results"]] == ["committed"] * 10
    assert checks.worker_pids() and victim not in checks.worker_pids()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _gone(pids: Iterable[int], *, seconds: float) -> bool:
    """Whether every process of ``pids`` has ended (zombies count as ended) in time."""
    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_workers_end_with_a_killed_node(market: Market, tmp_path: Path) -> None:
    """`carledger up` starts its check workers; SIGKILL of the node leaves none behind."""
    market.init_home(tmp_path / "node")
    node = start_node(tmp_path / "node", "--check-workers", "2")
    try:
        deadline = time.monotonic() + 60
        while len(set(child_pids(node.proc.pid))) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = set(child_pids(node.proc.pid))
        assert len(children) >= 3, children  # two workers and multiprocessing's tracker
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(timeout=30)
        assert _gone(children, seconds=15)
    finally:
        node.kill()


def test_check_workers_option_is_checked(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "carledger", "up", "--data", str(tmp_path), "--check-workers", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "invalid_option" in done.stdout + done.stderr


def test_a_stopped_pool_checks_in_the_node(
    pair: tuple[Node, Node], records: list[Transaction]
) -> None:
    """Requests that arrive while the node shuts its workers down are still answered."""
    _, pooled = pair
    checks = _pool(pooled)
    checks.stop()
    body = _batch(records[:3])
    submission = checks.check(body, pooled.ledger.executor)
    assert [t.id for t in submission.transactions] == [t.id for t in records[:3]]
    assert submission.checked is not None
    assert [c.signatures_ok for c in submission.checked] == [True] * 3
    assert checks.worker_pids() == []
