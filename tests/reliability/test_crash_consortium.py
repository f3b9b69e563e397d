"""Crash consistency of a consortium, and recovery of a damaged node from its peers.

Four organisations (4 etcd members, 4 nodes, quorum 3) under sustained writes through
every node, each writer waiting for commit. At random moments an etcd member or a
node is killed with SIGKILL and restarted a moment later. Afterwards every
transaction any node acknowledged as committed is on every node exactly once, all
nodes hold the same blocks, and every store passes ``carledger verify``.

Then two disk faults, each recovered from the peers (etcd keeps only the last three
blocks, so the missing ones come from other nodes, checked against their
certificates):

- node-4's store file is truncated: the node refuses to start (``store_unreadable``);
  the operator moves the damaged store aside and starts it again: it rebuilds the
  whole chain from its peers;
- node-3 is killed and its write-ahead log deleted: it starts behind its own
  ``head.json``, says so, and fetches the lost blocks again.

``CARLEDGER_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_support import check_stores, height, ok_counts, settled, wait_for
from reliability_support import Writer, committed_ids, report_figures

from carledger.client import sign_record
from carledger.consortium.local import LocalCluster
from carledger.crypto.keys import SigningKey
from carledger.ledger.tx import Transaction

pytestmark = pytest.mark.integration

ALL = (1, 2, 3, 4)
ORG_ROLE = {1: "registry", 2: "dealer", 3: "inspector", 4: "insurer"}
Make = Callable[..., LocalCluster]


def _enrol(cluster: LocalCluster, org: int) -> Callable[[int], Transaction]:
    admin = cluster.admin_key(org)

    def make(n: int) -> Transaction:
        _, tx = sign_record(
            cluster.chain_id,
            "member.enrol",
            {
                "key": SigningKey.generate().public_hex,
                "org": f"org-{org}",
                "member": f"crash-{org}-{n}",
                "roles": [ORG_ROLE[org]],
            },
            [admin],
            nonce=f"crash-{org}-{n}",
        )
        assert tx is not None
        return tx

    return make


def _writers(cluster: LocalCluster) -> list[Writer]:
    writers = [
        Writer(
            cluster.node_url(i),
            _enrol(cluster, i),
            itertools.count(),
            batch=3,
            stop_on_transport_error=False,
            timeout=20,
        )
        for i in ALL
    ]
    for w in writers:
        w.start()
    return writers


def _progress(cluster: LocalCluster, at_least: int) -> int | None:
    for i in ALL:
        try:
            if (h := height(cluster.node_url(i))) >= at_least:
                return h
        except Exception:
            continue
    return None


def _top(cluster: LocalCluster) -> int:
    return max(height(cluster.node_url(i)) for i in ALL if cluster.nodes[i].alive())


def kill_cycles(cluster: LocalCluster, cycles: int, rng: random.Random) -> dict[str, int]:
    kills = {"etcd": 0, "node": 0}
    for cycle in range(cycles):
        victim = rng.choice(ALL)
        before = _top(cluster)
        time.sleep(rng.uniform(0.0, 0.5))
        if cycle % 2 == 0:
            cluster.etcd[victim].stop(signal.SIGKILL)
            time.sleep(rng.uniform(0.2, 1.0))
            cluster.start_etcd(victim)
            kills["etcd"] += 1
        else:
            cluster.nodes[victim].stop(signal.SIGKILL)
            time.sleep(rng.uniform(0.0, 0.5))
            cluster.start_node(victim)
            cluster.wait_node(victim)
            kills["node"] += 1
        wait_for("writes to go on", lambda b=before: _progress(cluster, b + 3), timeout=60)
    return kills


def _stop_writers(writers: list[Writer]) -> set[str]:
    for w in writers:
        w.stop()
    for w in writers:
        w.join(timeout=60)
        assert not w.is_alive()
    acked: set[str] = set()
    for w in writers:
        acked.update(w.stats.acked)
    return acked


def _checkpoint_and_truncate(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.truncate(size // 2 // 4096 * 4096)


def _head_mark(data: Path) -> int:
    """The height ``head.json`` says the node committed."""
    return int(json.loads((data / "head.json").read_text())["height"])


def _store_height(data: Path) -> int:
    """The last block in the store's database file (read as it is on disk)."""
    conn = sqlite3.connect(f"file:{data / 'ledger.db'}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT max(height) FROM blocks").fetchone()[0])
    finally:
        conn.close()


