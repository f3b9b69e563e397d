"""`carledger import` with several batches in flight: what pipelining must not change.

A fake node (an httpx transport) stands in for the real one so the properties are
checked directly and quickly: two batches at the node at once never share a VIN;
each VIN's records are committed in file order, each one's ``prev`` being the
record before it; a line without a VIN waits for every earlier line and holds back
every later one; a refused record in the middle of a chain, an invalid line, a
re-run, VINs that already have records, and a failing request all come out as they
did when batches went one at a time. One test runs the command against a real node.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from carledger.bench.data import import_lines, live_market
from carledger.cli.client_cmds import import_file
from carledger.client import Client
from carledger.crypto.keys import SigningKey
from carledger.errors import StorageError
from carledger.node.home import write_key_file
from tests_support import start_node

VINS = [f"KMHD841CBLU{n:06d}" for n in range(40)]


class FakeNode:
    """Commits records in the order it receives them, checking ``prev`` like the node."""

    def __init__(self, *, existing: dict[str, str] | None = None, fail_post: int = 0) -> None:
        self.lock = threading.Lock()
        self.heads: dict[str, str] = dict(existing or {})
        self.nonces: set[str] = set()
        self.log: list[dict[str, Any]] = []  # committed payloads, in commit order
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.max_in_flight = 0
        self.requests = 0
        self.head_requests = 0
        self.posts = 0
        self.fail_post = fail_post
        self.rng = random.Random(7)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/checkpoint":
            return httpx.Response(200, json={"checkpoint": {"chain": "fake-chain"}})
        if path == "/v1/vehicles":
            after = request.url.params.get("after", "")
            limit = int(request.url.params.get("limit", "50"))
            with self.lock:
                vins = sorted(v for v in self.heads if v > after)[:limit]
            page = [{"vin": v} for v in vins]
            return httpx.Response(
                200, json={"vehicles": page, "next": vins[-1] if len(vins) == limit else None}
            )
        if path.startswith("/v1/vehicles/"):
            vin = path.rsplit("/", 1)[1]
            with self.lock:
                self.head_requests += 1
                head = self.heads.get(vin)
            if head is None:
                return httpx.Response(404, json={"code": "unknown_vehicle", "detail": "none"})
            return httpx.Response(200, json={"vin": vin, "head": head})
        assert path == "/v1/transactions" and request.method == "POST"
        assert request.url.params.get("wait") == "true"
        return self._submit(json.loads(request.content))

    def _submit(self, wires: list[dict[str, Any]]) -> httpx.Response:
        txs = []
        for wire in wires:
            body = base64.b64decode(wire["body"])
            txs.append((hashlib.sha256(body).hexdigest(), json.loads(body)))
        vins = {env["payload"]["vin"] for _, env in txs if "vin" in env["payload"]}
        with self.lock:
            self.posts += 1
            if self.posts == self.fail_post:
                return httpx.Response(500, json={"code": "storage_failed", "detail": "disk"})
            self.overlaps += [v for v in vins if self.in_flight[v]]
            self.in_flight.update(vins)
            self.requests += 1
            self.max_in_flight = max(
                self.max_in_flight, sum(1 for v in self.in_flight.values() if v)
            )
        time.sleep(self.rng.uniform(0.001, 0.02))  # batches overlap and finish out of order
        results: list[dict[str, Any]] = []
        with self.lock:
            for tx_id, env in txs:
                payload = env["payload"]
                vin = payload.get("vin")
                if env["nonce"] in self.nonces:
                    error = {"code": "duplicate_nonce", "detail": "exists"}
                    results.append({"id": tx_id, "status": "rejected", "error": error})
                elif payload.get("refuse"):
                    error = {"code": "odometer_rollback", "detail": "km went down"}
                    results.append(
                        {
                            "id": tx_id,
                            "status": "refused",
                            "code": "odometer_rollback",
                            "error": error,
                        }
                    )
                elif vin is not None and payload.get("prev") != self.heads.get(vin):
                    error = {"code": "stale_head", "detail": "stale"}
                    results.append(
                        {"id": tx_id, "status": "refused", "code": "stale_head", "error": error}
                    )
                else:
                    if vin is not None:
                        self.heads[vin] = tx_id
                    self.nonces.add(env["nonce"])
                    self.log.append({**payload, "id": tx_id})
                    results.append({"id": tx_id, "status": "committed", "code": "ok", "height": 1})
            self.in_flight.subtract(vins)
        return httpx.Response(200, json={"results": results})


def _lines(seed: int = 1, per_vin: int = 6) -> list[str]:
    """Interleaved records of 40 VINs, each VIN's numbered 0..per_vin-1 in file order."""
    rng = random.Random(seed)
    todo = [vin for vin in VINS for _ in range(per_vin)]
    rng.shuffle(todo)
    seq: Counter[str] = Counter()
    out = []
    for vin in todo:
        out.append(json.dumps({"type": "odometer.reading", "payload": {"vin": vin, "n": seq[vin]}}))
        seq[vin] += 1
    return out


