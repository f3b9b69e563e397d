"""The market data every suite runs on, and ledgers built from it without HTTP.

Records are the demo market of :mod:`carledger.vehicle.demo` (every record family,
inspections included, signed by the members the genesis enrols), generated from a
fixed seed. Two kinds of market:

- :func:`market` starts on a fixed date: ledgers built from it directly (block times
  come from the data) are the same on every run. Arrivals per day grow with the
  vehicle count so the stream keeps its shape at any size.
- :func:`live_market` starts a few weeks before today, and :meth:`Market.live_records`
  keeps the first ``LIVE_DAYS`` of its stream: records that a node accepts at
  today's block time (a car is listed only with an inspection younger than 120 days,
  and no record may be dated after its block).

Big ledgers (report, storage and replay suites) are committed block by block through
:meth:`Ledger.apply` on a store opened with ``durable=False``, exactly as
``carledger up --demo`` builds its chain. Generating signed records costs about as
much as committing them, so a child process generates while this one commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from carledger.crypto.keys import SigningKey
from carledger.ledger.block import Proposal, RawTx, format_time, parse_time
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger
from carledger.ledger.tx import build_body, sign
from carledger.node.home import Home
from carledger.vehicle import demo

__all__ = [
    "BENCH_SEED",
    "BENCH_START",
    "Built",
    "Market",
    "build_ledger",
    "live_market",
    "market",
    "per_day",
]

BENCH_SEED = "carledger-bench"
#: Late enough in the year for the demo's youngest cars to have a past, early enough
#: that a million vehicles' records all lie before today's date.
BENCH_START = dt.date(2025, 6, 1)
#: The simulated days over which vehicles arrive (their later life adds ~150 days).
ARRIVAL_DAYS = 300
IMPORT_MEMBER = "bench-import"
IMPORT_ROLES = ("registry",)
#: The days of simulated market a live stream keeps.
LIVE_DAYS = 40
#: Records per block when a ledger is built directly (what a busy node cuts).
BUILD_BLOCK_TXS = 1000
#: ...of records that arrived within this many simulated seconds.
BUILD_BLOCK_SECONDS = 4 * 3600


@dataclass(frozen=True)
class Market:
    """The demo network plus one registry member, the key ``carledger import`` signs with."""

    network: demo.DemoNetwork
    import_key: SigningKey

    def genesis(self, validators: int = 1) -> Genesis:
        """The chain's genesis with the first ``validators`` demo validators."""
        doc = dict(self.network.genesis)
        doc["validators"] = doc["validators"][:validators]
        doc["members"] = [
            *doc["members"],
            {
                "key": self.import_key.public_hex,
                "org": demo.CITY,
                "member": IMPORT_MEMBER,
                "roles": list(IMPORT_ROLES),
            },
        ]
        return Genesis.from_dict(doc)

    def validator_key(self, validator: str) -> SigningKey:
        return self.network.validators[validator]

    def records(self, vehicles: int, seed: int = 1) -> Iterator[demo.DemoTx]:
        """The signed records of ``vehicles`` cars, in an order every handler accepts."""
        rng = random.Random(seed)  # noqa: S311 (reproducible data, not secrets)
        return demo.transactions(self.network, rng, vehicles=vehicles, per_day=per_day(vehicles))

    def live_records(self, vehicles: int, seed: int = 1) -> Iterator[demo.DemoTx]:
        """The first ``LIVE_DAYS`` of the stream of ``vehicles`` arriving in ``LIVE_DAYS / 2``.

        A prefix in time of the stream is itself a valid history.
        """
        rng = random.Random(seed)  # noqa: S311 (reproducible data, not secrets)
        daily = max(30, -(-vehicles * 2 // LIVE_DAYS))
        end = (self.network.start + dt.timedelta(days=LIVE_DAYS)).isoformat()
        for item in demo.transactions(self.network, rng, vehicles=vehicles, per_day=daily):
            if item.at >= end:
                return
            yield item

    def init_home(self, path: Path, validator: str = "node-1", validators: int = 1) -> Home:
        home = Home(path)
        home.initialise(self.genesis(validators), validator, self.validator_key(validator), None)
        return home


def live_market(today: dt.date) -> Market:
    """A market whose stream starts ``LIVE_DAYS + 5`` days before ``today``."""
    start = today - dt.timedelta(days=LIVE_DAYS + 5)
    if (start.month, start.day) < (3, 10):
        # The demo gives its youngest cars a past of at least a year before the start;
        # a start early in the year leaves some no room (see vehicle/demo.py, past()).
        start = dt.date(start.year - 1, 12, 31)
    return market(start)


def per_day(vehicles: int) -> int:
    return max(30, -(-vehicles // ARRIVAL_DAYS))


def market(start: dt.date = BENCH_START) -> Market:
    network = demo.build_network(BENCH_SEED, start)
    import_key = SigningKey(hashlib.sha256(f"{BENCH_SEED}|{IMPORT_MEMBER}".encode()).digest())
    return Market(network, import_key)


# --- building a ledger without HTTP ------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """What :func:`build_ledger` committed."""

    vehicles: int
    records: int
    blocks: int
    raw_bytes: int  # signed bytes: bodies plus signatures
    vins: tuple[str, ...]
    seconds: float


Block = tuple[str, list[tuple[bytes, tuple[bytes, ...]]], list[str]]


def _blocks(vehicles: int, seed: int) -> Iterator[Block]:
    m = market()
    items = m.records(vehicles, seed)
    batch: list[demo.DemoTx] = []
    blocks = demo.plan_blocks(
        _tee(items, batch), max_txs=BUILD_BLOCK_TXS, max_seconds=BUILD_BLOCK_SECONDS
    )
    for when, txs in blocks:
        vins = [v for item in batch[: len(txs)] for v in item.vins]
        del batch[: len(txs)]
        yield when, [(t.body, t.signatures) for t in txs], vins


def _tee(items: Iterator[demo.DemoTx], into: list[demo.DemoTx]) -> Iterator[demo.DemoTx]:
    for item in items:
        into.append(item)
        yield item


def produce(vehicles: int, seed: int, out: BinaryIO) -> None:
    """Child process: generate and sign the records; write them block by block to ``out``.

    Each chunk of blocks is a pickle (of bytes and strings only) preceded by its
    length as 8 bytes big-endian; a zero length ends the stream.
    """
    chunk: list[Block] = []
    for block in _blocks(vehicles, seed):
        chunk.append(block)
        if len(chunk) >= 8:
            _send(out, chunk)
            chunk = []
    if chunk:
        _send(out, chunk)
    out.write((0).to_bytes(8, "big"))
    out.flush()


def _send(out: BinaryIO, chunk: list[Block]) -> None:
    data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(8, "big") + data)


def _from_child(vehicles: int, seed: int) -> Iterator[Block]:
    """Blocks generated by a child Python process (the other core), as they come."""
    code = (
        "import sys; from carledger.bench.data import produce; "
        f"produce({vehicles}, {seed}, sys.stdout.buffer)"
    )
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        try:
            while True:
                head = proc.stdout.read(8)
                size = int.from_bytes(head, "big") if len(head) == 8 else -1
                if size == 0:
                    break
                data = proc.stdout.read(size) if size > 0 else b""
                if size < 0 or len(data) != size:
                    proc.wait(timeout=60)
                    errors.seek(0)
                    raise RuntimeError(
                        "the record generator stopped: "
                        + errors.read()[-2000:].decode(errors="replace")
                    )
                # Our own child's output, bytes and strings only.
                yield from pickle.loads(data)  # noqa: S301
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)


def build_ledger(
    ledger: Ledger,
    vehicles: int,
    *,
    seed: int = 1,
    proposer: str = "node-1",
    parallel: bool = True,
    progress: Any = None,
) -> Built:
    """Commit the records of ``vehicles`` cars to ``ledger`` through :meth:`Ledger.apply`.

    ``progress(records)`` is called after each block. With ``parallel`` a child
    process generates and signs while this process commits.
    """
    import time

    started = time.perf_counter()
    source = _from_child(vehicles, seed) if parallel else _blocks(vehicles, seed)
    records = blocks = raw = 0
    vins: dict[str, None] = {}
    for when, txs, block_vins in source:
        time_ = max(when, ledger.head.time)
        raws = tuple(RawTx(b, s) for b, s in txs)
        # Signed by our own generator a moment ago: building the ledger is set-up for
        # the read suites, and the replay suite is where every signature is checked.
        trusted = {raw.id: True for raw in raws}
        ledger.apply(Proposal(ledger.height + 1, time_, proposer, raws), signatures_ok=trusted)
        records += len(txs)
        blocks += 1
        raw += sum(len(b) + 64 * len(s) for b, s in txs)
        vins.update(dict.fromkeys(block_vins))
        if progress is not None:
            progress(len(txs))
    return Built(vehicles, records, blocks, raw, tuple(vins), time.perf_counter() - started)


def extend_history(ledger: Ledger, m: Market, vin: str, total: int) -> int:
    """Add odometer readings to ``vin`` until it has ``total`` records; return how many.

    Gives the offline verification suite a report of a known length (a car with a
    long life). Readings go up 1,000 km each, one block per reading.
    """
    store: Any = ledger.store
    have = len(store.txs_of_vin(vin, limit=10_000))
    key = m.network.key("repair-1")
    state = ledger.state(f"vehicle/{vin}")
    assert state is not None, "the VIN has records"
    km = max((r["km"] for r in state["odometer"]["readings"]), default=0)
    added = 0
    while have + added < total:
        when = format_time(parse_time(ledger.head.time) + 60_000)
        km += 1000
        current = ledger.state(f"vehicle/{vin}")
        assert current is not None
        body = build_body(
            chain=m.network.chain,
            type="odometer.reading",
            payload={
                "vin": vin,
                "prev": current["head"],
                "km": km,
                "observed_on": when[:10],
                "source": "service",
            },
            signers=[key.public_hex],
            created=when[:19] + "Z",
            nonce=f"bench-long-{added}",
        )
        tx = sign(body, [key])
        block = ledger.apply(
            Proposal(ledger.height + 1, when, "node-1", (RawTx(tx.body, tx.signatures),))
        )
        if block.results[0].code != "ok":
            raise RuntimeError(f"extending {vin}: {block.results[0].code}")
        added += 1
    return added


def _kst_date(at: str) -> str:
    """The Korean date (UTC+9) of a block time ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = dt.datetime.strptime(at[:19], "%Y-%m-%dT%H:%M:%S") + dt.timedelta(hours=9)
    return moment.date().isoformat()


def import_lines(
    m: Market, vehicles: int, seed: int = 1, *, until: str | None = None
) -> list[dict[str, Any]]:
    """JSON Lines for ``carledger import`` signed by the registry: each car's birth,
    registration and its odometer readings from services (about 8 lines a car), from
    the live stream (dated before today). Meant for a node that holds none of these
    VINs yet. With ``until`` (a
    ``YYYY-MM-DD`` Korean date: today), records dated after it are left out, since a
    node refuses a record dated in the future of its block (``date_in_future``).
    """
    lines: list[dict[str, Any]] = []
    for item in m.live_records(vehicles, seed):
        if until is not None and _kst_date(item.at) > until:
            continue
        tx = item.tx
        payload = {k: v for k, v in tx.payload.items() if k != "prev"}
        if tx.type in ("vehicle.register", "registration.record"):
            lines.append({"type": tx.type, "payload": payload})
        elif tx.type == "service.record":
            lines.append(
                {
                    "type": "odometer.reading",
                    "payload": {
                        "vin": payload["vin"],
                        "km": payload["odometer_km"],
                        "observed_on": payload["date"],
                        "source": "registry",
                    },
                }
            )
    return lines
