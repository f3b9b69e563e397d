"""Consortium mode end to end: real etcd members and real node processes on loopback.

After each test every node's ``carledger verify`` passes and all block hashes match.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cluster_support import (
    all_committed,
    check_stores,
    converged,
    enrol_txs,
    etcd_client,
    health,
    height,
    leader,
    metric,
    ok_counts,
    settled,
    submit,
    tx_id,
    wait_for,
)

from carledger.client import sign_record
from carledger.consortium.etcd import prefix_end
from carledger.consortium.layout import BLOCK_BYTES, ChainKeys
from carledger.consortium.local import LocalCluster
from carledger.crypto.keys import SigningKey
from carledger.node.home import write_key_file

pytestmark = pytest.mark.integration

ALL = (1, 2, 3, 4)
Make = Callable[..., LocalCluster]


def test_writes_through_every_node(consortium: Make) -> None:
    cluster = consortium()
    committed = []
    for i in ALL:
        [wire] = enrol_txs(cluster, 1, org=1 + i % 4, tag=f"via{i}-")
        r = submit(cluster.node_url(i), [wire], wait=True)
        assert r.status_code == 200, r.text
        assert r.json()["code"] == "ok"
        committed.append(r.json())
    # A batch through one node, and its raw transactions served back for catch-up.
    batch = enrol_txs(cluster, 300, org=2, tag="b")
    r = submit(cluster.node_url(3), batch)
    assert r.status_code == 200, r.text
    assert {x["status"] for x in r.json()["results"]} == {"pending"}
    top = wait_for(
        "all nodes to commit the batch",
        lambda: (
            all_committed(cluster, ALL, [tx_id(batch[0]), tx_id(batch[-1])])
            and converged(cluster, ALL)
        ),
    )
    for i in ALL:
        cp = httpx.get(f"{cluster.node_url(i)}/v1/checkpoint").json()
        assert cp["checkpoint"]["height"] == top
    cert = wait_for(
        "the head to be certified by all four validators",
        lambda: (
            (c := httpx.get(f"{cluster.node_url(1)}/v1/checkpoint").json())["certified"]
            and len(c["signatures"]) == 4
            and c
        ),
    )
    assert cert["quorum"] == 3
    assert {s["validator"] for s in cert["signatures"]} == {f"node-{i}" for i in ALL}
    # Operators see how long etcd takes, by operation: every node wrote (kv/txn) and read.
    for i in ALL:
        for op in ("kv/txn", "kv/range"):
            count = metric(
                cluster.node_url(i), f'carledger_etcd_request_seconds_count{{op="{op}"}}'
            )
            assert count is not None and count > 0, (i, op)
    first = committed[0]["height"]
    raw = httpx.get(f"{cluster.node_url(2)}/v1/blocks/{first}/transactions").json()
    assert tx_id(raw["transactions"][0]) == committed[0]["id"]
    # Every block in etcd stays under the request size limit.
    client = etcd_client(cluster)
    keys = ChainKeys.for_chain(cluster.chain_id)
    blocks = client.range(keys.blocks, prefix_end(keys.blocks)).kvs
    client.close()
    assert blocks
    assert max(len(kv.value) for kv in blocks) <= BLOCK_BYTES
    cluster.down()
    check_stores(cluster, ALL)


class Writers:
    """One writer thread per node, each submitting small batches through its node."""

    def __init__(self, cluster: LocalCluster, nodes: tuple[int, ...]) -> None:
        self.cluster = cluster
        self.acked: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in nodes]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _run(self, i: int) -> None:
        url = self.cluster.node_url(i)
        k = 0
        while not self._stop.is_set():
            k += 1
            batch = enrol_txs(self.cluster, 5, org=i, tag=f"w{i}-{k}-")
            try:
                r = submit(url, batch, timeout=20)
            except httpx.HTTPError:
                with self._lock:
                    self.refused += 1
                self._stop.wait(0.1)  # the node is down: do not spin
                continue
            if r.status_code != 200:
                with self._lock:
                    self.refused += 1
                continue
            with self._lock:
                for wire, res in zip(batch, r.json()["results"], strict=True):
                    if res["status"] == "pending":
                        self.acked.append(tx_id(wire))
                    else:
                        self.refused += 1


def test_leader_killed_mid_stream(consortium: Make) -> None:
    cluster = consortium()
    first = wait_for("a leader", lambda: leader(cluster, ALL))
    others = tuple(i for i in ALL if i != first)
    with Writers(cluster, ALL) as writers:
        h0 = height(cluster.node_url(first))
        wait_for("writes to flow", lambda: height(cluster.node_url(others[0])) >= h0 + 5)
        # The leader's node and its etcd member die together (its server is gone).
        cluster.nodes[first].stop(signal.SIGKILL)
        cluster.etcd[first].stop(signal.SIGKILL)
        killed_at = time.monotonic()
        new = wait_for("another node to lead", lambda: leader(cluster, others), timeout=20)
        failover = time.monotonic() - killed_at
        print(f"failover after {failover:.2f} s")
        h1 = height(cluster.node_url(new))
        wait_for("blocks from the new leader", lambda: height(cluster.node_url(new)) >= h1 + 5)
    assert new != first
    assert failover < 10, f"failover took {failover:.1f} s"
    cluster.start_etcd(first)
    cluster.start_node(first)
    cluster.wait_node(first)
    acked = list(writers.acked)
    assert len(acked) > 50
    wait_for("every node to apply everything ordered", lambda: settled(cluster, ALL), timeout=90)
    cluster.down()
    check_stores(cluster, ALL)
    for i in ALL:
        counts = ok_counts(cluster.node_data(i))
        assert all(counts.get(t) == 1 for t in acked), f"node-{i} lost or doubled a record"
        assert max(counts.values()) == 1


def first_retained_block(cluster: LocalCluster) -> int | None:
    keys = ChainKeys.for_chain(cluster.chain_id)
    client = etcd_client(cluster)
    try:
        kvs = client.range(keys.blocks, prefix_end(keys.blocks), limit=1, keys_only=True).kvs
    finally:
        client.close()
    return keys.parse_log_key(kvs[0].key)[1] if kvs else None


def write_blocks(cluster: LocalCluster, via: int, count: int, tag: str) -> list[str]:
    """``count`` blocks (one record each, waiting for each commit) through node ``via``."""
    ids = []
    for k in range(count):
        [wire] = enrol_txs(cluster, 1, org=1, tag=f"{tag}{k}-")
        r = submit(cluster.node_url(via), [wire], wait=True)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    return ids


def test_follower_killed_and_restarted_catches_up_from_peers(consortium: Make) -> None:
    # etcd keeps only 2 blocks below the slowest live node, so the restarted follower
    # finds its next blocks gone from etcd and must fetch them from peers.
    cluster = consortium(4, "--etcd-retain-blocks", "2")
    first = wait_for("a leader", lambda: leader(cluster, ALL))
    follower = next(i for i in ALL if i != first)
    others = tuple(i for i in ALL if i != follower)
    write_blocks(cluster, first, 2, "pre")
    stopped_at = wait_for("the follower to apply", lambda: converged(cluster, ALL, 2))
    cluster.nodes[follower].stop(signal.SIGKILL)
    ids = write_blocks(cluster, others[1], 12, "during")
    wait_for(
        "etcd to drop the blocks the follower misses",
        lambda: (f := first_retained_block(cluster)) is not None and f > stopped_at + 1,
        timeout=30,
    )
    cluster.start_node(follower)
    cluster.wait_node(follower)
    wait_for("the follower to catch up", lambda: settled(cluster, ALL), timeout=60)
    url = cluster.node_url(follower)
    assert (metric(url, "carledger_catchup_blocks_total") or 0) >= 1
    assert all_committed(cluster, [follower], ids)
    cluster.down()
    check_stores(cluster, ALL)


def test_two_of_four_stopped_writes_stop_then_resume(consortium: Make) -> None:
    cluster = consortium()
    write_blocks(cluster, 1, 2, "pre")
    before = wait_for("agreement", lambda: settled(cluster, ALL))
    for i in (3, 4):
        cluster.nodes[i].stop()
        cluster.etcd[i].stop()
    # etcd has lost its quorum (2 of 4): a write is refused, nothing is ordered.
    [wire] = enrol_txs(cluster, 1, org=1, tag="noquorum")
    r = submit(cluster.node_url(1), [wire], wait=False, timeout=60)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "ordering_unavailable"
    assert health(cluster.node_url(1))["height"] == before
    assert health(cluster.node_url(2))["height"] == before
    for i in (3, 4):
        cluster.start_etcd(i)
    for i in (3, 4):
        cluster.start_node(i)
        cluster.wait_node(i)
    ids = wait_for("writes to resume", lambda: _try_write(cluster, 2), timeout=60)
    wait_for("agreement", lambda: settled(cluster, ALL), timeout=60)
    assert all_committed(cluster, ALL, ids)
    cluster.down()
    chain = check_stores(cluster, ALL)
    assert len(chain) > before + 1


def _try_write(cluster: LocalCluster, via: int) -> list[str] | None:
    [wire] = enrol_txs(cluster, 1, org=2, tag="resume")
    r = submit(cluster.node_url(via), [wire], wait=True, timeout=30)
    return [r.json()["id"]] if r.status_code == 200 else None


def test_divergent_node_is_detected_and_excluded(consortium: Make) -> None:
    fault = {"CARLEDGER_TEST_FAULT": "alter-rule:member.enrol"}  # test-only hook
    cluster = consortium(4, env={4: fault})
    honest = (1, 2, 3)
    ids = write_blocks(cluster, 1, 2, "x")
    bad = cluster.node_url(4)
    wait_for("node-4 to see that it diverged", lambda: health(bad)["diverged"], timeout=30)
    status = httpx.get(f"{bad}/healthz")
    assert status.status_code == 503
    assert "diverged" in status.json()["problem"]
    assert metric(bad, "carledger_consortium_diverged") == 1.0
    # The diverged node refuses new records instead of ordering them on a wrong state.
    r = submit(bad, enrol_txs(cluster, 1, org=4, tag="refused"))
    assert r.status_code == 503
    # The honest three certify without it, and point at it.
    more = write_blocks(cluster, 2, 2, "y")
    top = wait_for("the honest nodes to agree", lambda: converged(cluster, honest, 4))
    for i in honest:
        url = cluster.node_url(i)
        cp = wait_for(
            f"node-{i}'s head to be certified",
            lambda url=url: (
                (c := httpx.get(f"{url}/v1/checkpoint").json())["certified"]
                and c["checkpoint"]["height"] == top
                and len(c["signatures"]) == 3
                and c
            ),
        )
        assert "node-4" not in {s["validator"] for s in cp["signatures"]}
        text = httpx.get(f"{url}/metrics").text
        assert 'carledger_divergent_validator{validator="node-4"} 1.0' in text
        assert health(url)["status"] == "ok"
    assert all_committed(cluster, honest, ids + more)
    cluster.down()
    check_stores(cluster, honest)


def test_new_organisation_node_syncs_from_genesis(consortium: Make, tmp_path: Any) -> None:
    cluster = consortium(4, "--etcd-retain-blocks", "2")
    write_blocks(cluster, 1, 4, "old")
    admins = [cluster.admin_key(o) for o in ALL]
    org5_admin, node5_key = SigningKey.generate(), SigningKey.generate()
    # Admitting an organisation needs admins of 3 of 4 organisations; adding its
    # validator then needs 4 of the 5.
    _, admit = sign_record(
        cluster.chain_id,
        "org.admit",
        {
            "id": "org-5",
            "name": "Scrapyard Union",
            "roles": ["scrapyard"],
            "admins": [org5_admin.public_hex],
        },
        admins[:3],
    )
    _, add = sign_record(
        cluster.chain_id,
        "validator.add",
        {"id": "node-5", "org": "org-5", "key": node5_key.public_hex},
        admins,
    )
    assert admit is not None and add is not None
    for tx in (admit, add):
        r = submit(cluster.node_url(2), [tx.to_wire()], wait=True)
        assert r.status_code == 200 and r.json()["code"] == "ok", r.text
    added_at = r.json()["height"]
    write_blocks(cluster, 3, 3, "later")
    wait_for(
        "etcd to drop the first blocks",
        lambda: (f := first_retained_block(cluster)) is not None and f > 2,
        timeout=30,
    )
    # The new organisation's node starts from the genesis and its key alone.
    key_file = tmp_path / "node5.key"
    write_key_file(key_file, node5_key, None)
    five = cluster.add_node("node-5")
    cluster.start_node(
        five,
        "--genesis", str(cluster.root / "genesis.json"),
        "--node-key", str(key_file),
        "--validator", "node-5",
    )  # fmt: skip
    cluster.wait_node(five)
    everyone = (*ALL, five)
    top = wait_for("node-5 to sync", lambda: settled(cluster, everyone), timeout=60)
    assert (metric(cluster.node_url(five), "carledger_catchup_blocks_total") or 0) >= 1
    # node-5 signs from the height after validator.add: 5 validators, quorum 4.
    [newest] = write_blocks(cluster, five, 1, "by5")
    assert top > added_at
    url = cluster.node_url(1)
    cp = wait_for(
        "a certificate with node-5 in it",
        lambda: (
            (c := httpx.get(f"{url}/v1/checkpoint").json())["certified"]
            and "node-5" in {s["validator"] for s in c["signatures"]}
            and c
        ),
    )
    assert cp["validators"] == 5
    assert cp["quorum"] == 4
    old = httpx.get(f"{url}/v1/blocks/{added_at}").json()["checkpoint"]
    assert old["certified"]
    assert "node-5" not in {s["validator"] for s in old["signatures"]}
    assert all_committed(cluster, everyone, [newest])
    cluster.down()
    check_stores(cluster, everyone)
