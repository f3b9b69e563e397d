"""The stateless half of a submission's checks, optionally in worker processes.

Parsing a ``POST /v1/transactions`` request, decoding each transaction (canonical
bytes, envelope), checking its chain and payload schema and verifying its
signatures need no state, and cost about as much as executing the record. Run in
the node's process they hold the GIL the block thread needs: under load a node
committed about half of what its block thread does alone (docs/performance.md).

:class:`CheckPool` runs them in worker processes (``carledger up --check-workers``).
A worker sends back, per item, the error that refused it or the signed bytes with
the outcome of the schema and signature checks; the node rebuilds each transaction
from its bytes (:meth:`Transaction.from_checked`, a plain parse) and runs the checks
that need the ledger (duplicates, nonces, membership) as before, in the same order,
so every code and message is the one the in-process path gives. A worker that dies
is replaced; the request it held is checked in the node's process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from carledger.encoding import canonical
from carledger.errors import InvalidInput, LedgerError
from carledger.ledger.contracts import ContractRegistry
from carledger.ledger.executor import Executor, verify_parallel
from carledger.ledger.genesis import Genesis
from carledger.ledger.tx import Transaction

__all__ = [
    "MAX_BATCH",
    "CheckPool",
    "Prechecked",
    "Submission",
    "decode_request",
    "precheck",
    "static_errors",
]

log = logging.getLogger(__name__)

#: Transactions in one request, at most.
MAX_BATCH = 1000
#: How often a worker looks whether its node still runs.
_WATCH_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Prechecked:
    """The stateless checks of one decoded transaction: why its chain or payload schema
    refused it (None: they passed), and whether all its signatures verify."""

    error: LedgerError | None
    signatures_ok: bool


@dataclass(slots=True)
class Submission:
    """A decoded request: one transaction or an array (``single``), and per item the
    transaction or the error that kept it from being one. ``checked`` holds, for each
    :class:`Transaction` among ``items`` in order, its :class:`Prechecked`, or is None
    when those checks are still to run (the node's process does them)."""

    single: bool
    items: list[Transaction | LedgerError]
    checked: list[Prechecked] | None = None

    @property
    def transactions(self) -> list[Transaction]:
        return [t for t in self.items if isinstance(t, Transaction)]


def decode_request(raw: bytes) -> Submission:
    """Parse a submission body: one wire transaction or a non-empty array of at most
    :data:`MAX_BATCH`. A request that is neither raises; an item that does not decode
    is kept as its error, except in a single-transaction request, where it raises."""
    doc = canonical.decode(raw, max_depth=4)
    single = isinstance(doc, dict)
    items = [doc] if single else doc
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            "invalid_request", "Send one transaction object or a non-empty array of them."
        )
    if len(items) > MAX_BATCH:
        raise InvalidInput("batch_too_large", f"At most {MAX_BATCH} transactions a request.")
    txs: list[Transaction | LedgerError] = []
    for item in items:
        try:
            txs.append(Transaction.from_wire(item))
        except LedgerError as exc:
            if single:
                raise
            txs.append(exc)
    return Submission(single, txs)


def static_errors(txs: Sequence[Transaction], executor: Executor) -> list[LedgerError | None]:
    """Per transaction, why its chain or payload schema refuses it (None: they pass)."""
    errors: list[LedgerError | None] = []
    for tx in txs:
        try:
            executor._check_static(tx)
        except LedgerError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


def precheck(txs: Sequence[Transaction], executor: Executor) -> list[Prechecked]:
    """The chain, schema and signature checks of ``txs``, for a node that runs the rest
    (:meth:`carledger.node.service.Node.check_many`). Signatures are verified only
    where the schema passed, on two threads."""
    statics = static_errors(txs, executor)
    passed = [t for t, e in zip(txs, statics, strict=True) if e is None]
    verified = iter(verify_parallel(passed))
    return [Prechecked(e, next(verified) if e is None else False) for e in statics]


# -- the worker side -----------------------------------------------------------------

#: A worker's executor (chain id and contracts), set once by :func:`_start_worker`.
_worker: dict[str, Executor] = {}

#: What a worker sends back per item: the error that kept it from being a transaction,
#: or (body, signatures, id, schema error, signatures ok).
_Item = LedgerError | tuple[bytes, tuple[bytes, ...], str, LedgerError | None, bool]


