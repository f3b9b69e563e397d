"""The leader: cutting blocks from pending batches and appending them to etcd.

Block ``N`` is appended with one etcd transaction that succeeds only if ``head``
still has the revision the leader last saw, key ``log/b/N`` is absent, the leader's
candidate key is still the one it created, and every batch it consumes still has the
revision the leader read; the same transaction deletes those batches. Safety never
depends on leadership being exclusive: two would-be leaders cannot both append
``N``, and a batch is consumed exactly once.

When to cut (ADR 0011): the batches come from :class:`~.pending.PendingView` (a
watch, no polling). A block is cut

- at once when a full block is pending (``block_max_txs`` records or
  :data:`~.layout.BLOCK_BYTES`), as long as fewer than :data:`MAX_AHEAD` appended
  blocks wait for this node to execute them;
- otherwise once the oldest pending batch is ``block_interval_ms / 2`` old (so a
  burst through several nodes shares a block), provided this node has executed all
  but at most one appended block: while the nodes are busy executing, submissions
  accumulate into larger blocks instead of a queue of small ones (fewer blocks,
  checkpoint signatures and etcd writes per record), and the next block is ready
  when the current one is done;
- in any case once the oldest batch has waited :data:`MAX_HOLD_S`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from carledger.errors import LedgerError, OrderingError
from carledger.ledger.block import Proposal, RawTx, format_time
from carledger.ledger.ledger import genesis_block_time

from . import etcd as E
from .layout import BLOCK_BYTES, MAX_TXN_OPS, encode_proposal
from .pending import PendingBatch, PendingView

if TYPE_CHECKING:
    from .ordering import EtcdOrdering

__all__ = ["MAX_AHEAD", "MAX_HOLD_S", "Leader", "LeaderView"]

log = logging.getLogger(__name__)

#: Appended blocks this node may not have executed yet when a full block is cut.
MAX_AHEAD = 4
#: The longest a pending batch waits for the node to catch up before it is cut anyway.
MAX_HOLD_S = 1.0
#: Room left in a block for the JSON around the transactions.
_BLOCK_SLACK = 256


@dataclass(slots=True)
class LeaderView:
    height: int
    time: str
    head_rev: int  # mod revision of the head key (0: absent)
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)


class Leader:
    def __init__(self, o: EtcdOrdering, pending: PendingView) -> None:
        self.o = o
        self.pending = pending

    def run(self) -> None:
        o = self.o
        leading = o.session.leading
        view: LeaderView | None = None
        while not o.stopping.is_set():
            if not leading.wait(0.5):
                view = None
                continue
            try:
                if view is None:
                    view = self._read_head()
                if not self.cut(view):
                    self.pending.wait(o.settings.block_interval_ms / 1000)
            except LedgerError as exc:
                o.metrics.etcd_errors.inc()
                log.warning("leader: %s", exc.diagnostics())
                view = None
                o.stopping.wait(0.2)
                try:
                    self.pending.reload()
                except LedgerError as again:
                    log.warning("leader: %s", again.diagnostics())
            except Exception:
                log.exception("leader failed unexpectedly")
                view = None
                o.stopping.wait(1.0)

    def _read_head(self) -> LeaderView:
        o = self.o
        kv = o.client.get(o.keys.head)
        ledger = o.node.ledger
        if kv is None and ledger.height == 0:
            return LeaderView(0, genesis_block_time(ledger.genesis), 0)
        if kv is None:
            # etcd lost the chain (recreated empty) but nodes have blocks. Only a leader
            # at least as far as every live node may carry the head over, or it would
            # append a second, different block at a height another node already has.
            live = o.client.range(o.keys.nodes, E.prefix_end(o.keys.nodes)).kvs
            highest = max((int(json.loads(n.value)["height"]) for n in live), default=0)
            if highest > ledger.height:
                raise OrderingError(
                    "etcd_head_lost",
                    f"etcd has no chain head and a live node is at height {highest}, beyond "
                    f"this leader's {ledger.height}; waiting for it to lead or for catch-up.",
                )
            head = ledger.head
            doc = {"height": head.height, "time": head.time}
            result = o.client.txn(
                [E.compare(o.keys.head, "CREATE", 0)],
                [E.op_put(o.keys.head, json.dumps(doc).encode())],
            )
            if not result.succeeded:
                raise OrderingError("append_conflict", "The chain head appeared meanwhile.")
            log.warning("etcd had no chain head; carried it over at height %d", head.height)
            return LeaderView(head.height, head.time, result.revision)
        doc = json.loads(kv.value)
        return LeaderView(int(doc["height"]), str(doc["time"]), kv.mod_revision)

    def _choose(self, batches: list[PendingBatch]) -> tuple[list[PendingBatch], int, bool]:
        """The oldest batches that fit one block; (chosen, records, whether it is full)."""
        max_txs = self.o.settings.block_max_txs
        chosen: list[PendingBatch] = []
        count = size = 0
        for batch in batches:
            if chosen and (
                size + batch.size > BLOCK_BYTES - _BLOCK_SLACK
                or count + len(batch.txs) > max_txs
                or len(chosen) >= MAX_TXN_OPS - 8
            ):
                return chosen, count, True
            chosen.append(batch)
            count += len(batch.txs)
            size += batch.size
        return chosen, count, count >= max_txs

    def _ready(self, view: LeaderView) -> list[PendingBatch]:
        """Wait for the moment to cut (see the module docstring); the batches to cut."""
        o = self.o
        linger = o.settings.block_interval_ms / 2000
        while not o.stopping.is_set() and o.session.leading.is_set():
            batches = self.pending.batches()
            if not batches:
                return []
            chosen, _, full = self._choose(batches)
            ahead = view.height - o.node.ledger.height
            oldest = min(b.arrived for b in chosen)
            waited = time.monotonic() - oldest
            if full and ahead < MAX_AHEAD:
                return chosen
            if waited >= MAX_HOLD_S:
                return chosen
            if ahead <= 1 and waited >= linger:
                return chosen
            pause = (linger - waited) if ahead <= 1 else 0.05
            self.pending.wait(max(0.001, min(pause, MAX_HOLD_S - waited)))
        return []

    def cut(self, view: LeaderView) -> bool:
        """Append one block from pending batches; False when there was nothing to cut."""
        o = self.o
        chosen = self._ready(view)
        if not chosen:
            return False
        txs: list[RawTx] = []
        seen: set[str] = set()
        candidates = [raw for batch in chosen for raw in batch.txs]
        committed = o.node.ledger.store.committed_ids(
            [raw.id for raw in candidates if raw.id not in view.recent]
        )
        for raw in candidates:
            # Drop copies of a transaction submitted through several nodes.
            if raw.id in seen or raw.id in view.recent or raw.id in committed:
                continue
            seen.add(raw.id)
            txs.append(raw)
        height = view.height + 1
        when = max(format_time(o.node.clock_ms()), view.time)
        deletes = [E.op_delete(b.key) for b in chosen]
        lease = o.session.lease
        assert lease is not None
        assert o.validator is not None
        fence = [
            E.compare(o.keys.head, "MOD", view.head_rev),
            E.compare(o.keys.block(height), "CREATE", 0),
            E.compare(o.keys.candidate(lease), "CREATE", o.session.candidate_rev),
            # Each batch exactly as read: consumed once, by this append, or not at all.
            *(E.compare(b.key, "MOD", b.mod_revision) for b in chosen),
        ]
        if not txs:
            result = o.client.txn(fence, deletes)
            if not result.succeeded:
                raise OrderingError("append_conflict", "The chain head moved; re-reading it.")
            self.pending.consumed([b.key for b in chosen], result.revision)
            return True
        proposal = Proposal(height, when, o.validator, tuple(txs))
        head_doc = json.dumps({"height": height, "time": when}).encode()
        result = o.client.txn(
            fence,
            [
                E.op_put(o.keys.block(height), encode_proposal(proposal)),
                E.op_put(o.keys.head, head_doc),
                *deletes,
            ],
        )
        if not result.succeeded:
            raise OrderingError(
                "append_conflict", f"Block {height} was not appended: the head moved."
            )
        self.pending.consumed([b.key for b in chosen], result.revision)
        view.height, view.time, view.head_rev = height, when, result.revision
        for raw in txs:
            view.recent[raw.id] = None
        while len(view.recent) > 100_000:
            view.recent.popitem(last=False)
        o.applier.offer(proposal)  # the applier need not read it back
        return True
