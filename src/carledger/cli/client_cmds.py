"""Client-side commands: ``submit``, ``history``, ``report``, ``verify-report``, ``import``."""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
#
# How an import is pipelined. The file is read in order; each line with a VIN goes to
# one of ``in_flight`` lanes, chosen by its VIN, so all of a VIN's lines take one lane
# in file order. A lane signs a batch (each record's ``prev`` is the record before it
# of the same VIN), sends it, waits until it is committed, and signs its next batch
# with the heads that commit left, exactly as a one-lane import would. The lanes run
# at once: while one signs, the others' batches are at the node, and two batches in
# flight never share a VIN. A line without a VIN is a barrier: every line before it
# is settled first, and it is settled before any line after it is sent.
# Records of different VINs in different lanes may commit in another order than the
# file's (at most a few batches apart). That matters only where one VIN's record
# depends on another's through shared state (a plate freed by one car and taken by
# another, a part moved between cars, a listing number reused): ``--in-flight 1``
# sends each batch after the one before it, in file order, as imports always did.

DEFAULT_IN_FLIGHT = 4
_LIST_PAGE = 500  # the node's largest page of /v1/vehicles
_MAX_LIST_PAGES = 20
_HEAD_THREADS = 4
_CANONICAL_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


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


def _vin_of(line: _Line) -> str | None:
    vin = line.payload.get("vin")
    return vin if isinstance(vin, str) else None


class _Heads:
    """Where a lane learns a VIN's head the first time it needs it.

    The chain's vehicles are listed once at the start, 500 VINs a request, for as
    many pages as the file's size warrants: a VIN inside the listed range that is not
    listed has no record yet (head None), so importing into a young chain costs a
    request only per VIN that already has records. Those are asked for one VIN a
    request, several at once. A VIN read again (its head moved under the import) is
    always asked for. Another writer adding a VIN's first record after the listing
    is handled as any concurrent writer is: ``stale_head``, then the head is re-read.
    """

    def __init__(self, client: Client, *, pages: int, threads: int = _HEAD_THREADS) -> None:
        self._client = client
        self._listed: set[str] = set()
        self._upto: str | None = None  # every VIN <= this one is known (None: none is)
        self._complete = False
        after = ""
        for _ in range(pages):
            page = client.vehicles(after=after, limit=_LIST_PAGE)
            vins = [str(v["vin"]) for v in page.get("vehicles", [])]
            self._listed.update(vins)
            if page.get("next") is None:
                self._complete = True
                break
            after = str(page["next"])
            self._upto = max(vins) if vins else self._upto
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="import-heads")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _known_absent(self, vin: str) -> bool:
        if vin in self._listed or not _CANONICAL_VIN.fullmatch(vin):
            return False
        return self._complete or (self._upto is not None and vin <= self._upto)

    def _ask(self, vin: str) -> str | None:
        try:
            return self._client.head(vin)
        except InvalidInput:
            # Not a VIN: the node refuses the record itself, with the code it gives.
            return None

    def fetch(self, first: Sequence[str], again: Sequence[str]) -> dict[str, str | None]:
        """The heads of VINs met for the ``first`` time and of VINs to read ``again``."""
        out: dict[str, str | None] = {}
        ask = list(again)
        for vin in first:
            if self._known_absent(vin):
                out[vin] = None
            else:
                ask.append(vin)
        if len(ask) == 1:
            out[ask[0]] = self._ask(ask[0])
        elif ask:
            out.update(zip(ask, self._pool.map(self._ask, ask), strict=True))
        return out


class _Stopped(Exception):
    """The import is being abandoned (another lane failed)."""