def _run(
    node: FakeNode, path: Path, key: SigningKey, *, batch: int = 7, in_flight: int = 4
) -> dict[str, Any]:
    client = Client("http://fake", key, transport=httpx.MockTransport(node.handle))
    with client:
        return import_file(client, key, path, batch=batch, in_flight=in_flight).to_dict()


def _check_chains(node: FakeNode, *, existing: dict[str, str] | None = None) -> None:
    """Per VIN: committed in file order (``n`` ascending), each ``prev`` the one before."""
    by_vin: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in node.log:
        if "vin" in rec:
            by_vin[rec["vin"]].append(rec)
    for vin, recs in by_vin.items():
        ns = [r["n"] for r in recs]
        assert ns == sorted(ns), (vin, ns)
        prev = (existing or {}).get(vin)
        for rec in recs:
            assert rec["prev"] == prev, vin
            prev = rec["id"]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def test_batches_in_flight_never_share_a_vin_and_chains_follow_the_file(
    tmp_path: Path, key: SigningKey
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(_lines()) + "\n")
    node = FakeNode()
    summary = _run(node, path, key)
    assert summary == {"lines": 240, "committed": 240, "already_imported": 0, "refused": []}
    assert node.overlaps == []
    assert node.max_in_flight > 7  # several batches really were at the node at once
    _check_chains(node)
    assert node.head_requests == 0  # the empty listing answered for every new VIN
    # the same file again: nothing new, every line already imported
    again = _run(node, path, key)
    assert again == {"lines": 240, "committed": 0, "already_imported": 240, "refused": []}
    assert len(node.log) == 240 and node.overlaps == []


def test_refused_and_invalid_lines_in_the_middle_of_chains(tmp_path: Path, key: SigningKey) -> None:
    lines = _lines(seed=2)
    # a record refused by the node in the middle of a VIN's chain: the VIN's later
    # records (in the same batch, chained onto it) are re-read and signed again
    victim = json.loads(lines[100])
    victim["payload"]["refuse"] = True
    lines[100] = json.dumps(victim)
    lines.insert(50, "{not json")
    lines.insert(150, json.dumps({"type": "x", "payload": [1]}))
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    outcomes = []
    for in_flight in (1, 4):
        node = FakeNode()
        summary = _run(node, path, key, batch=5, in_flight=in_flight)
        assert node.overlaps == []
        _check_chains(node)
        vin = victim["payload"]["vin"]
        kept = [r["n"] for r in node.log if r["vin"] == vin]
        assert kept == [n for n in range(6) if n != victim["payload"]["n"]]
        outcomes.append(summary)
    assert outcomes[0] == outcomes[1]
    summary = outcomes[1]
    assert summary["lines"] == 242 and summary["committed"] == 239
    assert [(r["line"], r["code"]) for r in summary["refused"]] == [
        (51, "invalid_json"),
        (102, "odometer_rollback"),
        (151, "invalid_line"),
    ]


def test_vins_with_records_chain_onto_their_heads(tmp_path: Path, key: SigningKey) -> None:
    existing = {vin: hashlib.sha256(vin.encode()).hexdigest() for vin in VINS[::3]}
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(_lines(seed=3)) + "\n")
    node = FakeNode(existing=existing)
    summary = _run(node, path, key)
    assert summary["committed"] == 240 and summary["refused"] == []
    _check_chains(node, existing=existing)
    assert node.head_requests == len(existing)  # only VINs the listing names are asked for


