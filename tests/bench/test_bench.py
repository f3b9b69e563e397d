"""``carledger bench --quick --json`` runs every suite and writes the documented shape.

It starts real nodes, a real 4-member etcd cluster and ``carledger import`` on
loopback, so it is an integration test. It asserts what the document holds and that
every figure is a positive number, never how fast anything is.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carledger.bench import SUITES
from carledger.cli.bench_cmds import SUITE_NAMES
from carledger.consortium.local import ETCD_BINARY

REQUIRED = (
    "limits.ed25519_verify_per_s",
    "limits.sqlite_insert_per_s",
    "ingest.committed_tx_per_s",
    "ingest.p50_ms",
    "ingest.p99_ms",
    "ingest.ratio_to_verify",
    "cluster.committed_tx_per_s",
    "cluster.p99_ms",
    "cluster.ratio_to_verify",
    "report.p50_ms",
    "report.p99_ms",
    "verify_report.ms",
    "replay.tx_per_s",
    "replay.ratio_to_ingest",
    "replay.ratio_to_verify",
    "import.records_per_s",
    "import.ratio_to_verify",
    "storage.bytes_per_record",
    "storage.raw_bytes_per_record",
    "storage.ratio_to_raw",
    "node.rss_mb",
)


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    """Every leaf of the figure sections as ``section.key`` (meta, details, targets aside)."""
    out = {}
    for section, values in doc.items():
        if section in ("meta", "details", "targets"):
            continue
        assert isinstance(values, dict), section
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return out


def test_the_cli_knows_every_suite() -> None:
    assert SUITE_NAMES == SUITES


@pytest.mark.integration
@pytest.mark.skipif(not Path(ETCD_BINARY).exists(), reason="etcd-server is not installed")
@pytest.mark.timeout(600)
def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "carledger", "bench", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=590,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Ed25519 verify" in done.stdout  # the Rich table
    doc = json.loads(out.read_text())
    found = figures(doc)
    missing = [k for k in REQUIRED if k not in found]
    assert not missing, missing
    for name, value in found.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), name
        assert math.isfinite(value) and value > 0, (name, value)
    meta = doc["meta"]
    assert meta["command"].startswith("carledger bench")
    assert meta["quick"] is True
    assert meta["machine"]["nproc"] >= 1
    assert set(meta["machine"]["load_before"]) == {"load_1m", "load_5m", "load_15m"}
    assert {t["figure"] for t in doc["targets"]} >= {"ingest.ratio_to_verify", "report.p99_ms"}
    # The load respects each VIN's chain, so records are committed, not refused
    # (a loose bound: this checks the data and its partition, not the node's speed).
    ingest = doc["details"]["ingest"]
    assert ingest["refused_or_rejected"] <= 0.05 * ingest["committed"], ingest
    assert doc["details"]["import"]["refused"] == 0, doc["details"]["import"]


def test_unknown_suites_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "carledger", "bench", "--suites", "ingest,nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "invalid_option" in done.stderr
