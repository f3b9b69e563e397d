"""The consortium: 4 etcd members and 4 nodes on this machine, loaded over HTTP.

Clients spread over the four nodes (each VIN's records through one node). A record
counts once every node has committed it: the maximum rate runs from the first
submission until all four nodes stand at the same final height. Latency is measured
as for ingest, at half the maximum rate, from submission to commit on the node that
took the batch.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from carledger.bench.data import Market
from carledger.bench.ingest import percentile
from carledger.bench.load import free_port, partition, run_max, run_paced, wait_heights
from carledger.consortium.local import LocalCluster

__all__ = ["run_cluster"]

NODES = 4


def _create(m: Market, root: Path) -> LocalCluster:
    """A LocalCluster directory for the bench market's genesis with 4 validators."""
    root.mkdir(parents=True, exist_ok=True)
    genesis = m.genesis(NODES)
    (root / "genesis.json").write_bytes(genesis.bytes)
    for i in range(1, NODES + 1):
        m.init_home(root / f"node-{i}", f"node-{i}", validators=NODES)
    config = {
        "chain_id": genesis.chain_id,
        "token": f"bench-{os.getpid()}-{time.time_ns()}",
        "etcd": [
            {"name": f"e{i}", "client": free_port(), "peer": free_port()}
            for i in range(1, NODES + 1)
        ],
        "nodes": [{"validator": f"node-{i}", "port": free_port()} for i in range(1, NODES + 1)],
    }
    (root / "cluster.json").write_text(json.dumps(config, indent=2) + "\n")
    return LocalCluster(root)


def run_cluster(
    m: Market,
    root: Path,
    *,
    vehicles: int,
    clients: int,
    batch: int,
    max_seconds: float,
    paced_seconds: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    """(figures, details) of the cluster suite; see the module docstring."""
    items = list(m.live_records(vehicles))
    cluster = _create(m, root / "cluster")
    try:
        cluster.up()
        urls = [cluster.node_url(i) for i in range(1, NODES + 1)]
        streams = partition(items, clients, urls)
        top = run_max(streams, batch=batch, seconds=max_seconds)
        height, everywhere = wait_heights(urls)
        rate = top.committed / (everywhere - top.started)
        paced = run_paced(streams, rate=rate / 2, seconds=paced_seconds)
        wait_heights(urls)
    finally:
        cluster.down()
    lat = paced.latencies_ms
    figures = {
        "committed_tx_per_s": rate,
        "p50_ms": statistics.median(lat) if lat else 0.0,
        "p99_ms": percentile(lat, 99),
    }
    details = {
        "nodes": NODES,
        "committed": top.committed + paced.committed,
        "refused_or_rejected": top.refused + paced.refused + top.rejected + paced.rejected,
        "codes": dict(top.codes + paced.codes),
        "height": height,
        "first_node_tx_per_s": top.rate,
        "paced_tx_per_s": paced.committed / paced.seconds if paced.seconds else 0.0,
    }
    return figures, details
