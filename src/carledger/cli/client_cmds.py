"""Client-side commands: ``submit``, ``history``, ``report``, ``verify-report``, ``import``."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from carledger.cli.main import JsonOpt, app, console, emit, read_passphrase, run_guarded
from carledger.client import Client, load_key, sign_record
from carledger.crypto.keys import SigningKey
from carledger.encoding import canonical
from carledger.errors import InvalidInput, LedgerError
from carledger.ledger.genesis import Genesis
from carledger.ledger.tx import Transaction

NodeOpt = Annotated[
    str, typer.Option("--node", help="The node's base URL.", envvar="CARLEDGER_NODE")
]
KeyOpt = Annotated[Path, typer.Option("--key", "-k", help="Your member key file (PEM).")]
PassOpt = Annotated[Path | None, typer.Option(help="File holding the key's passphrase.")]
NoEncOpt = Annotated[bool, typer.Option("--unencrypted-key", help="The key file is unencrypted.")]

DEFAULT_NODE = "http://127.0.0.1:8000"


def _key(path: Path, passphrase_file: Path | None, unencrypted: bool) -> SigningKey:
    if not path.exists():
        raise InvalidInput("key_file_missing", f"There is no key file {path}.")
    data = path.read_bytes()
    if unencrypted or b"ENCRYPTED" not in data:
        return SigningKey.from_pem(data, None)
    return load_key(path, read_passphrase(passphrase_file))


def _payload(text: str) -> dict[str, Any]:
    raw = Path(text[1:]).read_bytes() if text.startswith("@") else text.encode()
    value = canonical.decode(raw)
    if not isinstance(value, dict):
        raise InvalidInput("invalid_payload", "The payload is a JSON object.")
    return value


@app.command()
@run_guarded
def submit(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="Record type, e.g. trade.purchase.")],
    payload: Annotated[str, typer.Argument(help="Payload JSON, or @file.json.")],
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    co_sign: Annotated[
        list[Path] | None, typer.Option(help="Further signers' key files (e.g. the buyer).")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once queued.")] = False,
    sign_only: Annotated[
        bool, typer.Option("--sign-only", help="Print the signed transaction instead (for curl).")
    ] = False,
    passphrase_file: PassOpt = None,
    unencrypted_key: NoEncOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign a record with your key and submit it; the VIN's prev link is filled in for you."""
    signer = _key(key, passphrase_file, unencrypted_key)
    others = [_key(p, passphrase_file, unencrypted_key) for p in co_sign or []]
    body = _payload(payload)
    with Client(node, signer) as client:
        if sign_only:
            if "vin" in body and "prev" not in body:
                body["prev"] = client.head(body["vin"])
            print(json.dumps(client.sign(type_, body, co_signers=others).to_wire()))
            return
        if no_wait:
            if "vin" in body and "prev" not in body:
                body["prev"] = client.head(body["vin"])
            receipt = client.submit(client.sign(type_, body, co_signers=others), wait=False)
        else:
            receipt = client.record(type_, body, co_signers=others)
    emit(
        receipt,
        as_json,
        lambda: console.print(
            f"{receipt['status']}: {receipt['id']}"
            + (f" at height {receipt['height']} ({receipt['code']})" if "height" in receipt else "")
        ),
    )


@app.command()
@run_guarded
def history(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    node: NodeOpt = DEFAULT_NODE,
    as_json: JsonOpt = False,
) -> None:
    """All records of a VIN, oldest first, with who signed them."""
    with Client(node) as client:
        records = list(client.history(vin.strip().upper()))

    def human() -> None:
        table = Table(title=f"history of {vin.upper()}")
        for col in ("#", "height", "time", "type", "signed by", "status"):
            table.add_column(col)
        for i, rec in enumerate(records, 1):
            who = ", ".join(f"{s.get('org')}/{s.get('member')}" for s in rec["signers"])
            table.add_row(
                str(i),
                str(rec["height"]),
                str(rec.get("block_time", ""))[:19],
                rec["type"],
                who,
                rec.get("status", "valid"),
            )
        console.print(table)

    emit({"vin": vin.upper(), "records": records}, as_json, human)


