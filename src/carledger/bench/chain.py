"""Suites over one big ledger: report latency, offline verification, storage, replay.

The ledger holds ``scale`` vehicles of market data (about 18 records each), built
through :meth:`Ledger.apply` without HTTP (see :mod:`carledger.bench.data`). One
vehicle gets a long life (50 records) for the offline verification suite.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from carledger.bench.data import Built, Market, build_ledger, extend_history
from carledger.bench.ingest import percentile
from carledger.bench.load import start_node
from carledger.ledger.block import BlockHeader, Proposal, RawTx
from carledger.node.service import vehicle_reads
from carledger.store.sqlite import SQLiteStore
from carledger.verifier import verify_report

__all__ = ["BigLedger", "build", "run_replay", "run_reports", "run_storage"]

LONG_REPORT_RECORDS = 50


@dataclass(frozen=True)
class BigLedger:
    path: Path  # the node's data directory
    built: Built
    long_vin: str
    build_seconds: float


def build(m: Market, root: Path, *, vehicles: int, progress: Any = None) -> BigLedger:
    home = m.init_home(root / "big-node")
    ledger = home.open_ledger(None, durable=False)
    try:
        started = time.perf_counter()
        built = build_ledger(ledger, vehicles, progress=progress)
        long_vin = built.vins[min(10, len(built.vins) - 1)]
        extend_history(ledger, m, long_vin, LONG_REPORT_RECORDS)
        seconds = time.perf_counter() - started
    finally:
        ledger.store.close()
    return BigLedger(home.path, built, long_vin, seconds)


def run_storage(big: BigLedger) -> tuple[dict[str, float], dict[str, Any]]:
    """Bytes on disk per record beside the signed bytes (bodies and signatures) alone."""
    db = big.path / "ledger.db"
    conn = sqlite3.connect(str(db))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (records,) = conn.execute("SELECT count(*) FROM txs").fetchone()
        tables: dict[str, int] = {}
        try:
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                tables[str(name)] = int(size)
        except sqlite3.Error:
            pass
    finally:
        conn.close()
    raw = _signed_bytes(db, records)
    size = sum(p.stat().st_size for p in big.path.glob("ledger.db*"))
    figures = {
        "bytes_per_record": size / records,
        "raw_bytes_per_record": raw / records,
        "ratio_to_raw": size / raw,
    }
    details = {
        "records": records,
        "file_bytes": size,
        "bytes_per_record_by_table": {k: round(v / records, 1) for k, v in sorted(tables.items())},
    }
    return figures, details


def _signed_bytes(db: Path, records: int) -> int:
    """Bodies as signed (the store keeps them compressed) and their signatures."""
    store = SQLiteStore.open(db)
    try:
        total = 0
        for start in range(0, records, 20_000):
            total += sum(
                len(tx.body) + 64 * len(tx.signatures)
                for tx in store.txs_range(start, start + 20_000)
            )
        return total
    finally:
        store.close()


def run_reports(
    m: Market, big: BigLedger, root: Path, *, requests: int, verify_repeats: int
) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """(report figures, verify_report figures, details), with the node's RSS at the end."""
    node = start_node(big.path, log=root / "logs" / "big-node.log")
    rng = random.Random(7)  # noqa: S311 (which VINs to ask for)
    vins = big.built.vins
    genesis = m.genesis(1)
    try:
        with httpx.Client(base_url=node.url, timeout=60) as client:

            def get(vin: str) -> tuple[dict[str, Any], float]:
                started = time.perf_counter()
                response = client.get(f"/v1/vehicles/{vin}/report")
                took = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"report {vin}: HTTP {response.status_code}")
                return response.json(), took

            for _ in range(min(20, requests)):
                get(rng.choice(vins))
            latencies = [get(rng.choice(vins))[1] for _ in range(requests)]
            doc, _ = get(big.long_vin)
        rss, peak = node.rss_mb()
    finally:
        node.stop()
    times = []
    for _ in range(verify_repeats):
        started = time.perf_counter()
        verify_report(doc, genesis)
        times.append((time.perf_counter() - started) * 1000)
    report = {
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
        "rss_mb": rss,
    }
    verify = {"ms": statistics.median(times), "records": float(len(doc["records"]))}
    details = {
        "vehicles": big.built.vehicles,
        "records": big.built.records,
        "requests": requests,
        "build_seconds": big.build_seconds,
        "build_tx_per_s": big.built.records / big.built.seconds,
        "peak_rss_mb": peak,
    }
    return report, verify, details


def run_replay(
    m: Market, big: BigLedger, root: Path, *, max_records: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """A fresh node (durable store) re-executes the big ledger's blocks, checking each
    resulting block hash against the original.

    Nothing is taken on trust: every body is decoded and checked and every signature
    verified (by the executor, on two threads), as a node catching up must.
    """
    source = SQLiteStore.open(big.path / "ledger.db")
    home = m.init_home(root / "replay-node")
    ledger = home.open_ledger(None)
    # The read hint a node gives its executor (carledger.node.service.Node): each
    # block's vehicle states are fetched in one query, not one each.
    ledger.executor.read_hint = vehicle_reads
    records = blocks = 0
    try:
        started = time.perf_counter()
        height = 1
        while records < max_records:
            raw_header = source.block(height)
            if raw_header is None:
                break
            header = BlockHeader.from_bytes(raw_header)
            txs = source.txs_range(header.log_size - header.tx_count, header.log_size)
            proposal = Proposal(
                height,
                header.time,
                header.proposer,
                tuple(RawTx(t.body, t.signatures) for t in txs),
            )
            block = ledger.apply(proposal)
            if block.header.hash != header.hash:
                raise RuntimeError(f"replay diverged at height {height}")
            records += len(txs)
            blocks += 1
            height += 1
        seconds = time.perf_counter() - started
    finally:
        ledger.store.close()
        source.close()
    return {"tx_per_s": records / seconds}, {"records": records, "blocks": blocks}