def _start_worker(
    node_pid: int, genesis: Genesis, registry_for: Callable[[Genesis], ContractRegistry]
) -> None:
    # The node's pid comes from the node: one killed while this worker started is
    # noticed at once (this worker's parent is then already another process).
    threading.Thread(target=_exit_with_node, args=(node_pid,), daemon=True).start()
    # Ctrl-C reaches the whole process group: the node stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker["executor"] = Executor(genesis.chain_id, registry_for(genesis))


def _exit_with_node(node_pid: int) -> None:
    """End this worker once the node that started it is gone (killed: no shutdown came).

    A pool worker otherwise waits forever on its task queue, whose other end it holds
    itself, keeping the node's output pipes open."""
    while os.getppid() == node_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(0)


def _check_in_worker(raw: bytes) -> LedgerError | tuple[bool, list[_Item]]:
    executor = _worker["executor"]
    try:
        submission = decode_request(raw)
    except LedgerError as exc:
        return exc
    checked = iter(precheck(submission.transactions, executor))
    out: list[_Item] = []
    for item in submission.items:
        if isinstance(item, LedgerError):
            out.append(item)
        else:
            c = next(checked)
            out.append((item.body, item.signatures, item.id, c.error, c.signatures_ok))
    return submission.single, out


def _ready() -> bool:
    return "executor" in _worker


# -- the node side -------------------------------------------------------------------


class CheckPool:
    """Worker processes for :func:`decode_request` and :func:`precheck`.

    ``registry_for`` must build, from the genesis, the contracts the node's ledger
    runs (:func:`carledger.chain.registry_for` for every chain ``carledger up``
    serves); it is imported by name in each worker. A worker ends by itself within a
    second of its node's death.
    """

    def __init__(
        self,
        genesis: Genesis,
        registry_for: Callable[[Genesis], ContractRegistry],
        workers: int,
    ) -> None:
        if workers < 1:
            raise ValueError("a check pool has at least one worker")
        self.genesis = genesis
        self.registry_for = registry_for
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self.replaced = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        # Spawned, not forked: the node has threads. A spawned worker is the node's own
        # child, so it can tell when the node is gone (a fork server's are not).
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(os.getpid(), self.genesis, self.registry_for),
        )

    def start(self) -> None:
        """Start the workers (in the background: the first requests may wait for them)."""
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
            pool = self._pool

        def warm() -> None:
            try:
                for future in [pool.submit(_ready) for _ in range(self.workers)]:
                    future.result()
            except Exception:  # a pool stopped meanwhile; check() copes
                log.debug("check pool warm-up ended early", exc_info=True)

        threading.Thread(target=warm, name="check-pool-start", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for a node's resident memory, with its own)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return [int(pid) for pid in processes]

    def check(self, raw: bytes, executor: Executor) -> Submission:
        """:func:`decode_request` and :func:`precheck` of ``raw`` in a worker.

        Raises what :func:`decode_request` raises. When the pool is stopped (before or
        during the call) or broken (a worker was killed), the request is checked here
        with ``executor``; a broken pool is replaced for the next one."""
        with self._lock:
            pool = self._pool
        if pool is None:
            return self._here(raw, executor)
        try:
            result = pool.submit(_check_in_worker, raw).result()
        except BrokenProcessPool:  # before RuntimeError, its base class
            log.warning("a submission check worker died; replacing the pool")
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
                    self.replaced += 1
            pool.shutdown(wait=False, cancel_futures=True)
            return self._here(raw, executor)
        except (CancelledError, RuntimeError):
            # Stopped meanwhile (the node is shutting down): submit() refuses new work
            # with RuntimeError, shutdown() cancels what waits.
            with self._lock:
                if self._pool is pool:
                    raise
            return self._here(raw, executor)
        if isinstance(result, LedgerError):
            raise result
        single, sent = result
        items: list[Transaction | LedgerError] = []
        checked: list[Prechecked] = []
        for item in sent:
            if isinstance(item, LedgerError):
                items.append(item)
                continue
            body, signatures, tx_id, error, signatures_ok = item
            items.append(Transaction.from_checked(body, signatures, tx_id))
            checked.append(Prechecked(error, signatures_ok))
        return Submission(single, items, checked)

    @staticmethod
    def _here(raw: bytes, executor: Executor) -> Submission:
        submission = decode_request(raw)
        submission.checked = precheck(submission.transactions, executor)
        return submission
