"""The leader's view of the ``pending/`` batches, kept current by an etcd watch.

The leader used to poll ``pending/`` with a range that returned (and decoded) every
pending batch's value on each attempt to cut a block: a cost that grew with the
backlog, and a polling delay for batches written through other nodes. Instead, while
this node leads, one thread reads ``pending/`` once (a consistent snapshot, paged)
and then follows a watch from the next revision: every batch is fetched and decoded
once, and a new batch wakes the block cutter at once.

The view is a cache, never an authority: the append transaction compares every
chosen batch's ``mod_revision`` (and the head's), so a batch that another leader
consumed, or one the view has not seen change, makes the append fail, after which
the view is read again from scratch. A batch consumed by this leader leaves the view
at once; a ``PUT`` event older than that append (a watch lagging behind) is ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from carledger.errors import LedgerError
from carledger.ledger.block import RawTx

from . import etcd as E
from .layout import ChainKeys, decode_txs, raw_from_wire
from .metrics import OrderingMetrics

__all__ = ["PendingBatch", "PendingView", "wire_bound"]

log = logging.getLogger(__name__)

#: Keys read per range request when the view is (re)built.
_PAGE = 128


def wire_bound(raw: RawTx) -> int:
    """An upper bound of ``raw``'s encoded wire size in a block (as ``layout.wire_size``)."""
    return 4 * ((len(raw.body) + 2) // 3) + 131 * len(raw.signatures) + 30


@dataclass(frozen=True, slots=True)
class PendingBatch:
    key: bytes
    create_revision: int
    mod_revision: int
    txs: tuple[RawTx, ...]
    size: int  # upper bound of the transactions' encoded size
    arrived: float  # time.monotonic() when this view first saw it

    @classmethod
    def from_kv(cls, kv: E.KV, arrived: float) -> PendingBatch:
        """A batch's transactions; a malformed batch or transaction (never written by a
        node) is treated as empty / dropped, so it is deleted with the next block instead
        of blocking the chain."""
        txs: list[RawTx] = []
        try:
            wires = decode_txs(kv.value)
        except LedgerError:
            log.error("dropping malformed pending batch %r", kv.key)
            wires = []
        for wire in wires:
            try:
                txs.append(raw_from_wire(wire))
            except LedgerError:
                continue
        return cls(
            kv.key,
            kv.create_revision,
            kv.mod_revision,
            tuple(txs),
            sum(wire_bound(t) for t in txs),
            arrived,
        )


class PendingView:
    """Pending batches by key while this node leads; see the module docstring."""

    def __init__(
        self,
        client: E.EtcdClient,
        keys: ChainKeys,
        *,
        stop: threading.Event,
        leading: threading.Event,
        metrics: OrderingMetrics,
    ) -> None:
        self.client = client
        self.keys = keys
        self._stop = stop
        self._leading = leading
        self._metrics = metrics
        self._cond = threading.Condition()
        self._batches: dict[bytes, PendingBatch] = {}
        #: key -> revision at which it was consumed or deleted (older PUTs are stale)
        self._consumed: OrderedDict[bytes, int] = OrderedDict()
        self._ready = False
        self._loaded_rev = 0

    # -- for the block cutter ----------------------------------------------------------

    def batches(self) -> list[PendingBatch]:
        """The pending batches, oldest (by create revision) first; [] while not ready."""
        with self._cond:
            if not self._ready:
                return []
            return sorted(self._batches.values(), key=lambda b: b.create_revision)

    def wait(self, timeout: float) -> None:
        """Until the view changes, :meth:`poke` is called, or ``timeout`` seconds."""
        with self._cond:
            self._cond.wait(timeout)

    def poke(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def consumed(self, keys: list[bytes], revision: int) -> None:
        """The append at ``revision`` deleted these batches."""
        with self._cond:
            for key in keys:
                self._batches.pop(key, None)
                self._gone(key, revision)

    def _gone(self, key: bytes, revision: int) -> None:
        # Under the lock. Keys are never reused, except by a retried put (a newer revision).
        self._consumed[key] = max(revision, self._consumed.get(key, 0))
        while len(self._consumed) > 100_000:
            self._consumed.popitem(last=False)

    def reload(self) -> None:
        """Read ``pending/`` again (after a failed append: the view may be wrong)."""
        self._load()

    # -- the watcher thread ---------------------------------------------------------------

    def run(self) -> None:
        while not self._stop.is_set():
            if not self._leading.wait(0.5):
                self._drop()
                continue
            try:
                self._follow()
            except LedgerError as exc:
                if self._stop.is_set():
                    return
                self._metrics.etcd_errors.inc()
                log.warning("pending watch: %s", exc.diagnostics())
                self._drop()
                self._stop.wait(0.3)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("pending watch failed unexpectedly")
                self._drop()
                self._stop.wait(1.0)

    def _drop(self) -> None:
        with self._cond:
            self._ready = False
            self._batches.clear()
            self._loaded_rev = 0

    def _load(self) -> int:
        """Read every pending batch at one revision; the revision read.

        Watch events at or before that revision are already reflected, and ignored.
        """
        start, end = self.keys.pending, E.prefix_end(self.keys.pending)
        revision = 0
        found: dict[bytes, PendingBatch] = {}
        now = time.monotonic()
        while True:
            page = self.client.range(start, end, limit=_PAGE, revision=revision)
            revision = revision or page.revision
            for kv in page.kvs:
                found[kv.key] = PendingBatch.from_kv(kv, now)
            if not page.more or not page.kvs:
                break
            start = page.kvs[-1].key + b"\x00"
        with self._cond:
            # Merge, as the watch may already have applied events after ``revision``.
            merged = {k: b for k, b in self._batches.items() if b.mod_revision > revision}
            for key, batch in found.items():
                mine = merged.get(key)
                if (mine is None or mine.mod_revision < batch.mod_revision) and (
                    batch.mod_revision > self._consumed.get(key, 0)
                ):
                    merged[key] = batch
            self._batches = merged
            self._loaded_rev = max(self._loaded_rev, revision)
            self._ready = True
            self._cond.notify_all()
        return revision

    def _follow(self) -> None:
        rev = self._load() + 1
        while self._leading.is_set() and not self._stop.is_set():
            try:
                for events in self.client.watch(
                    self.keys.pending, E.prefix_end(self.keys.pending), rev, idle_timeout=3.0
                ):
                    now = time.monotonic()
                    decoded = [
                        (ev, PendingBatch.from_kv(ev.kv, now) if ev.kind == "PUT" else None)
                        for ev in events
                    ]
                    with self._cond:
                        for ev, batch in decoded:
                            kv = ev.kv
                            rev = max(rev, kv.mod_revision + 1)
                            if kv.mod_revision <= self._loaded_rev:
                                continue  # the last full read already has it
                            if batch is None:
                                self._batches.pop(kv.key, None)
                                self._gone(kv.key, kv.mod_revision)
                            elif kv.mod_revision > self._consumed.get(kv.key, 0):
                                self._batches[kv.key] = batch
                        self._cond.notify_all()
                    if not self._leading.is_set() or self._stop.is_set():
                        break
            except E.WatchCompacted as exc:
                log.info("pending watch: history compacted at %d; re-reading", exc.compact_revision)
                rev = self._load() + 1