def test_a_line_without_a_vin_is_a_barrier(tmp_path: Path, key: SigningKey) -> None:
    lines = _lines(seed=4)
    lines.insert(120, json.dumps({"type": "market.open", "payload": {"market": "m-1"}}))
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    node = FakeNode()
    summary = _run(node, path, key)
    assert summary["committed"] == 241 and node.overlaps == []
    position = next(i for i, rec in enumerate(node.log) if rec.get("id") and "vin" not in rec)
    assert position == 120  # the 120 lines before it went first, none after it did
    before = {(json.loads(x)["payload"]["vin"], json.loads(x)["payload"]["n"]) for x in lines[:120]}
    assert {(r["vin"], r["n"]) for r in node.log[:120]} == before


def test_a_failing_request_stops_the_import_with_its_error(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(_lines(seed=5, per_vin=20)) + "\n")
    node = FakeNode(fail_post=3)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        _run(node, path, key)
    assert info.value.code == "storage_failed"
    assert time.monotonic() - started < 10


@pytest.mark.integration
def test_import_into_a_real_node_keeps_each_vins_history_in_file_order(tmp_path: Path) -> None:
    market = live_market(dt.datetime.now(dt.UTC).date())
    today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date().isoformat()
    docs: list[Any] = import_lines(market, 30, until=today)
    # a record the node refuses in the middle of a car's chain, and a line that is no JSON
    middle = next(
        i for i, d in enumerate(docs) if i > len(docs) // 2 and d["type"] == "odometer.reading"
    )
    future = {**docs[middle], "payload": {**docs[middle]["payload"], "observed_on": "2099-01-01"}}
    docs.insert(middle + 1, future)
    docs.insert(len(docs) // 3, "{not json")
    # a VIN that is no VIN: refused alone (its head cannot be read; the node says why)
    bad_vin = {**future, "payload": {**future["payload"], "vin": "KMHS881D5M00000IO"}}
    docs.insert(len(docs) // 4, bad_vin)
    text = [d if isinstance(d, str) else json.dumps(d) for d in docs]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(text) + "\n")
    key = tmp_path / "registry.key"
    write_key_file(key, market.import_key, None)
    node = start_node(market.init_home(tmp_path / "node").path)

    command = [sys.executable, "-m", "carledger", "import", str(path), "--key", str(key)]
    command += ["--unencrypted-key", "--node", node.url, "--batch", "7", "--json"]

    def run() -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        return done.returncode, json.loads(done.stdout)

    try:
        code, first = run()
        assert code == 1, first  # lines were refused
        refused = {r["line"]: r["code"] for r in first["refused"]}
        bad_line = text.index("{not json") + 1
        future_line = text.index(json.dumps(future)) + 1
        bad_vin_line = text.index(json.dumps(bad_vin)) + 1
        assert set(refused) == {bad_line, future_line, bad_vin_line}, first["refused"]
        assert refused[bad_line] == "invalid_json"
        assert refused[bad_vin_line] == "invalid_vin_character"
        assert first["committed"] == len(text) - 3 and first["already_imported"] == 0
        # each VIN's history is its lines in file order, every record chained to the one before
        expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for i, d in enumerate(docs, 1):
            if i not in refused:
                expected[d["payload"]["vin"]].append(d["payload"])
        for vin, payloads in expected.items():
            history = httpx.get(f"{node.url}/v1/vehicles/{vin}/history", params={"limit": 500})
            records = history.json()["records"]
            assert [{k: v for k, v in r["payload"].items() if k != "prev"} for r in records] == (
                payloads
            )
            assert [r["payload"]["prev"] for r in records] == [None] + [
                r["id"] for r in records[:-1]
            ]
        code, second = run()
        assert code == 1
        assert second["committed"] == 0 and second["already_imported"] == first["committed"]
        assert second["refused"] == first["refused"]
    finally:
        node.stop()