def run(consortium: Make, cycles: int) -> dict[str, object]:
    seed = int(os.environ.get("CARLEDGER_CRASH_SEED", "20261122"))
    rng = random.Random(seed)
    started = time.monotonic()
    cluster = consortium(4, "--etcd-retain-blocks", "3")
    writers = _writers(cluster)
    wait_for("writes to flow", lambda: _progress(cluster, 3), timeout=60)
    kills = kill_cycles(cluster, cycles, rng)

    # node-4: a truncated store is refused; moved aside, the node rebuilds from peers.
    cluster.nodes[4].stop()
    db4 = cluster.node_data(4) / "ledger.db"
    _checkpoint_and_truncate(db4)
    cluster.start_node(4)
    wait_for("node-4 to refuse its store", lambda: not cluster.nodes[4].alive(), timeout=60)
    assert cluster.nodes[4].stop() == 1
    assert "[store_unreadable]" in cluster.log_text("node-4")
    aside = cluster.node_data(4) / "damaged"
    aside.mkdir()
    for part in cluster.node_data(4).glob("ledger.db*"):
        part.rename(aside / part.name)
    cluster.start_node(4)
    cluster.wait_node(4)

    # node-3: killed, its write-ahead log deleted; it fetches the lost blocks again.
    cluster.nodes[3].stop(signal.SIGKILL)
    wal = cluster.node_data(3) / "ledger.db-wal"
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    wal.unlink(missing_ok=True)
    (cluster.node_data(3) / "ledger.db-shm").unlink(missing_ok=True)
    # Blocks lost with the log: those head.json names beyond the store's last block (none
    # when SQLite had just copied the log into the database).
    lost_blocks = _head_mark(cluster.node_data(3)) - _store_height(cluster.node_data(3))
    cluster.start_node(3)
    cluster.wait_node(3)
    before = _top(cluster)
    wait_for("writes to go on", lambda: _progress(cluster, before + 3), timeout=60)

    acked = _stop_writers(writers)
    refused = [r for w in writers for r in w.stats.refused]
    top = wait_for("every node to apply everything", lambda: settled(cluster, ALL), timeout=120)
    for i in ALL:
        missing = acked - committed_ids(cluster.node_data(i) / "ledger.db")
        assert not missing, f"node-{i} lacks {len(missing)} acknowledged transactions"
    if lost_blocks > 0:
        assert "fetching the missing blocks again" in cluster.log_text("node-3")
    cluster.down()
    check_stores(cluster, ALL)
    for i in ALL:
        counts = ok_counts(cluster.node_data(i))
        assert all(counts.get(t) == 1 for t in acked), f"node-{i} lost or doubled a record"
    return {
        "seed": seed,
        "sigkills_etcd": kills["etcd"],
        "sigkills_node": kills["node"],
        "acknowledged": len(acked),
        "not_acknowledged_answers": len(refused),
        "lost": 0,
        "height": top,
        "recovered_from_peers": ["truncated store (node-4)", "deleted WAL (node-3)"],
        "wal_bytes_deleted": wal_bytes,
        "blocks_lost_with_the_wal": lost_blocks,
        "seconds": round(time.monotonic() - started, 1),
    }


def test_kills_in_a_consortium_and_recovery_from_peers(consortium: Make) -> None:
    report_figures("crash.consortium", run(consortium, cycles=60))


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_kills_in_a_consortium_long(consortium: Make) -> None:
    report_figures("crash.consortium.long", run(consortium, cycles=1000))
