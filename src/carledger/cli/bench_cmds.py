"""``carledger bench``: run the benchmark suites, print a table, optionally write JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from carledger.cli.main import app, console, err_console, run_guarded
from carledger.errors import InvalidInput

#: Kept equal to carledger.bench.SUITES (a test checks), so that --help needs no import of it.
SUITE_NAMES: tuple[str, ...] = (
    "limits", "ingest", "cluster", "report", "verify_report", "storage", "replay", "import",
)  # fmt: skip

#: How each figure is printed: (section.key, label, unit).
ROWS: tuple[tuple[str, str, str], ...] = (
    ("limits.ed25519_verify_per_s", "Ed25519 verify, one core", "/s"),
    ("limits.sqlite_insert_per_s", "SQLite executemany insert", "rows/s"),
    ("ingest.committed_tx_per_s", "ingest, one node, committed", "tx/s"),
    ("ingest.ratio_to_verify", "  ratio to Ed25519 verify", "x"),
    ("ingest.p50_ms", "  submit->commit p50 at 50% rate", "ms"),
    ("ingest.p99_ms", "  submit->commit p99 at 50% rate", "ms"),
    ("cluster.committed_tx_per_s", "4-node consortium, on every node", "tx/s"),
    ("cluster.ratio_to_verify", "  ratio to Ed25519 verify", "x"),
    ("cluster.p50_ms", "  submit->commit p50 at 50% rate", "ms"),
    ("cluster.p99_ms", "  submit->commit p99 at 50% rate", "ms"),
    ("report.p50_ms", "report over HTTP p50", "ms"),
    ("report.p99_ms", "report over HTTP p99", "ms"),
    ("verify_report.ms", "offline report verification", "ms"),
    ("replay.tx_per_s", "replay by a fresh node", "tx/s"),
    ("replay.ratio_to_ingest", "  ratio to ingest", "x"),
    ("replay.ratio_to_verify", "  ratio to Ed25519 verify", "x"),
    ("import.records_per_s", "carledger import", "records/s"),
    ("import.ratio_to_verify", "  ratio to Ed25519 verify", "x"),
    ("storage.bytes_per_record", "storage per record", "bytes"),
    ("storage.raw_bytes_per_record", "  signed bytes per record", "bytes"),
    ("storage.ratio_to_raw", "  ratio", "x"),
    ("node.rss_mb", "node resident memory", "MiB"),
)


def _get(doc: dict[str, Any], path: str) -> Any:
    section, _, key = path.partition(".")
    return doc.get(section, {}).get(key)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def render(doc: dict[str, Any]) -> Table:
    targets = {t["figure"]: t for t in doc.get("targets", [])}
    machine = doc["meta"]["machine"]
    table = Table(
        title=f"carledger bench — {doc['meta']['date']}, {machine['nproc']} cores, "
        f"Python {machine['python']}, load {machine['load_before']['load_1m']:.2f} -> "
        f"{machine['load_after']['load_1m']:.2f}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target")
    for path, label, unit in ROWS:
        value = _get(doc, path)
        if value is None:
            continue
        target = targets.get(path)
        mark = ""
        if target is not None:
            mark = ("[green]met[/] " if target["met"] else "[red]not met[/] ") + target["target"]
        table.add_row(label, _fmt(float(value)), unit, mark)
    return table


@app.command()
@run_guarded
def bench(
    scale: Annotated[
        int | None,
        typer.Option(
            help="Vehicles in the ledger of the report/storage/replay suites "
            "(default 10,000; 200 with --quick)."
        ),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the results as one JSON object here.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes: the whole run in under two minutes.")
    ] = False,
    suites: Annotated[
        str | None,
        typer.Option(help="Comma-separated suites (default all): " + ", ".join(SUITE_NAMES)),
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Where the temporary nodes live (default: system temp).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the nodes' directories.")] = False,
) -> None:
    """Measure this machine's limits and carledger beside them (see docs/performance.md)."""
    from carledger.bench import BenchOptions, run_bench

    chosen = tuple(s.strip() for s in suites.split(",") if s.strip()) if suites else SUITE_NAMES
    unknown = sorted(set(chosen) - set(SUITE_NAMES))
    if unknown:
        raise InvalidInput(
            "invalid_option",
            f"Unknown suites: {', '.join(unknown)}; choose from {', '.join(SUITE_NAMES)}.",
        )
    if scale is None:
        scale = 200 if quick else 10_000
    if scale < 20:
        raise InvalidInput("invalid_option", "scale is at least 20 vehicles.")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    options = BenchOptions(
        scale=scale,
        quick=quick,
        suites=chosen,
        workdir=workdir,
        keep=keep,
    )
    doc = run_bench(options, progress=lambda msg: err_console.print(f"[dim]{msg}[/]"))
    console.print(render(doc))
    if json_file is not None:
        json_file.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        err_console.print(f"written to {json_file}")
