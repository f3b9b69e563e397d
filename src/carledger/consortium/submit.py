"""Submissions: checked transactions written to etcd as ``pending/`` batches.

:meth:`Submitter.submit` blocks the request thread until etcd (Raft) committed the
batch holding its transactions, so an acknowledged transaction survives any
minority of crashes. One flusher thread writes everything that queued up while its
previous write was in flight as one etcd transaction (several batches of at most
:data:`~carledger.consortium.layout.BATCH_BYTES` each): under load, the many small
submissions of a node's clients are coalesced into few etcd round trips, and an
idle node's lone submission goes at once.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from carledger.errors import LedgerError, OrderingError

from . import etcd as E
from .layout import BATCH_BYTES, BLOCK_BYTES, MAX_TXN_OPS, ChainKeys, encode_txs, pack
from .metrics import OrderingMetrics

__all__ = ["Submission", "Submitter"]

log = logging.getLogger(__name__)


class Submission:
    """The wire transactions of one request and, once ``done``, each one's refusal or None."""

    __slots__ = ("done", "results", "wires")

    def __init__(self, wires: list[dict[str, Any]]) -> None:
        self.wires = wires
        self.results: list[LedgerError | None] = [None] * len(wires)
        self.done = threading.Event()

    def refuse(self, error: LedgerError) -> None:
        self.results = [error] * len(self.wires)
        self.done.set()


_Op = tuple[dict[str, Any], list[tuple[Submission, int]]]


class Submitter:
    """Queues submissions and writes them, coalesced, as ``pending/<owner>/<seq>`` batches."""

    def __init__(
        self,
        client: E.EtcdClient,
        keys: ChainKeys,
        owner: str,
        *,
        stop: threading.Event,
        submit_timeout: float,
        metrics: OrderingMetrics,
    ) -> None:
        self.client = client
        self.keys = keys
        self.owner = owner
        self._stop = stop
        self._timeout = submit_timeout
        self._metrics = metrics
        self._queue: list[Submission] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()

    def submit(self, wires: list[dict[str, Any]]) -> Submission:
        """Queue ``wires``; the returned submission's ``done`` is set once etcd answered."""
        sub = Submission(wires)
        with self._cond:
            self._queue.append(sub)
            self._cond.notify()
        return sub

    def stop(self) -> None:
        with self._cond:
            for sub in self._queue:
                sub.refuse(OrderingError("node_stopping", "This node is shutting down."))
            self._queue.clear()
            self._cond.notify_all()

    def run(self) -> None:
        """The flusher thread."""
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(1.0)
                subs, self._queue = self._queue, []
            if not subs:
                continue
            try:
                self.flush(subs)
            except Exception:
                log.exception("submission flush failed unexpectedly")
                for sub in subs:
                    sub.refuse(
                        OrderingError("ordering_unavailable", "The node could not queue this.")
                    )

    def flush(self, subs: list[Submission]) -> None:
        """Write the submissions as pending batches, a few batches per etcd request."""
        items = [(s, i, w) for s in subs for i, w in enumerate(s.wires)]
        groups = pack((w for _, _, w in items), BATCH_BYTES)
        ops: list[_Op] = []
        pos = 0
        for group in groups:
            members = [(s, i) for s, i, _ in items[pos : pos + len(group)]]
            pos += len(group)
            seq = f"{time.time_ns():020d}-{next(self._seq):06d}"
            key = self.keys.pending_key(self.owner, seq)
            ops.append((E.op_put(key, encode_txs(group)), members))
        chunk: list[_Op] = []
        size = 0
        for op in ops:
            n = len(op[0]["request_put"]["value"])
            if chunk and (size + n > BLOCK_BYTES or len(chunk) >= MAX_TXN_OPS - 8):
                self._put_chunk(chunk)
                chunk, size = [], 0
            chunk.append(op)
            size += n
        if chunk:
            self._put_chunk(chunk)
        for sub in subs:
            sub.done.set()

    def _put_chunk(self, chunk: list[_Op]) -> None:
        deadline = time.monotonic() + self._timeout
        error: LedgerError | None = None
        while True:
            try:
                # No compares: the keys are fresh, so repeating a put that may have
                # succeeded writes the same batch under the same key.
                self.client.txn([], [op for op, _ in chunk])
                error = None
                break
            except E.EtcdRequestError as exc:
                error = exc
                break
            except LedgerError as exc:
                self._metrics.etcd_errors.inc()
                error = exc
                if time.monotonic() > deadline or self._stop.is_set():
                    break
                self._stop.wait(0.2)
        if error is not None:
            refusal = OrderingError(
                "ordering_unavailable",
                f"The ordering service (etcd) is unavailable: {error.message} "
                "Sending the record again is safe: a duplicate is refused.",
                retry_after=2,
            )
            for _, members in chunk:
                for sub, i in members:
                    sub.results[i] = refusal
