"""``carledger bench``: which suites run, at what size, and the one JSON document they give.

Every figure is measured in this run, beside the machine's limits measured in the same
run (see :mod:`carledger.bench.limits`), and each has its ratio to the limit that
bounds it. The document nests suites as sections (``limits``, ``ingest``, ...) of
numbers; ``details`` holds counts and diagnostics that may be zero; ``meta`` says
what ran where.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carledger import __version__
from carledger.bench import chain, cluster, importer, ingest, limits
from carledger.bench.data import live_market, market

__all__ = ["SUITES", "TARGETS", "BenchOptions", "run_bench"]

SUITES = ("limits", "ingest", "cluster", "report", "verify_report", "storage", "replay", "import")

#: (figure, comparison, target, what it is measured against) — from issue 8.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("ingest.ratio_to_verify", ">=", 0.6, "one node commits >= 0.6 x one core's Ed25519 verifies"),
    ("cluster.committed_tx_per_s", ">=", 2000, "4-node consortium, records/s on every node"),
    ("cluster.p99_ms", "<", 1000, "4-node consortium, submit to commit"),
    ("report.p99_ms", "<=", 20, "report over HTTP, at the scale built"),
    ("verify_report.ms", "<=", 10, "offline verification of a 50-record report"),
    ("replay.ratio_to_ingest", ">=", 1.0, "a fresh node replays at least as fast as it ingests"),
    ("import.records_per_s", ">=", 10_000, "carledger import of JSON Lines"),
    ("storage.ratio_to_raw", "<=", 2.0, "bytes on disk per record / signed bytes per record"),
    ("node.rss_mb", "<=", 1024, "resident memory of the node at the end of the largest run"),
)


@dataclass(frozen=True)
class BenchOptions:
    scale: int = 10_000
    quick: bool = False
    suites: tuple[str, ...] = SUITES
    workdir: Path | None = None
    keep: bool = False
    command: str = field(default_factory=lambda: shlex.join(["carledger", *sys.argv[1:]]))

    # Sizes of each suite; quick mode keeps the whole run under two minutes.
    @property
    def ingest_vehicles(self) -> int:
        return 250 if self.quick else 8_000

    @property
    def ingest_seconds(self) -> tuple[float, float]:
        return (4.0, 2.0) if self.quick else (30.0, 12.0)

    @property
    def cluster_vehicles(self) -> int:
        return 100 if self.quick else 5_000

    @property
    def cluster_seconds(self) -> tuple[float, float]:
        return (4.0, 2.0) if self.quick else (30.0, 12.0)

    @property
    def report_requests(self) -> int:
        return 60 if self.quick else 1000

    @property
    def replay_records(self) -> int:
        return 4_000 if self.quick else 100_000

    @property
    def import_vehicles(self) -> int:
        return 40 if self.quick else 2_000


Progress = Callable[[str], None]


def _load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen}


def run_bench(options: BenchOptions, progress: Progress = lambda _msg: None) -> dict[str, Any]:
    """Run the selected suites; return the result document (see the module docstring)."""
    unknown = set(options.suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites: {', '.join(sorted(unknown))}")
    root = Path(tempfile.mkdtemp(prefix="carledger-bench-", dir=options.workdir))
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    timings: dict[str, float] = {}
    load_before = _load()
    m = market()
    live = live_market(dt.datetime.now(dt.UTC).date())
    wanted = set(options.suites)
    try:

        def suite(name: str, run: Callable[[], None]) -> None:
            progress(f"{name}...")
            started = time.perf_counter()
            run()
            timings[name] = round(time.perf_counter() - started, 1)
            progress(f"{name} done in {timings[name]} s (load {os.getloadavg()[0]:.2f})")

        # Every figure sits beside the limits of the same run, so they always run.
        def run_limits() -> None:
            out["limits"] = {
                "ed25519_verify_per_s": limits.ed25519_verify_per_s(
                    seconds=0.5 if options.quick else 1.0
                ),
                "sqlite_insert_per_s": limits.sqlite_insert_per_s(
                    rows=20_000 if options.quick else 50_000
                ),
            }

        suite("limits", run_limits)
        if "ingest" in wanted:

            def run_ingest() -> None:
                top, paced = options.ingest_seconds
                out["ingest"], details["ingest"] = ingest.run_ingest(
                    live,
                    root,
                    vehicles=options.ingest_vehicles,
                    # 8 clients of 250 records left the block thread waiting for the
                    # next block at times (4,100 vs 4,550 records/s with 16, 2026-12-07).
                    clients=16,
                    batch=250,
                    max_seconds=top,
                    paced_seconds=paced,
                )

            suite("ingest", run_ingest)
        if "cluster" in wanted:

            def run_cluster() -> None:
                top, paced = options.cluster_seconds
                out["cluster"], details["cluster"] = cluster.run_cluster(
                    live,
                    root,
                    vehicles=options.cluster_vehicles,
                    clients=8,
                    batch=250,
                    max_seconds=top,
                    paced_seconds=paced,
                )

            suite("cluster", run_cluster)
        if wanted & {"report", "verify_report", "storage", "replay"}:
            holder: list[chain.BigLedger] = []

            def run_build() -> None:
                holder.append(chain.build(m, root, vehicles=options.scale))

            suite("build", run_build)
            big = holder[0]
            if "storage" in wanted:

                def run_storage() -> None:
                    out["storage"], details["storage"] = chain.run_storage(big)

                suite("storage", run_storage)
            if wanted & {"report", "verify_report"}:

                def run_reports() -> None:
                    report, verify, info = chain.run_reports(
                        m,
                        big,
                        root,
                        requests=options.report_requests,
                        verify_repeats=10 if options.quick else 30,
                    )
                    out["report"], out["verify_report"], details["report"] = report, verify, info

                suite("report", run_reports)
            if "replay" in wanted:

                def run_replay() -> None:
                    out["replay"], details["replay"] = chain.run_replay(
                        m, big, root, max_records=options.replay_records
                    )

                suite("replay", run_replay)
        if "import" in wanted:

            def run_import() -> None:
                out["import"], details["import"] = importer.run_import(
                    live, root, vehicles=options.import_vehicles
                )

            suite("import", run_import)
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
    _ratios(out)
    details["seconds_by_suite"] = timings
    out["details"] = details
    out["targets"] = _targets(out)
    out["meta"] = {
        "command": options.command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "carledger": __version__,
        "quick": options.quick,
        "scale": options.scale,
        "suites": list(options.suites),
        "workdir": str(root) if options.keep else None,
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": load_before,
            "load_after": _load(),
        },
    }
    return out


def _ratios(out: dict[str, Any]) -> None:
    lim = out.get("limits", {})
    verify = lim.get("ed25519_verify_per_s")
    insert = lim.get("sqlite_insert_per_s")
    for section, key in (
        ("ingest", "committed_tx_per_s"),
        ("cluster", "committed_tx_per_s"),
        ("replay", "tx_per_s"),
        ("import", "records_per_s"),
    ):
        value = out.get(section, {}).get(key)
        if value is None:
            continue
        if verify:
            out[section]["ratio_to_verify"] = value / verify
        if insert:
            out[section]["ratio_to_sqlite_insert"] = value / insert
    ingest_rate = out.get("ingest", {}).get("committed_tx_per_s")
    if "replay" in out and ingest_rate:
        out["replay"]["ratio_to_ingest"] = out["replay"]["tx_per_s"] / ingest_rate
    rss = [out[s]["rss_mb"] for s in ("report", "ingest") if "rss_mb" in out.get(s, {})]
    if rss:
        out["node"] = {"rss_mb": max(rss)}


def _targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path, op, target, what in TARGETS:
        section, _, key = path.partition(".")
        value = out.get(section, {}).get(key)
        if value is None:
            continue
        met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        rows.append(
            {"figure": path, "value": value, "target": f"{op} {target:g}", "met": met, "what": what}
        )
    return rows