@app.command()
@run_guarded
def report(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    node: NodeOpt = DEFAULT_NODE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report here.")] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="Also print the report to this PDF file.")
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(help="Base URL of the web pages the PDF's QR code leads to (default --node)."),
    ] = None,
    since: Annotated[
        int | None, typer.Option(help="Include a consistency proof from this log size.")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(help="An older report of this VIN: include a consistency proof from it."),
    ] = None,
    genesis: Annotated[
        Path | None, typer.Option(help="Verify the report against this genesis before saving.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a VIN's verifiable report (JSON) from a node; optionally print it as a PDF."""
    from carledger.verifier import verify_report

    older = None
    if previous is not None:
        older = _read_report(previous)
        since = int(older["header"]["log_size"]) or None
    with Client(node) as client:
        doc = client.report(vin.strip().upper(), since=since)
    if genesis is not None:
        verify_report(doc, Genesis.load(genesis), previous=older)
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if pdf is not None:
        from carledger.report.pdf import render_pdf

        pdf.write_bytes(render_pdf(doc, base_url=public_url or node))
    if as_json and out is None:
        print(text)
        return
    summary = doc.get("summary", {})
    console.print(
        f"report of [bold]{doc['vin']}[/]: {len(doc['records'])} records, "
        f"checkpoint height {doc['header']['height']} ({doc['header']['time']})"
        + (" [bold green]verified[/]" if genesis is not None else "")
    )
    if summary:
        console.print_json(json.dumps(summary, ensure_ascii=False))
    if out is not None:
        console.print(
            f"written to {out}; check it with: carledger verify-report {out} --genesis genesis.json"
        )
    if pdf is not None:
        console.print(f"printable report written to {pdf}")


def _read_report(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InvalidInput("file_missing", f"There is no file {path}.")
    doc = canonical.decode(path.read_bytes(), max_depth=32)
    if not isinstance(doc, dict) or not isinstance(doc.get("header"), dict):
        raise InvalidInput("invalid_report_file", f"{path} is not a carledger report.")
    return doc


@app.command("verify-report")
@run_guarded
def verify_report_cmd(
    file: Annotated[Path, typer.Argument(help="A report JSON file.")],
    genesis: Annotated[Path, typer.Option(help="The chain's genesis.json you trust.")],
    max_age: Annotated[
        int | None, typer.Option(help="Refuse a checkpoint older than this many seconds.")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(help="An older report of the same VIN that this one must be consistent with."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a report offline: signatures, proofs, completeness, checkpoint, summary."""
    from carledger.verifier import verify_report

    doc = _read_report(file)
    older = None if previous is None else _read_report(previous)
    trusted = Genesis.load(genesis)
    now = int(time.time() * 1000)
    result = verify_report(
        doc,
        trusted,
        now_ms=now if max_age is not None else None,
        max_age_ms=max_age * 1000 if max_age is not None else None,
        previous=older,
    )
    data = {
        "ok": True,
        "vin": result.vin,
        "chain": result.chain,
        "height": result.height,
        "checkpoint_time": result.checkpoint_time,
        "log_size": result.log_size,
        "records": result.records,
        "organisations": sorted(result.organisations),
        "validators": sorted(result.validators),
        "content_hash": result.content_hash,
        "consistent_with_previous": previous is not None,
    }

    def human() -> None:
        console.print(
            f"[bold green]verified[/]: {result.records} records of {result.vin} are complete and "
            f"unaltered as of height {result.height} ({result.checkpoint_time}), certified by "
            f"{', '.join(sorted(result.validators))}"
        )
        if previous is not None:
            console.print(f"consistent with {previous}: one history, no record changed or hidden")

    emit(data, as_json, human)


# --- import ---------------------------------------------------------------------------


@dataclass
class _Line:
    number: int
    type: str
    payload: dict[str, Any]
    nonce: str
    tries: int = 0


@dataclass
class ImportSummary:
    lines: int = 0
    committed: int = 0
    already: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "committed": self.committed,
            "already_imported": self.already,
            "refused": self.refused,
        }


def _read_lines(path: Path, summary: ImportSummary) -> Iterator[_Line]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            summary.lines += 1
            try:
                doc = canonical.decode(raw)
                if not isinstance(doc, dict) or set(doc) - {"type", "payload"}:
                    raise InvalidInput("invalid_line", 'A line is {"type": ..., "payload": {...}}.')
                if not isinstance(doc.get("type"), str) or not isinstance(doc.get("payload"), dict):
                    raise InvalidInput(
                        "invalid_line", "A line needs type (text) and payload (object)."
                    )
            except LedgerError as exc:
                summary.refused.append({"line": number, "code": exc.code, "message": exc.message})
                continue
            # The nonce is derived from the line, so re-running a file cannot create
            # the same record twice: the node refuses a reused nonce (duplicate_nonce).
            nonce = hashlib.sha256(canonical.encode(doc)).hexdigest()[:32]
            yield _Line(number, doc["type"], doc["payload"], nonce)


def import_file(
    client: Client, key: SigningKey, path: Path, *, batch: int, on_progress: Any = None
) -> ImportSummary:
    summary = ImportSummary()
    heads: dict[str, str | None] = {}
    lines = _read_lines(path, summary)
    retry: list[_Line] = []
    done = False
    while not done or retry:
        chunk = retry[:batch]
        retry = retry[batch:]
        while len(chunk) < batch and not done:
            line = next(lines, None)
            if line is None:
                done = True
            else:
                chunk.append(line)
        if not chunk:
            continue
        txs: list[tuple[_Line, Transaction]] = []
        pending_heads = dict(heads)
        for line in chunk:
            payload = dict(line.payload)
            vin = payload.get("vin")
            if isinstance(vin, str):
                if vin not in pending_heads:
                    pending_heads[vin] = heads[vin] = client.head(vin)
                payload["prev"] = pending_heads[vin]
            try:
                _, tx = sign_record(client.chain, line.type, payload, [key], nonce=line.nonce)
            except LedgerError as exc:
                summary.refused.append(
                    {"line": line.number, "code": exc.code, "message": exc.message}
                )
                continue
            assert tx is not None
            if isinstance(vin, str):
                pending_heads[vin] = tx.id
            txs.append((line, tx))
        results = client.submit_many([t for _, t in txs], wait=True) if txs else []
        for (line, tx), result in zip(txs, results, strict=True):
            vin = line.payload.get("vin")
            code = result.get("code") or result.get("error", {}).get("code")
            if result["status"] == "committed":
                summary.committed += 1
                if isinstance(vin, str):
                    heads[vin] = tx.id
            elif code == "duplicate_nonce":
                summary.already += 1
                if isinstance(vin, str):
                    heads.pop(vin, None)  # re-read: the earlier import's record is the head
            elif code == "stale_head" and line.tries < 3:
                line.tries += 1
                if isinstance(vin, str):
                    heads.pop(vin, None)
                retry.append(line)
            else:
                error = result.get("error", {})
                summary.refused.append(
                    {
                        "line": line.number,
                        "code": code,
                        "message": error.get("detail")
                        or f"refused in block {result.get('height')}",
                    }
                )
        if on_progress is not None:
            on_progress(len(chunk))
    return summary


@app.command("import")
@run_guarded
def import_cmd(
    file: Annotated[Path, typer.Argument(help='JSON Lines: {"type": ..., "payload": {...}}.')],
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    batch: Annotated[int, typer.Option(help="Records per request.")] = 500,
    passphrase_file: PassOpt = None,
    unencrypted_key: NoEncOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign and submit records from a JSON Lines file; a bad line never stops the rest."""
    if not file.exists():
        raise InvalidInput("file_missing", f"There is no file {file}.")
    if not 1 <= batch <= 1000:
        raise InvalidInput("invalid_batch", "batch is between 1 and 1000.")
    signer = _key(key, passphrase_file, unencrypted_key)
    total = sum(1 for line in file.open("rb") if line.strip())
    with (
        Client(node, signer) as client,
        Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("import", total=total)
        summary = import_file(
            client, signer, file, batch=batch, on_progress=lambda n: progress.advance(task, n)
        )

    def human() -> None:
        console.print(
            f"{summary.lines} lines: {summary.committed} committed, "
            f"{summary.already} already imported, {len(summary.refused)} refused"
        )
        if summary.refused:
            table = Table(title="refused lines")
            for col in ("line", "code", "reason"):
                table.add_column(col)
            for r in summary.refused[:200]:
                table.add_row(str(r["line"]), str(r["code"]), str(r["message"]))
            console.print(table)

    emit(summary.to_dict(), as_json, human)
    if summary.refused:
        raise typer.Exit(1)
