"""The REST API through a real node process on a loopback port, as a client sees it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from carledger.crypto.keys import SigningKey
from carledger.ledger import merkle
from carledger.ledger.tx import Transaction, build_body, sign
from tests_support import start_node

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carledger", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("api") / "node"
    done = cli(
        "init",
        "--data",
        str(data),
        "--chain-id",
        "api-test",
        "--org",
        "city",
        "--roles",
        "registry,dealer,market_operator",
        "--no-encrypt",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    admin = SigningKey.from_pem(Path(info["admin_key_file"]).read_bytes(), None)
    node = start_node(data, "--block-interval-ms", "20")
    try:
        yield {"url": node.url, "admin": admin, "data": data, "node": node}
    finally:
        node.stop()


def enrol(
    admin: SigningKey, key: SigningKey, member: str, *, nonce: str | None = None
) -> Transaction:
    body = build_body(
        chain="api-test",
        type="member.enrol",
        payload={"key": key.public_hex, "org": "city", "member": member, "roles": ["dealer"]},
        signers=[admin.public_hex],
        created="2026-11-22T00:00:00Z",
        nonce=nonce,
    )
    return sign(body, [admin])


def post(url: str, doc: Any, **params: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/transactions", json=doc, params=params, timeout=60)


def test_health_docs_and_openapi(chain: dict[str, Any]) -> None:
    url = chain["url"]
    health = httpx.get(f"{url}/healthz").json()
    assert health["status"] == "ok" and health["chain"] == "api-test"
    assert httpx.get(f"{url}/docs").status_code == 200
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in (
        "/v1/transactions",
        "/v1/transactions/{tx_id}",
        "/v1/vehicles/{vin}",
        "/v1/vehicles/{vin}/history",
        "/v1/vehicles/{vin}/report",
        "/v1/listings",
        "/v1/blocks/{height}",
        "/v1/checkpoint",
        "/v1/proofs/consistency",
        "/v1/events",
    ):
        assert path in paths, path
    metrics = httpx.get(f"{url}/metrics").text
    assert "carledger_block_height" in metrics


def test_submit_wait_then_proof_verifies(chain: dict[str, Any]) -> None:
    url, admin = chain["url"], chain["admin"]
    tx = enrol(admin, SigningKey.generate(), "dealer-a")
    r = post(url, tx.to_wire(), wait="true")
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["status"] == "committed" and receipt["code"] == "ok"
    got = httpx.get(f"{url}/v1/transactions/{tx.id}").json()
    assert got["type"] == "member.enrol" and got["valid"]
    proof = got["proof"]
    leaf = merkle.leaf_hash(bytes.fromhex(proof["leaf_input"]))
    merkle.verify_inclusion(
        leaf,
        proof["leaf_index"],
        proof["log_size"],
        [bytes.fromhex(h) for h in proof["inclusion"]],
        bytes.fromhex(proof["log_root"]),
    )
    assert proof["checkpoint"]["certified"]
    assert base64.b64decode(got["raw"]["body"]) == tx.body


def test_submit_without_wait_is_accepted_then_committed(chain: dict[str, Any]) -> None:
    url, admin = chain["url"], chain["admin"]
    tx = enrol(admin, SigningKey.generate(), "dealer-b")
    r = post(url, tx.to_wire())
    assert r.status_code == 202 and r.json() == {"id": tx.id, "status": "pending"}
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/v1/transactions/{tx.id}").status_code != 200:
        assert time.monotonic() < deadline, "not committed in time"
    assert httpx.get(f"{url}/v1/transactions/{tx.id}").json()["code"] == "ok"


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status and problem["detail"] and problem["type"].endswith(code)
    return problem


def test_error_codes(chain: dict[str, Any]) -> None:
    url, admin = chain["url"], chain["admin"]
    bad_json = httpx.post(f"{url}/v1/transactions", content=b"{not json", timeout=30)
    _problem(bad_json, 400, "invalid_json")
    _problem(post(url, {"body": "!!", "signatures": []}), 400, "invalid_base64")
    _problem(post(url, {"body": "e30=", "signatures": [], "extra": 1}), 400, "unknown_field")
    # a float inside the signed body
    envelope = (
        b'{"chain":"api-test","created":"2026-11-22T00:00:00Z","nonce":"n1",'
        b'"payload":{"price":1.5},"signers":["' + admin.public_hex.encode() + b'"],'
        b'"type":"member.enrol"}'
    )
    floaty = {
        "body": base64.b64encode(envelope).decode(),
        "signatures": [admin.sign(envelope).hex()],
    }
    _problem(post(url, floaty), 400, "float_not_allowed")
    # forged signature
    tx = enrol(admin, SigningKey.generate(), "dealer-c")
    forged = {
        "body": tx.to_wire()["body"],
        "signatures": [SigningKey.generate().sign(tx.body).hex()],
    }
    _problem(post(url, forged), 422, "bad_signature")
    # unknown signer
    stranger = SigningKey.generate()
    body = build_body(
        chain="api-test",
        type="member.enrol",
        payload={
            "key": SigningKey.generate().public_hex,
            "org": "city",
            "member": "x",
            "roles": ["dealer"],
        },
        signers=[stranger.public_hex],
        created="2026-11-22T00:00:00Z",
    )
    _problem(post(url, sign(body, [stranger]).to_wire()), 403, "unknown_signer")
    # unknown type and wrong chain
    body = build_body(
        chain="api-test",
        type="no.such",
        payload={},
        signers=[admin.public_hex],
        created="2026-11-22T00:00:00Z",
    )
    _problem(post(url, sign(body, [admin]).to_wire()), 400, "unknown_type")
    body = build_body(
        chain="other-chain",
        type="member.enrol",
        payload={},
        signers=[admin.public_hex],
        created="2026-11-22T00:00:00Z",
    )
    _problem(post(url, sign(body, [admin]).to_wire()), 400, "wrong_chain")
    # replay, and a reused nonce with a different body
    assert post(url, tx.to_wire(), wait="true").status_code == 200
    _problem(post(url, tx.to_wire()), 409, "duplicate_transaction")
    again = enrol(admin, SigningKey.generate(), "dealer-c2", nonce=tx.nonce)
    _problem(post(url, again.to_wire()), 409, "duplicate_nonce")
    # a rule refused at commit time with wait=true: enrolling an existing key
    same_key = json.loads(tx.body)["payload"]["key"]
    body = build_body(
        chain="api-test",
        type="member.enrol",
        payload={"key": same_key, "org": "city", "member": "dup", "roles": ["dealer"]},
        signers=[admin.public_hex],
        created="2026-11-22T00:00:00Z",
    )
    _problem(post(url, sign(body, [admin]).to_wire(), wait="true"), 409, "member_exists")
    # too large, too deep, bad paths and parameters
    big = httpx.post(
        f"{url}/v1/transactions",
        content=b"[" + b"1," * 5_000_000 + b"1]",
        headers={"content-type": "application/json"},
        timeout=60,
    )
    _problem(big, 413, "body_too_large")
    _problem(httpx.post(f"{url}/v1/transactions", content=b"[" * 100 + b"]" * 100), 400, "too_deep")
    _problem(httpx.get(f"{url}/v1/blocks/99999"), 404, "unknown_block")
    _problem(httpx.get(f"{url}/v1/transactions/xyz"), 400, "invalid_tx_id")
    _problem(httpx.get(f"{url}/v1/transactions/{'0' * 64}"), 404, "unknown_transaction")
    _problem(
        httpx.get(f"{url}/v1/proofs/consistency", params={"first": 5, "second": 2}),
        400,
        "invalid_proof_request",
    )
    _problem(httpx.get(f"{url}/v1/blocks", params={"limit": 0}), 400, "invalid_request")
    _problem(httpx.get(f"{url}/v1/nothing-here"), 404, "not_found")


def test_batch_reports_each_transaction(chain: dict[str, Any]) -> None:
    url, admin = chain["url"], chain["admin"]
    good = [enrol(admin, SigningKey.generate(), f"batch-{i}") for i in range(5)]
    docs = [t.to_wire() for t in good] + [{"body": "%%%", "signatures": []}]
    r = post(url, docs, wait="true")
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["committed"] * 5 + ["rejected"]
    assert results[5]["error"]["code"] == "invalid_base64"
    assert [x["id"] for x in results[:5]] == [t.id for t in good]


def test_blocks_checkpoint_and_consistency(chain: dict[str, Any]) -> None:
    url, admin = chain["url"], chain["admin"]
    post(url, enrol(admin, SigningKey.generate(), "dealer-d").to_wire(), wait="true")
    cp = httpx.get(f"{url}/v1/checkpoint").json()
    assert cp["certified"] and cp["quorum"] == 1 and len(cp["signatures"]) == 1
    size = cp["checkpoint"]["log_size"]
    block0 = httpx.get(f"{url}/v1/blocks/0").json()
    assert block0["header"]["height"] == 0 and block0["transactions"] == []
    blocks = httpx.get(f"{url}/v1/blocks", params={"limit": 3}).json()["blocks"]
    assert blocks[0]["header"]["height"] == cp["checkpoint"]["height"]
    proof = httpx.get(f"{url}/v1/proofs/consistency", params={"first": 1, "second": size}).json()
    merkle.verify_consistency(
        1,
        size,
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["first_root"]),
        bytes.fromhex(proof["second_root"]),
    )
    assert proof["second_root"] == cp["checkpoint"]["log_root"]


def _read_events(
    url: str,
    count: int,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    with httpx.stream(
        "GET",
        f"{url}/v1/events",
        headers=headers or {},
        params=params or {},
        timeout=httpx.Timeout(30.0),
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event_id = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                assert event_id is not None
                out.append((event_id, json.loads(line[6:])))
                if len(out) == count:
                    return out
    return out


def test_events_replay_and_resume(chain: dict[str, Any]) -> None:
    url, admin = chain["url"], chain["admin"]
    for i in range(3):
        post(url, enrol(admin, SigningKey.generate(), f"ev-{i}").to_wire(), wait="true")
    first = _read_events(url, 3, params={"from_height": 0})
    assert [e[0] for e in first] == [0, 1, 2]
    assert first[0][1]["seq"] == 0 and first[0][1]["type"]
    resumed = _read_events(url, 2, headers={"Last-Event-ID": "1"})
    assert [e[0] for e in resumed] == [2, 3]
    assert resumed[0][1]["id"] == first[2][1]["id"]


def test_backpressure_and_clean_shutdown(tmp_path: Path) -> None:
    data = tmp_path / "node"
    done = cli(
        "init",
        "--data",
        str(data),
        "--chain-id",
        "api-test",
        "--org",
        "city",
        "--roles",
        "registry,dealer",
        "--no-encrypt",
        "--json",
    )
    admin = SigningKey.from_pem(Path(json.loads(done.stdout)["admin_key_file"]).read_bytes(), None)
    node = start_node(
        data, "--mempool", "5", "--block-interval-ms", "600000", "--block-max-txs", "1000"
    )
    try:
        txs = [enrol(admin, SigningKey.generate(), f"bp-{i}") for i in range(6)]
        for tx in txs[:5]:
            assert post(node.url, tx.to_wire()).status_code == 202
        r = post(node.url, txs[5].to_wire())
        _problem(r, 503, "mempool_full")
        assert r.headers["retry-after"] == "1"
    finally:
        assert node.stop() == 0
    # every acknowledged transaction was committed before the node stopped
    again = start_node(data)
    try:
        for tx in txs[:5]:
            assert httpx.get(f"{again.url}/v1/transactions/{tx.id}").json()["code"] == "ok"
    finally:
        again.stop()
