"""A running node: submission checks, the mempool, solo ordering and commit events.

Submission (:meth:`Node.submit`) runs the checks a client should hear about at once
(envelope and schema, chain, replay, signatures, membership) and queues what passes.
In solo ordering a block cutter thread takes up to ``block_max_txs`` transactions,
or whatever is pending after ``block_interval_ms``, and commits them as the next
block; waiters learn the height, log index and validity code. :meth:`Node.stop`
cuts the transactions still pending before it returns, so every acknowledged
transaction is on disk after a clean shutdown.

The wall clock enters here, and only here: it sets block times (never earlier than
the previous block's).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from carledger.errors import Conflict, LedgerError, VerificationFailure
from carledger.ledger.block import Proposal, RawTx, format_time
from carledger.ledger.executor import verify_parallel
from carledger.ledger.ledger import CommittedBlock, Ledger
from carledger.ledger.tx import Transaction
from carledger.node.events import EventHub
from carledger.node.mempool import Mempool
from carledger.node.prechecks import (
    CheckPool,
    Prechecked,
    Submission,
    decode_request,
    static_errors,
)
from carledger.vehicle.indexes import listing_key, market_key, plate_key, vehicle_key

__all__ = ["Node", "NodeSettings", "Ordering", "Outcome", "SoloOrdering"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    block_max_txs: int = 1000
    block_interval_ms: int = 50
    mempool_capacity: int = 50_000
    proposer: str = "solo"
    #: Set as the process's GIL switch interval when the node starts (None: leave it).
    gil_switch_interval_s: float | None = 0.0005


@dataclass(slots=True)
class Outcome:
    """What happened to one submitted transaction."""

    id: str
    status: str  # pending | committed | refused | rejected
    error: LedgerError | None = None
    height: int | None = None
    seq: int | None = None
    code: str | None = None
    refusal: tuple[int, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.height is not None:
            out.update(height=self.height, index=self.seq, code=self.code)
        if self.error is not None:
            out["error"] = self.error.to_problem()
        if self.refusal is not None:
            out["error"] = {
                "type": f"urn:carledger:error:{self.code}",
                "title": "refused in block",
                "status": self.refusal[0],
                "code": self.code,
                "detail": self.refusal[1]
                or f"The transaction was committed at height {self.height} but refused.",
                "context": {"id": self.id, "height": self.height, "index": self.seq},
            }
        return out


def vehicle_reads(tx: Transaction) -> tuple[str, ...]:
    """State entries a vehicle record likely reads (a read hint for blocks): its VIN's,
    the plate a gate names, the market and the listing it names, the VINs of a
    multi-vehicle record. They are fetched with the block's other reads in one query;
    a key not read costs a row, a key missed one query (about 40 us) later."""
    payload = tx.payload
    keys: list[str] = []
    vin = payload.get("vin")
    if isinstance(vin, str):
        keys.append(vehicle_key(vin))
    plate = payload.get("plate")
    if isinstance(plate, str):
        keys.append(plate_key(plate))
    market = payload.get("market")
    if isinstance(market, str):
        keys.append(market_key(market))
        listing = payload.get("listing_no")
        if isinstance(listing, str):
            keys.append(listing_key(market, listing))
    vehicles = payload.get("vehicles")
    if isinstance(vehicles, list):
        keys.extend(
            vehicle_key(v["vin"])
            for v in vehicles
            if isinstance(v, dict) and isinstance(v.get("vin"), str)
        )
    return tuple(keys)


class Ordering(Protocol):
    """How accepted transactions become blocks (solo here; etcd in a consortium)."""

    def start(self, node: Node) -> None: ...

    def enqueue(self, txs: Sequence[Transaction]) -> list[LedgerError | None]:
        """Hand checked transactions to ordering; per transaction, None or why refused."""
        ...

    def pending(self) -> int: ...

    def stop(self) -> None:
        """Stop; a solo orderer first commits everything it acknowledged."""
        ...


class _Batch:
    """The waiters of one :meth:`Node.submit` call: one event for all of them.

    ``left`` counts the waiters neither fired nor forgotten (guarded by the node's
    lock); the event is set when it reaches zero. One event a request instead of one
    per transaction (a ``threading.Event`` is a condition and two locks: 4 % of the
    node's GIL time under load, docs/performance.md).
    """

    __slots__ = ("event", "left")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.left = 0


class _Waiter:
    __slots__ = ("batch", "result")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch
        self.result: tuple[int, int, str, int, str] | None = None

    def fire(self, result: tuple[int, int, str, int, str]) -> None:
        """Record the outcome (caller holds the node's lock)."""
        self.drop()
        self.result = result

    def drop(self) -> None:
        """Count this one done, once, whether an outcome came or none will (caller holds
        the node's lock)."""
        if self.result is None:
            self.batch.left -= 1
            if self.batch.left == 0:
                self.batch.event.set()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.committed = Counter(
            "carledger_committed_transactions",
            "Transactions committed, by validity code",
            ["code"],
            registry=self.registry,
        )
        self.height = Gauge("carledger_block_height", "Height of the head", registry=self.registry)
        self.mempool = Gauge(
            "carledger_mempool_size", "Transactions waiting", registry=self.registry
        )
        self.commit_latency = Histogram(
            "carledger_commit_latency_seconds",
            "From accepted submission to committed block",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.block_seconds = Histogram(
            "carledger_block_commit_seconds",
            "Time to execute and commit one block",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.rejected = Counter(
            "carledger_rejected_submissions",
            "Submissions refused before the mempool, by code",
            ["code"],
            registry=self.registry,
        )


class Node:
    """One node over a :class:`Ledger`, with solo ordering."""

    def __init__(
        self,
        ledger: Ledger,
        settings: NodeSettings | None = None,
        *,
        ordering: Ordering | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        checks: CheckPool | None = None,
    ) -> None:
        self.ledger = ledger
        #: Worker processes for the stateless submission checks (None: in this process).
        self.checks = checks
        self.settings = settings or NodeSettings()
        self.clock_ms = clock_ms
        self.ordering: Ordering = ordering or SoloOrdering(self.settings)
        self.events = EventHub()
        self.metrics = Metrics()
        self.metrics.height.set(ledger.height)
        self._waiters: dict[str, list[_Waiter]] = {}
        self._accepted_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.problem: str | None = None
        #: True once a validator quorum certified a checkpoint that differs from this
        #: node's own (consortium ordering): its state must not be presented as verified.
        self.diverged = False
        if ledger.executor.read_hint is None:
            ledger.executor.read_hint = vehicle_reads
        ledger.on_commit(self._committed)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self.settings.gil_switch_interval_s is not None:
            # The block thread makes a SQLite call per record, each releasing the GIL;
            # with request threads busy decoding, it waits up to a whole switch
            # interval (5 ms by default) to run again. 0.5 ms lets commits keep pace
            # (docs/performance.md: about +20% committed records/s, lower latency).
            sys.setswitchinterval(self.settings.gil_switch_interval_s)
        if self.checks is not None:
            self.checks.start()
        self.ordering.start(self)

    def stop(self) -> None:
        """Stop ordering; in solo mode every acknowledged transaction is committed first."""
        self.ordering.stop()
        if self.checks is not None:
            self.checks.stop()

    def block_time(self) -> str:
        """The time for the next block: the clock, but never before the head's."""
        return max(format_time(self.clock_ms()), self.ledger.head.time)

    def commit(
        self,
        proposal: Proposal,
        *,
        signatures_ok: dict[str, bool] | None = None,
        decoded: Sequence[Transaction] = (),
    ) -> CommittedBlock:
        """Execute and commit an ordered block (waiters, metrics and events follow)."""
        started = time.perf_counter()
        block = self.ledger.apply(proposal, signatures_ok=signatures_ok, decoded=decoded)
        if not self.diverged:
            self.problem = None
        self.metrics.block_seconds.observe(time.perf_counter() - started)
        return block

    # -- submission -----------------------------------------------------------------

    def check(self, tx: Transaction) -> None:
        """Every check a submission must pass before it is queued; raises the reason."""
        error = self.check_many([tx])[0]
        if error is not None:
            raise error

    def decode_submission(self, raw: bytes) -> Submission:
        """A request body as :func:`decode_request` reads it, with the stateless checks
        already run when the node has check workers (:class:`CheckPool`)."""
        if self.checks is None:
            return decode_request(raw)
        return self.checks.check(raw, self.ledger.executor)

    def check_many(
        self, txs: Sequence[Transaction], prechecked: Sequence[Prechecked] | None = None
    ) -> list[LedgerError | None]:
        """:meth:`check` for many transactions at once: per transaction, None or why not.

        The checks and their order are :meth:`check`'s (envelope and schema,
        duplicate, nonce, signatures, membership); the store is asked once for all
        ids and nonces, and signatures are verified on two threads. ``prechecked``
        carries the schema and signature checks of ``txs`` when they ran already
        (:func:`precheck`, in a check worker).
        """
        ledger = self.ledger
        store = ledger.store
        if prechecked is None:
            errors = static_errors(txs, ledger.executor)
        else:
            errors = [p.error for p in prechecked]
        todo = [tx for tx, e in zip(txs, errors, strict=True) if e is None]
        known = store.committed_ids([tx.id for tx in todo]) if todo else set()
        used = store.used_nonces([(tx.signers[0], tx.nonce) for tx in todo]) if todo else set()
        if prechecked is None:
            # Here, only what may be queued has its signatures verified.
            fresh = [t for t in todo if t.id not in known and (t.signers[0], t.nonce) not in used]
            signatures = dict(zip(map(id, fresh), verify_parallel(fresh), strict=True))
        else:
            signatures = {id(tx): p.signatures_ok for tx, p in zip(txs, prechecked, strict=True)}
        block_time = self.block_time() if todo else ""
        for i, tx in enumerate(txs):
            if errors[i] is not None:
                continue
            try:
                if tx.id in known:
                    stored = store.tx_by_id(tx.id)
                    raise Conflict(
                        "duplicate_transaction",
                        "This transaction was already committed.",
                        height=stored.height if stored is not None else None,
                        index=stored.seq if stored is not None else None,
                    )
                if (tx.signers[0], tx.nonce) in used:
                    raise Conflict(
                        "duplicate_nonce",
                        "The first signer already used this nonce: the record exists already.",
                    )
                if not signatures[id(tx)]:
                    bad = tx.bad_signers()
                    raise VerificationFailure(
                        "bad_signature",
                        f"The signature of {bad[0][:16]}... does not verify over this body.",
                        signer=bad[0],
                    )
                ledger.precheck(tx, block_time, cached=True, static=False)
            except LedgerError as exc:
                errors[i] = exc
        return errors

    def submit(
        self,
        txs: Sequence[Transaction],
        *,
        wait: bool = False,
        timeout: float = 30.0,
        prechecked: Sequence[Prechecked] | None = None,
    ) -> list[Outcome]:
        """Check and queue ``txs``; with ``wait``, return once each is committed (or timeout).
        ``prechecked``: as for :meth:`check_many`."""
        outcomes: list[Outcome] = []
        accepted: list[Transaction] = []
        for tx, exc in zip(txs, self.check_many(txs, prechecked), strict=True):
            if exc is not None:
                self.metrics.rejected.labels(exc.code).inc()
                outcomes.append(Outcome(tx.id, "rejected", exc))
                continue
            outcomes.append(Outcome(tx.id, "pending"))
            accepted.append(tx)
        waiters: dict[str, _Waiter] = {}
        batch = _Batch()
        now = time.perf_counter()
        with self._lock:
            for tx in accepted:
                self._accepted_at[tx.id] = now
                if wait:
                    waiter = _Waiter(batch)
                    self._waiters.setdefault(tx.id, []).append(waiter)
                    waiters[tx.id] = waiter
                    batch.left += 1
        refusals = iter(self.ordering.enqueue(accepted))
        self.metrics.mempool.set(self.ordering.pending())
        for outcome in outcomes:
            if outcome.status != "pending":
                continue
            error = next(refusals)
            if error is not None:
                outcome.status, outcome.error = "rejected", error
                self.metrics.rejected.labels(error.code).inc()
                self._forget(outcome.id, waiters.pop(outcome.id, None))
        if waiters:
            with self._lock:
                done = batch.left <= 0
            if not done:
                batch.event.wait(timeout)
        results: list[tuple[Outcome, tuple[int, int, str, int, str] | None]] = []
        with self._lock:  # the block thread may be filling results in right now
            for outcome in outcomes:
                mine = waiters.get(outcome.id)
                if mine is not None:
                    results.append((outcome, mine.result))
                    self._forget_locked(outcome.id, mine)
        for outcome, result in results:
            if result:
                outcome.height, outcome.seq, outcome.code, status, message = result
                if outcome.code != "ok":
                    outcome.refusal = (status, message)
                outcome.status = "committed" if outcome.code == "ok" else "refused"
        return outcomes

    def _forget(self, tx_id: str, waiter: _Waiter | None) -> None:
        with self._lock:
            self._forget_locked(tx_id, waiter)

    def _forget_locked(self, tx_id: str, waiter: _Waiter | None) -> None:
        if waiter is not None and waiter in self._waiters.get(tx_id, []):
            waiter.drop()
            self._waiters[tx_id].remove(waiter)
            if not self._waiters[tx_id]:
                del self._waiters[tx_id]

    def _committed(self, block: CommittedBlock) -> None:
        now = time.perf_counter()
        codes: dict[str, int] = {}
        latencies: dict[float, int] = {}
        with self._lock:
            for i, result in enumerate(block.results):
                seq = block.first_seq + i
                started = self._accepted_at.pop(result.id, None)
                if started is not None:
                    # One submission's records share their acceptance time.
                    latencies[started] = latencies.get(started, 0) + 1
                for waiter in self._waiters.get(result.id, ()):
                    waiter.fire(
                        (block.header.height, seq, result.code, result.status, result.message)
                    )
                codes[result.code] = codes.get(result.code, 0) + 1
            # Counted once per code, not per record (each call takes a lock); still
            # under the node's lock, so a waiter that wakes up sees them counted.
            for code, count in codes.items():
                self.metrics.committed.labels(code).inc(count)
            for started, count in latencies.items():
                for _ in range(count):
                    self.metrics.commit_latency.observe(now - started)
        self.metrics.height.set(block.header.height)
        self.metrics.mempool.set(self.ordering.pending())
        self.events.publish(block)

    def status(self) -> dict[str, Any]:
        head = self.ledger.head
        return {
            "status": "degraded" if self.problem or self.diverged else "ok",
            "problem": self.problem,
            "diverged": self.diverged,
            "chain": self.ledger.chain_id,
            "height": head.height,
            "block_time": head.time,
            "mempool": self.ordering.pending(),
        }


class SoloOrdering:
    """One node orders alone: a bounded mempool and a block cutter thread.

    A block is cut at ``block_max_txs`` pending transactions, or with whatever is
    pending ``block_interval_ms`` after the first one arrived.
    """

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.mempool = Mempool(settings.mempool_capacity)
        self._node: Node | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, node: Node) -> None:
        self._node = node
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="block-cutter", daemon=True)
            self._thread.start()

    def enqueue(self, txs: Sequence[Transaction]) -> list[LedgerError | None]:
        return self.mempool.add_many(txs)

    def pending(self) -> int:
        return len(self.mempool)

    def stop(self) -> None:
        self._stop.set()
        self.mempool.wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        while len(self.mempool):
            self.cut()

    def _run(self) -> None:
        interval = self.settings.block_interval_ms / 1000
        while not self._stop.is_set():
            pending = self.mempool.wait(self.settings.block_max_txs, interval)
            if pending == 0 or self._stop.is_set():
                continue
            if pending < self.settings.block_max_txs:
                # Give a burst a moment to fill the block instead of cutting tiny ones.
                self.mempool.wait(self.settings.block_max_txs, interval)
            try:
                self.cut()
            except LedgerError as exc:
                assert self._node is not None
                self._node.problem = exc.diagnostics()
                log.error("block commit failed: %s", exc.diagnostics())
                self._stop.wait(1.0)

    def cut(self) -> CommittedBlock | None:
        """Commit up to ``block_max_txs`` pending transactions as the next block."""
        node = self._node
        assert node is not None, "start() first"
        batch = self.mempool.take(self.settings.block_max_txs)
        if not batch:
            return None
        proposal = Proposal(
            node.ledger.height + 1,
            node.block_time(),
            self.settings.proposer,
            tuple(RawTx(t.body, t.signatures) for t in batch),
        )
        try:
            # Signatures were verified when each transaction was accepted.
            return node.commit(proposal, signatures_ok={t.id: True for t in batch}, decoded=batch)
        except LedgerError:
            # Nothing was written; the transactions go back to the front of the queue.
            self.mempool.requeue(batch)
            raise