class _Batcher:
    """Signs and sends one stream of lines in batches, each batch once the one before
    it is committed: what a whole import was before lanes, now one lane's work."""

    def __init__(
        self,
        client: Client,
        key: SigningKey,
        heads: _Heads,
        *,
        batch: int,
        progress: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        self.client = client
        self.key = key
        self.batch = batch
        self.progress = progress
        self.stop = stop
        self.sources = heads
        self.heads: dict[str, str | None] = {}
        self.seen: set[str] = set()
        self.pending: list[_Line] = []  # lines to retry first, then new lines in order
        self.committed = 0
        self.already = 0
        self.refused: list[dict[str, Any]] = []

    def add(self, lines: Iterable[_Line]) -> None:
        self.pending.extend(lines)
        while len(self.pending) >= self.batch:
            self._send_next()

    def drain(self) -> None:
        while self.pending:
            self._send_next()

    def _send_next(self) -> None:
        if self.stop.is_set():
            raise _Stopped
        chunk = self.pending[: self.batch]
        del self.pending[: self.batch]
        self.pending[:0] = self._send(chunk)
        self.progress(len(chunk))

    def _read_heads(self, chunk: Sequence[_Line]) -> None:
        missing = [v for v in dict.fromkeys(map(_vin_of, chunk)) if v and v not in self.heads]
        if not missing:
            return
        first = [v for v in missing if v not in self.seen]
        again = [v for v in missing if v in self.seen]
        self.heads.update(self.sources.fetch(first, again))
        self.seen.update(first)

    def _send(self, chunk: Sequence[_Line]) -> list[_Line]:
        """Sign, submit and settle ``chunk``; return the lines to try again."""
        self._read_heads(chunk)
        heads = self.heads
        txs: list[tuple[_Line, Transaction]] = []
        chained: dict[str, str | None] = {}  # the chunk's own records, chained in order
        for line in chunk:
            payload = dict(line.payload)
            vin = _vin_of(line)
            if vin is not None:
                payload["prev"] = chained[vin] if vin in chained else heads[vin]
            try:
                _, tx = sign_record(
                    self.client.chain, line.type, payload, [self.key], nonce=line.nonce
                )
            except LedgerError as exc:
                self.refused.append({"line": line.number, "code": exc.code, "message": exc.message})
                continue
            assert tx is not None
            if vin is not None:
                chained[vin] = tx.id
            txs.append((line, tx))
        results = self.client.submit_many([t for _, t in txs], wait=True) if txs else []
        retry: list[_Line] = []
        for (line, tx), result in zip(txs, results, strict=True):
            vin = _vin_of(line)
            code = result.get("code") or result.get("error", {}).get("code")
            if result["status"] == "committed":
                self.committed += 1
                if vin is not None:
                    heads[vin] = tx.id
            elif code == "duplicate_nonce":
                self.already += 1
                if vin is not None:
                    heads.pop(vin, None)  # re-read: the earlier import's record is the head
            elif code == "stale_head" and line.tries < 3:
                line.tries += 1
                if vin is not None:
                    heads.pop(vin, None)
                retry.append(line)
            else:
                error = result.get("error", {})
                self.refused.append(
                    {
                        "line": line.number,
                        "code": code,
                        "message": error.get("detail")
                        or f"refused in block {result.get('height')}",
                    }
                )
        return retry


_Item = list[_Line] | threading.Event | None


class _Lane:
    """A thread feeding one :class:`_Batcher`: lists of lines, an event to set once
    every line received so far is settled (a barrier), or None (the end)."""

    def __init__(self, batcher: _Batcher, failed: threading.Event, name: str) -> None:
        self.batcher = batcher
        self.inbox: queue.Queue[_Item] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self._failed = failed
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self.inbox.get(timeout=0.2)
                except queue.Empty:
                    if self.batcher.stop.is_set():
                        return
                    continue
                if isinstance(item, list):
                    self.batcher.add(item)
                    continue
                self.batcher.drain()
                if item is None:
                    return
                item.set()
        except _Stopped:
            return
        except BaseException as exc:  # handed to the reading thread, which raises it
            self.error = exc
            self._failed.set()


def import_file(
    client: Client,
    key: SigningKey,
    path: Path,
    *,
    batch: int,
    on_progress: Any = None,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> ImportSummary:
    """Import ``path`` (see the comment above): at most ``in_flight`` batches at the node."""
    summary = ImportSummary()
    lock = threading.Lock()

    def progress(n: int) -> None:
        if on_progress is not None:
            with lock:
                on_progress(n)

    _ = client.chain  # asked once, before threads share the client
    pages = min(_MAX_LIST_PAGES, 1 + path.stat().st_size // 1_000_000)
    heads = _Heads(client, pages=pages)
    stop, failed = threading.Event(), threading.Event()

    def batcher() -> _Batcher:
        return _Batcher(client, key, heads, batch=batch, progress=progress, stop=stop)

    lanes = [_Lane(batcher(), failed, f"import-lane-{i}") for i in range(max(1, in_flight))]
    serial = batcher()  # lines without a VIN, sent from this thread between barriers

    def check() -> None:
        if failed.is_set():
            raise next(lane.error for lane in lanes if lane.error is not None)

    def put(lane: _Lane, item: _Item) -> None:
        while True:
            check()
            try:
                lane.inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def settle(buffers: list[list[_Line]]) -> None:
        """Send what is buffered and wait until every lane has settled all it got."""
        marks = []
        for lane, buffer in zip(lanes, buffers, strict=True):
            if buffer:
                put(lane, buffer[:])
                buffer.clear()
            mark = threading.Event()
            put(lane, mark)
            marks.append(mark)
        for mark in marks:
            while not mark.wait(0.2):
                check()

    try:
        for lane in lanes:
            lane.thread.start()
        buffers: list[list[_Line]] = [[] for _ in lanes]
        between = False  # sending lines without a VIN, the lanes idle
        for line in _read_lines(path, summary):
            vin = _vin_of(line)
            if vin is None:
                if not between:
                    settle(buffers)
                    between = True
                serial.add([line])
                continue
            if between:
                serial.drain()
                between = False
            i = zlib.crc32(vin.encode()) % len(lanes)
            buffers[i].append(line)
            if len(buffers[i]) >= batch:
                put(lanes[i], buffers[i])
                buffers[i] = []
        serial.drain()
        for lane, buffer in zip(lanes, buffers, strict=True):
            if buffer:
                put(lane, buffer)
            put(lane, None)
        for lane in lanes:
            while lane.thread.is_alive():
                check()
                lane.thread.join(0.2)
        check()
    except BaseException:
        stop.set()
        raise
    finally:
        heads.close()
    for b in [serial, *(lane.batcher for lane in lanes)]:
        summary.committed += b.committed
        summary.already += b.already
        summary.refused.extend(b.refused)
    summary.refused.sort(key=lambda r: int(r["line"]))
    return summary


@app.command("import")
@run_guarded
def import_cmd(
    file: Annotated[Path, typer.Argument(help='JSON Lines: {"type": ..., "payload": {...}}.')],
    key: KeyOpt,
    node: NodeOpt = DEFAULT_NODE,
    batch: Annotated[int, typer.Option(help="Records per request.")] = 500,
    in_flight: Annotated[
        int,
        typer.Option(
            help="Batches at the node at once, never two with the same VIN; records of "
            "different cars may then commit out of file order (1: each batch after the one "
            "before, in file order, for files where one car's record depends on another's, "
            "such as a plate freed by one car and taken by the next)."
        ),
    ] = DEFAULT_IN_FLIGHT,
    passphrase_file: PassOpt = None,
    unencrypted_key: NoEncOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign and submit records from a JSON Lines file; a bad line never stops the rest."""
    if not file.exists():
        raise InvalidInput("file_missing", f"There is no file {file}.")
    if not 1 <= batch <= 1000:
        raise InvalidInput("invalid_batch", "batch is between 1 and 1000.")
    if not 1 <= in_flight <= 32:
        raise InvalidInput("invalid_in_flight", "in-flight is between 1 and 32.")
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
            client,
            signer,
            file,
            batch=batch,
            in_flight=in_flight,
            on_progress=lambda n: progress.advance(task, n),
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
