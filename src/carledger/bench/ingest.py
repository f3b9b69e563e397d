"""Ingest: one node with solo ordering, loaded over HTTP by concurrent clients.

Two phases on the same node: first every client submits back to back (the maximum
committed rate), then the remaining records go at half that rate in small batches
on a fixed schedule (the submit-to-commit latency of a node that is not saturated).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from carledger.bench.data import Market
from carledger.bench.load import partition, run_max, run_paced, start_node

__all__ = ["percentile", "run_ingest"]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def run_ingest(
    m: Market,
    root: Path,
    *,
    vehicles: int,
    clients: int,
    batch: int,
    max_seconds: float,
    paced_seconds: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    """(figures, details) of the ingest suite; see the module docstring."""
    items = list(m.live_records(vehicles))
    home = m.init_home(root / "ingest-node")
    node = start_node(home.path, log=root / "logs" / "ingest-node.log")
    try:
        streams = partition(items, clients, [node.url])
        top = run_max(streams, batch=batch, seconds=max_seconds)
        paced = run_paced(streams, rate=top.rate / 2, seconds=paced_seconds)
        rss, peak = node.rss_mb()
    finally:
        node.stop()
    lat = paced.latencies_ms
    figures = {
        "committed_tx_per_s": top.rate,
        "p50_ms": statistics.median(lat) if lat else 0.0,
        "p99_ms": percentile(lat, 99),
        "paced_tx_per_s": paced.committed / paced.seconds if paced.seconds else 0.0,
        "rss_mb": rss,
    }
    details = {
        "committed": top.committed + paced.committed,
        "refused_or_rejected": top.refused + paced.refused + top.rejected + paced.rejected,
        "codes": dict(top.codes + paced.codes),
        "clients": clients,
        "batch": batch,
        "max_phase_seconds": top.seconds,
        "paced_batches": len(lat),
        "peak_rss_mb": peak,
    }
    return figures, details
