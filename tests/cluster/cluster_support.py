"""Helpers of the consortium tests: a real etcd cluster and real node processes on loopback.

Every wait polls a condition with a deadline; nothing sleeps for a fixed time to let
something happen.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from carledger.client import sign_record
from carledger.consortium.etcd import EtcdClient, prefix_end
from carledger.consortium.layout import ChainKeys
from carledger.consortium.local import LocalCluster
from carledger.crypto.keys import SigningKey

T = TypeVar("T")

#: The role each organisation of a LocalCluster holds first (see consortium/local.py).
ORG_ROLE = {1: "registry", 2: "dealer", 3: "inspector", 4: "insurer", 5: "scrapyard"}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r}; {_state()})")


#: The cluster of the running test, for the state printed when a wait times out.
CURRENT: list[LocalCluster] = []


def _state() -> str:
    if not CURRENT:
        return ""
    cluster = CURRENT[-1]
    out = []
    for i in range(1, len(cluster.config["nodes"]) + 1):
        try:
            h = health(cluster.node_url(i))
            out.append(f"node-{i}: height {h['height']}, {h['status']}, {h.get('problem')}")
        except httpx.HTTPError as exc:
            out.append(f"node-{i}: {type(exc).__name__}")
    try:
        client = etcd_client(cluster)
        keys = ChainKeys.for_chain(cluster.chain_id)
        pending = client.range(keys.pending, prefix_end(keys.pending), count_only=True).count
        out.append(f"etcd head {etcd_head(cluster)}, {pending} pending batches")
        client.close()
    except Exception as exc:
        out.append(f"etcd: {exc!r}")
    return "; ".join(out)


def enrol_txs(cluster: LocalCluster, count: int, *, org: int = 1, tag: str = "m") -> list[Any]:
    """``count`` signed ``member.enrol`` records by ``org``'s admin, as wire dicts."""
    admin = cluster.admin_key(org)
    out = []
    for i in range(count):
        _, tx = sign_record(
            cluster.chain_id,
            "member.enrol",
            {
                "key": SigningKey.generate().public_hex,
                "org": f"org-{org}",
                "member": f"{tag}{i}",
                "roles": [ORG_ROLE[org]],
            },
            [admin],
        )
        assert tx is not None
        out.append(tx.to_wire())
    return out


def submit(url: str, txs: list[Any], *, wait: bool = False, timeout: float = 30) -> httpx.Response:
    body: Any = txs[0] if len(txs) == 1 else txs
    return httpx.post(
        f"{url}/v1/transactions", params={"wait": str(wait).lower()}, json=body, timeout=timeout
    )


def health(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/healthz", timeout=5).json())


def height(url: str) -> int:
    return int(health(url)["height"])


def metric(url: str, name: str) -> float | None:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def leader(cluster: LocalCluster, among: Iterable[int]) -> int | None:
    for i in among:
        try:
            if metric(cluster.node_url(i), "carledger_ordering_leader") == 1.0:
                return i
        except httpx.HTTPError:
            continue
    return None


def etcd_client(cluster: LocalCluster) -> EtcdClient:
    return EtcdClient(cluster.etcd_urls, timeout=3)


def etcd_head(cluster: LocalCluster) -> int:
    with_client = etcd_client(cluster)
    try:
        kv = with_client.get(ChainKeys.for_chain(cluster.chain_id).head)
        return 0 if kv is None else int(json.loads(kv.value)["height"])
    finally:
        with_client.close()


def settled(cluster: LocalCluster, nodes: Iterable[int]) -> int | None:
    """The common height once etcd holds no pending batch and every node applied its head."""
    client = etcd_client(cluster)
    try:
        keys = ChainKeys.for_chain(cluster.chain_id)
        if client.range(keys.pending, prefix_end(keys.pending), count_only=True).count:
            return None
        kv = client.get(keys.head)
    finally:
        client.close()
    head = 0 if kv is None else int(json.loads(kv.value)["height"])
    return converged(cluster, nodes, head) if head else None


def converged(cluster: LocalCluster, nodes: Iterable[int], at_least: int = 0) -> int | None:
    """The common height if every node in ``nodes`` is at the same height >= ``at_least``."""
    heights = {height(cluster.node_url(i)) for i in nodes}
    if len(heights) == 1 and (h := heights.pop()) >= at_least:
        return h
    return None


def all_committed(cluster: LocalCluster, nodes: Iterable[int], ids: Iterable[str]) -> bool:
    wanted = list(ids)
    for i in nodes:
        url = cluster.node_url(i)
        for tx_id in wanted:
            if httpx.get(f"{url}/v1/transactions/{tx_id}", timeout=5).status_code != 200:
                return False
    return True


def tx_id(wire: Any) -> str:
    import base64
    import hashlib

    return hashlib.sha256(base64.b64decode(wire["body"])).hexdigest()


# --- after the test: the stores themselves ------------------------------------------------


def block_hashes(data: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(data / "ledger.db") as conn:
        return [
            (int(h), bytes(b).hex())
            for h, b in conn.execute("SELECT height, hash FROM blocks ORDER BY height")
        ]


def ok_counts(data: Path) -> dict[str, int]:
    """How many times each transaction id was committed with code ``ok``."""
    with sqlite3.connect(data / "ledger.db") as conn:
        rows = conn.execute("SELECT id, count(*) FROM txs WHERE code = 'ok' GROUP BY id")
        return {bytes(i).hex(): int(c) for i, c in rows}


def verify(data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "carledger", "verify", "--data", str(data), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def check_stores(cluster: LocalCluster, nodes: Iterable[int]) -> list[tuple[int, str]]:
    """Every node's ``carledger verify`` passes and all block hashes match (nodes stopped)."""
    nodes = list(nodes)
    runs = {i: verify(cluster.node_data(i)) for i in nodes}
    for i, proc in runs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"verify failed on node-{i}:\n{out}"
    chains = {i: block_hashes(cluster.node_data(i)) for i in nodes}
    reference = chains[nodes[0]]
    for i, chain in chains.items():
        assert chain == reference, f"node-{i}'s blocks differ from node-{nodes[0]}'s"
    return reference
