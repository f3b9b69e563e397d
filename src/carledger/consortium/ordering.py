"""Consortium ordering over etcd: :class:`EtcdOrdering` plugs into :class:`Node`.

Roles, all in one node process (threads):

- **submissions** (any node): :meth:`EtcdOrdering.enqueue` hands checked transactions
  to a flusher that writes them, grouped, as ``pending/`` batches; a submission is
  acknowledged only once etcd (Raft) has committed its batch, so an acknowledged
  transaction survives any minority of crashes.
- **session**: a lease (TTL ``lease_ttl`` seconds) kept alive; under it this node's
  ``nodes/<id>`` entry (its stored height and API URL, for compaction and catch-up)
  and, for validators, an ``election/`` candidate key. The candidate with the lowest
  create revision leads (etcd's election recipe). When the leader dies its lease
  expires and the next candidate leads.
- **leader**: cuts blocks from the oldest pending batches and appends block ``N``
  with one etcd transaction that succeeds only if ``head`` still has the revision the
  leader last saw, key ``log/b/N`` is absent, and the leader's candidate key is still
  the one it created; the same transaction deletes the batches it consumed. Safety
  therefore never depends on leadership being exclusive: two would-be leaders
  cannot both append ``N``, and a batch is consumed exactly once.
- **apply** (every node): a watch on ``log/`` feeds blocks and checkpoint signatures
  to one applier thread, which executes blocks in height order (verifying every
  signature itself: other nodes' submissions were not checked here), publishes this
  validator's checkpoint signature, and judges certification
  (:mod:`carledger.consortium.certify`). The watch is only a wake-up and a cache:
  the applier reads missing blocks by range, so a lost, compacted or stalled watch
  costs latency, never correctness. Blocks etcd no longer has come from peers,
  checked against their certificates (:mod:`carledger.consortium.catchup`).
- **compaction** (leader): block and signature keys are deleted, and etcd's history
  compacted, only below ``min(stored height of every live node) - retain_blocks``.

Divergence: when a checkpoint other than this node's own is certified, the node sets
``node.diverged``, reports it (log, ``carledger_consortium_diverged`` metric,
``/healthz`` degraded), stops applying and leading, and refuses submissions.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from carledger.errors import LedgerError, NotFound, OrderingError, StorageError
from carledger.ledger.block import CheckpointSignature, Proposal, RawTx, format_time
from carledger.ledger.ledger import CommittedBlock, genesis_block_time
from carledger.ledger.tx import Transaction

from . import etcd as E
from .catchup import FetchedBlock, PeerFetcher, check_fetched
from .certify import Certifier, ValidatorHistory, Verdict
from .faults import apply_test_fault, published_checkpoints
from .layout import (
    BATCH_BYTES,
    BLOCK_BYTES,
    MAX_TXN_OPS,
    ChainKeys,
    SignedCheckpoint,
    decode_proposal,
    decode_txs,
    encode_proposal,
    encode_txs,
    pack,
    raw_from_wire,
    wire_size,
)

if TYPE_CHECKING:
    from carledger.node.service import Node

__all__ = ["EtcdOrdering", "EtcdSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    endpoints: tuple[str, ...]
    prefix: str | None = None
    #: This node's API as peers reach it (for their catch-up).
    advertise_url: str = ""
    #: More peer APIs to catch up from, besides the live nodes registered in etcd.
    peers: tuple[str, ...] = ()
    lease_ttl: int = 2
    retain_blocks: int = 1000
    compact_interval: float = 5.0
    block_max_txs: int = 1000
    block_interval_ms: int = 50
    request_timeout: float = 5.0
    #: How long a submission waits for etcd before it is refused with 503.
    submit_timeout: float = 10.0
    tls: E.EtcdTLS | None = None


class _Metrics:
    def __init__(self, registry: Any) -> None:
        self.leader = Gauge(
            "carledger_ordering_leader", "1 while this node cuts blocks", registry=registry
        )
        self.diverged = Gauge(
            "carledger_consortium_diverged",
            "1 when a certified checkpoint differs from this node's own (alarm)",
            registry=registry,
        )
        self.certified = Gauge(
            "carledger_certified_height",
            "Height of the latest checkpoint certified by a validator quorum",
            registry=registry,
        )
        self.dissenters = Gauge(
            "carledger_divergent_validator",
            "1 for a validator that signed a checkpoint other than the certified one",
            ["validator"],
            registry=registry,
        )
        self.failovers = Gauge(
            "carledger_etcd_failovers", "Switches to another etcd member", registry=registry
        )
        self.caught_up = Counter(
            "carledger_catchup_blocks",
            "Blocks fetched from peers and checked against their certificates",
            registry=registry,
        )
        self.etcd_errors = Counter(
            "carledger_etcd_errors", "etcd requests that failed on every member", registry=registry
        )
        self.equivocating = Gauge(
            "carledger_equivocating_validator",
            "1 for a validator seen signing two different checkpoints at one height (alarm)",
            ["validator"],
            registry=registry,
        )
        self.refused_blocks = Counter(
            "carledger_catchup_refused_blocks",
            "Blocks a peer served for catch-up that failed their certificate check, by peer",
            ["peer"],
            registry=registry,
        )


class _Submission:
    __slots__ = ("done", "results", "wires")

    def __init__(self, wires: list[dict[str, Any]]) -> None:
        self.wires = wires
        self.results: list[LedgerError | None] = [None] * len(wires)
        self.done = threading.Event()


@dataclass(slots=True)
class _LeaderView:
    height: int
    time: str
    head_rev: int  # mod revision of the head key (0: absent)
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)


class EtcdOrdering:
    """The :class:`carledger.node.service.Ordering` of a consortium node."""

    def __init__(self, settings: EtcdSettings, *, client: E.EtcdClient | None = None) -> None:
        self.settings = settings
        self.client = client or E.EtcdClient(
            settings.endpoints, timeout=settings.request_timeout, tls=settings.tls
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._node: Node | None = None
        self.keys: ChainKeys
        self.validator: str | None = None
        self.is_leader = False
        self.diverged = False
        self.certified_height = 0
        self._lease: int | None = None
        self._candidate_rev = 0
        self._leading = threading.Event()
        self._wake_leader = threading.Event()
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cache: dict[int, Proposal] = {}
        self._submissions: list[_Submission] = []
        self._sub_cond = threading.Condition()
        self._acked: dict[str, None] = {}
        self._acked_lock = threading.Lock()
        self._checked: OrderedDict[str, None] = OrderedDict()
        self._unpublished: set[int] = set()
        self._sig_buffer: list[tuple[int, CheckpointSignature]] = []
        self._dissenters: set[str] = set()
        self._equivocators_reported: set[str] = set()
        self._history = ValidatorHistory()
        self._certifier = Certifier(self._history.at)
        self._seq = itertools.count()
        self._pruned = 0
        self._last_compact = 0.0
        self._verify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sigverify")
        self._fetcher = PeerFetcher(
            verify=settings.tls.verify() if settings.tls is not None else True
        )
        self.metrics: _Metrics

    # -- the Ordering protocol ------------------------------------------------------------

    def start(self, node: Node) -> None:
        self._node = node
        ledger = node.ledger
        apply_test_fault(ledger.registry)  # test-only; a no-op unless CARLEDGER_TEST_FAULT
        self.keys = ChainKeys.for_chain(ledger.chain_id, self.settings.prefix)
        self.validator = ledger.identity.validator if ledger.identity else None
        self.metrics = _Metrics(node.metrics.registry)
        self._history.record(ledger.height, ledger.validator_keys())
        self._certifier.own(ledger.head.checkpoint())
        # The head's signature may not have reached etcd before a crash.
        self._unpublished.add(ledger.height)
        ledger.on_commit(self._committed)
        for name, target in (
            ("etcd-session", self._session_loop),
            ("etcd-submit", self._submit_loop),
            ("etcd-watch", self._watch_loop),
            ("etcd-apply", self._apply_loop),
            ("etcd-leader", self._leader_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def enqueue(self, txs: Sequence[Transaction]) -> list[LedgerError | None]:
        if not txs:
            return []
        if self.diverged:
            err = OrderingError(
                "node_diverged",
                "This node's state differs from the certified chain; submit through another node.",
            )
            return [err] * len(txs)
        if self._stop.is_set():
            return [OrderingError("node_stopping", "This node is shutting down.")] * len(txs)
        with self._acked_lock:
            for tx in txs:
                self._checked[tx.id] = None
            while len(self._checked) > 200_000:
                self._checked.popitem(last=False)
        sub = _Submission([tx.to_wire() for tx in txs])
        with self._sub_cond:
            self._submissions.append(sub)
            self._sub_cond.notify()
        if not sub.done.wait(self.settings.submit_timeout):
            return [
                OrderingError(
                    "ordering_unavailable",
                    "The ordering service (etcd) did not confirm in time; the record may or may "
                    "not be ordered. Sending it again is safe: a duplicate is refused.",
                    retry_after=2,
                )
            ] * len(txs)
        with self._acked_lock:
            for tx, result in zip(txs, sub.results, strict=True):
                if result is None:
                    self._acked[tx.id] = None
        return list(sub.results)

    def pending(self) -> int:
        """Transactions this node acknowledged that it has not yet seen committed."""
        return len(self._acked)

    def stop(self) -> None:
        self._stop.set()
        self._wake_leader.set()
        with self._sub_cond:
            for sub in self._submissions:
                sub.results = [OrderingError("node_stopping", "This node is shutting down.")] * len(
                    sub.wires
                )
                sub.done.set()
            self._submissions.clear()
            self._sub_cond.notify_all()
        self._inbox.put(("stop", None))
        lease = self._lease
        if lease is not None:
            with contextlib.suppress(LedgerError):
                self.client.lease_revoke(lease)
        self.client.close()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()
        self._fetcher.close()
        self._verify_pool.shutdown(wait=False)

    # -- status ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "ordering": "etcd",
            "leader": self.is_leader,
            "etcd": self.client.endpoint,
            "certified_height": self.certified_height,
            "diverged": self.diverged,
        }

    @property
    def node(self) -> Node:
        assert self._node is not None, "start() first"
        return self._node

    # -- session: lease, election, registration, compaction ----------------------------------

    def _session_loop(self) -> None:
        ttl = self.settings.lease_ttl
        registered: tuple[int, str] | None = None
        while not self._stop.is_set():
            try:
                if self.diverged:
                    self._resign()
                    self._stop.wait(1.0)
                    continue
                if self._lease is None:
                    self._lease, _ = self.client.lease_grant(ttl)
                    self._candidate_rev = 0
                    registered = None
                    if self.validator is not None:
                        self._campaign()
                elif self.client.lease_keepalive(self._lease) <= 0:
                    log.warning("etcd lease %x expired; campaigning again", self._lease)
                    self._set_leader(False)
                    self._lease = None
                    continue
                head = self.node.ledger.height
                url = self.settings.advertise_url
                if registered != (head, url):
                    doc = {"validator": self.validator, "height": head, "url": url}
                    self.client.put(
                        self.keys.node(self._node_name()),
                        json.dumps(doc).encode(),
                        lease=self._lease or 0,
                    )
                    registered = (head, url)
                if self.validator is not None:
                    self._check_leadership()
                if self.is_leader and time.monotonic() - self._last_compact > (
                    self.settings.compact_interval
                ):
                    self._last_compact = time.monotonic()
                    self._compact()
                self.metrics.failovers.set(self.client.failovers)
            except LedgerError as exc:
                self.metrics.etcd_errors.inc()
                log.warning("etcd session: %s", exc.diagnostics())
                if self.is_leader:
                    # Without a confirmed lease this node may no longer lead; appends
                    # are fenced anyway, this just stops trying.
                    self._set_leader(False)
            except Exception:
                # A bug must not silently end the session thread: log it and go on.
                log.exception("etcd session failed unexpectedly")
                self._set_leader(False)
            self._stop.wait(max(0.2, ttl / 4))

    def _node_name(self) -> str:
        return self.validator or f"observer-{os.getpid()}"

    def _campaign(self) -> None:
        assert self._lease is not None
        key = self.keys.candidate(self._lease)
        value = json.dumps({"validator": self.validator, "url": self.settings.advertise_url})
        result = self.client.txn(
            [E.compare(key, "CREATE", 0)],
            [E.op_put(key, value.encode(), self._lease)],
            [E.op_range(key)],
        )
        if result.succeeded:
            self._candidate_rev = result.revision
        else:
            kv = result.responses[0]["response_range"]["kvs"][0]
            self._candidate_rev = int(kv["create_revision"])

    def _check_leadership(self) -> None:
        if self._lease is None or not self._candidate_rev:
            self._set_leader(False)
            return
        first = self.client.range(
            self.keys.election,
            E.prefix_end(self.keys.election),
            limit=1,
            sort_target="CREATE",
        ).kvs
        mine = bool(first) and first[0].key == self.keys.candidate(self._lease)
        self._set_leader(mine)

    def _set_leader(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        self.is_leader = leading
        if leading:
            log.info("%s leads ordering from now on", self.validator)
            self._leading.set()
            self._wake_leader.set()
        else:
            log.info("%s no longer leads ordering", self.validator)
            self._leading.clear()
        with contextlib.suppress(AttributeError):
            self.metrics.leader.set(1 if leading else 0)

    def _resign(self) -> None:
        self._set_leader(False)
        if self._lease is not None:
            lease, self._lease = self._lease, None
            with contextlib.suppress(LedgerError):
                self.client.lease_revoke(lease)

    def _compact(self) -> None:
        """Delete blocks and signatures every live node has stored, then compact history."""
        retain = self.settings.retain_blocks
        live = self.client.range(self.keys.nodes, E.prefix_end(self.keys.nodes)).kvs
        heights = []
        for kv in live:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                heights.append(int(json.loads(kv.value)["height"]))
        if not heights:
            return
        floor = min(heights) - retain
        if floor <= self._pruned:
            return
        rev, deleted = self.client.delete_range(self.keys.block(0), self.keys.block(floor + 1))
        rev2, _ = self.client.delete_range(self.keys.sigs, self.keys.sigs_at(floor + 1))
        self.client.compact(max(rev, rev2))
        self._pruned = floor
        log.info("etcd: removed %d blocks up to height %d and compacted", deleted, floor)

    # -- submissions ------------------------------------------------------------------------

    def _submit_loop(self) -> None:
        while not self._stop.is_set():
            with self._sub_cond:
                while not self._submissions and not self._stop.is_set():
                    self._sub_cond.wait(1.0)
                subs, self._submissions = self._submissions, []
            if not subs:
                continue
            try:
                self._flush(subs)
            except Exception:
                log.exception("submission flush failed unexpectedly")
                for sub in subs:
                    sub.results = [
                        OrderingError("ordering_unavailable", "The node could not queue this.")
                    ] * len(sub.wires)
                    sub.done.set()

    def _flush(self, subs: list[_Submission]) -> None:
        """Write the submissions as pending batches, a few batches per etcd request."""
        owner = self._node_name()
        items = [(s, i, w) for s in subs for i, w in enumerate(s.wires)]
        groups = pack((w for _, _, w in items), BATCH_BYTES)
        ops: list[tuple[dict[str, Any], list[tuple[_Submission, int]]]] = []
        pos = 0
        for group in groups:
            members = [(s, i) for s, i, _ in items[pos : pos + len(group)]]
            pos += len(group)
            seq = f"{time.time_ns():020d}-{next(self._seq):06d}"
            ops.append((E.op_put(self.keys.pending_key(owner, seq), encode_txs(group)), members))
        chunk: list[tuple[dict[str, Any], list[tuple[_Submission, int]]]] = []
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

    def _put_chunk(self, chunk: list[tuple[dict[str, Any], list[tuple[_Submission, int]]]]) -> None:
        deadline = time.monotonic() + self.settings.submit_timeout
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
                self.metrics.etcd_errors.inc()
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
        elif self.is_leader:
            self._wake_leader.set()

    # -- leader: cutting blocks -----------------------------------------------------------

    def _leader_loop(self) -> None:
        view: _LeaderView | None = None
        while not self._stop.is_set():
            if not self._leading.wait(0.5):
                view = None
                continue
            try:
                if view is None:
                    view = self._read_head()
                if not self._cut(view):
                    self._wake_leader.wait(self.settings.block_interval_ms / 1000)
                    self._wake_leader.clear()
            except LedgerError as exc:
                self.metrics.etcd_errors.inc()
                log.warning("leader: %s", exc.diagnostics())
                view = None
                self._stop.wait(0.2)
            except Exception:
                log.exception("leader failed unexpectedly")
                view = None
                self._stop.wait(1.0)

    def _read_head(self) -> _LeaderView:
        kv = self.client.get(self.keys.head)
        ledger = self.node.ledger
        if kv is None and ledger.height == 0:
            return _LeaderView(0, genesis_block_time(ledger.genesis), 0)
        if kv is None:
            # etcd lost the chain (recreated empty) but nodes have blocks. Only a leader
            # at least as far as every live node may carry the head over, or it would
            # append a second, different block at a height another node already has.
            live = self.client.range(self.keys.nodes, E.prefix_end(self.keys.nodes)).kvs
            highest = max((int(json.loads(n.value)["height"]) for n in live), default=0)
            if highest > ledger.height:
                raise OrderingError(
                    "etcd_head_lost",
                    f"etcd has no chain head and a live node is at height {highest}, beyond "
                    f"this leader's {ledger.height}; waiting for it to lead or for catch-up.",
                )
            head = ledger.head
            doc = {"height": head.height, "time": head.time}
            result = self.client.txn(
                [E.compare(self.keys.head, "CREATE", 0)],
                [E.op_put(self.keys.head, json.dumps(doc).encode())],
            )
            if not result.succeeded:
                raise OrderingError("append_conflict", "The chain head appeared meanwhile.")
            log.warning("etcd had no chain head; carried it over at height %d", head.height)
            return _LeaderView(head.height, head.time, result.revision)
        doc = json.loads(kv.value)
        return _LeaderView(int(doc["height"]), str(doc["time"]), kv.mod_revision)

    def _pending_batches(self) -> list[E.KV]:
        return self.client.range(
            self.keys.pending, E.prefix_end(self.keys.pending), limit=64, sort_target="CREATE"
        ).kvs

    @staticmethod
    def _batch_txs(kv: E.KV) -> list[dict[str, Any]]:
        """A pending batch's transactions; a malformed batch (never written by a node) is
        treated as empty, so it is deleted with the next block instead of blocking the chain."""
        try:
            return decode_txs(kv.value)
        except LedgerError:
            log.error("dropping malformed pending batch %r", kv.key)
            return []

    def _cut(self, view: _LeaderView) -> bool:
        """Append one block from pending batches; False when there was nothing to cut."""
        batches = self._pending_batches()
        if not batches:
            return False
        total = sum(len(self._batch_txs(b)) for b in batches)
        if total < self.settings.block_max_txs and len(batches) < 64:
            # Give a burst a moment to fill the block instead of cutting tiny ones.
            self._stop.wait(self.settings.block_interval_ms / 2000)
            batches = self._pending_batches()
        chosen: list[E.KV] = []
        txs: list[RawTx] = []
        size = 0
        seen: set[str] = set()
        store = self.node.ledger.store
        for kv in batches:
            wires = self._batch_txs(kv)
            n = sum(wire_size(w) for w in wires)
            if chosen and (
                size + n > BLOCK_BYTES
                or len(txs) + len(wires) > self.settings.block_max_txs
                or len(chosen) >= MAX_TXN_OPS - 8
            ):
                break
            chosen.append(kv)
            size += n
            for wire in wires:
                try:
                    raw = raw_from_wire(wire)
                except LedgerError:
                    continue  # never written by a node; drop it
                # Drop copies of a transaction submitted through several nodes.
                if raw.id in seen or raw.id in view.recent or store.has_tx(raw.id):
                    continue
                seen.add(raw.id)
                txs.append(raw)
        height = view.height + 1
        when = max(format_time(self.node.clock_ms()), view.time)
        deletes = [E.op_delete(kv.key) for kv in chosen]
        assert self._lease is not None
        assert self.validator is not None
        fence = [
            E.compare(self.keys.head, "MOD", view.head_rev),
            E.compare(self.keys.block(height), "CREATE", 0),
            E.compare(self.keys.candidate(self._lease), "CREATE", self._candidate_rev),
        ]
        if not txs:
            result = self.client.txn(fence, deletes)
            if not result.succeeded:
                raise OrderingError("append_conflict", "The chain head moved; re-reading it.")
            return True
        proposal = Proposal(height, when, self.validator, tuple(txs))
        head_doc = json.dumps({"height": height, "time": when}).encode()
        result = self.client.txn(
            fence,
            [
                E.op_put(self.keys.block(height), encode_proposal(proposal)),
                E.op_put(self.keys.head, head_doc),
                *deletes,
            ],
        )
        if not result.succeeded:
            raise OrderingError(
                "append_conflict", f"Block {height} was not appended: the head moved."
            )
        view.height, view.time, view.head_rev = height, when, result.revision
        for raw in txs:
            view.recent[raw.id] = None
        while len(view.recent) > 100_000:
            view.recent.popitem(last=False)
        self._inbox.put(("proposal", proposal))  # the applier need not read it back
        return True

    # -- watching ---------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        rev = 0
        while not self._stop.is_set():
            try:
                if rev == 0:
                    rev = self.client.range(self.keys.head, count_only=True).revision + 1
                    self._inbox.put(("resync", None))
                for events in self.client.watch(
                    self.keys.log, E.prefix_end(self.keys.log), rev, idle_timeout=3.0
                ):
                    for ev in events:
                        rev = max(rev, ev.kv.mod_revision + 1)
                        if ev.kind == "PUT":
                            self._inbox.put(("kv", ev.kv))
                    if self._stop.is_set():
                        return
            except E.WatchCompacted as exc:
                log.info("watch: history compacted at %d; re-reading", exc.compact_revision)
                rev = 0
            except LedgerError as exc:
                if self._stop.is_set():
                    return
                self.metrics.etcd_errors.inc()
                log.warning("watch: %s", exc.diagnostics())
                self._stop.wait(0.3)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("watch failed unexpectedly")
                rev = 0
                self._stop.wait(1.0)

    # -- applying ---------------------------------------------------------------------------

    def _apply_loop(self) -> None:
        last_sync = 0.0
        while not self._stop.is_set():
            try:
                kind, item = self._inbox.get(timeout=1.0)
            except queue.Empty:
                kind, item = "tick", None
            if kind == "stop":
                return
            try:
                if kind == "kv":
                    self._on_log_kv(item)
                elif kind == "proposal" and item.height > self.node.ledger.height:
                    self._cache[item.height] = item
                    self._apply_cached()
                if kind in ("resync", "tick") or time.monotonic() - last_sync > 1.0:
                    last_sync = time.monotonic()
                    self._sync(with_sigs=True)
                self._drain_sigs()
                self._publish_sigs()
            except LedgerError as exc:
                self.metrics.etcd_errors.inc()
                log.warning("apply: %s", exc.diagnostics())
                if not isinstance(exc, E.EtcdUnavailable):
                    self.node.problem = exc.diagnostics()
                self._stop.wait(0.5)
            except Exception as exc:
                log.exception("apply failed unexpectedly")
                self.node.problem = f"block application failed: {exc!r}"
                self._stop.wait(1.0)

    def _on_log_kv(self, kv: E.KV) -> None:
        kind, height, validator = self.keys.parse_log_key(kv.key)
        ledger = self.node.ledger
        if kind == "b":
            if height <= ledger.height:
                return
            self._cache[height] = decode_proposal(kv.value)
            self._apply_cached()
        else:
            del validator
            self._on_signature(SignedCheckpoint.decode(kv.value))

    def _apply_cached(self) -> None:
        ledger = self.node.ledger
        while not self.diverged and (ledger.height + 1) in self._cache:
            proposal = self._cache.pop(ledger.height + 1)
            self._apply(proposal)
        for h in [h for h in self._cache if h <= ledger.height]:
            del self._cache[h]

    def _sync(self, *, with_sigs: bool) -> None:
        """Bring the ledger up to etcd's head: from etcd, or from peers below what it keeps."""
        ledger = self.node.ledger
        self._apply_cached()
        head = self.client.get(self.keys.head)
        target = int(json.loads(head.value)["height"]) if head is not None else 0
        while not self.diverged and not self._stop.is_set() and ledger.height < target:
            nxt = ledger.height + 1
            kvs = self.client.range(self.keys.block(nxt), self.keys.block(nxt + 8)).kvs
            if kvs and self.keys.parse_log_key(kvs[0].key)[1] == nxt:
                for kv in kvs:
                    proposal = decode_proposal(kv.value)
                    if proposal.height != ledger.height + 1 or self.diverged:
                        break
                    self._apply(proposal)
                continue
            first = self.client.range(
                self.keys.blocks, E.prefix_end(self.keys.blocks), limit=1, keys_only=True
            ).kvs
            upto = self.keys.parse_log_key(first[0].key)[1] - 1 if first else target
            if upto < nxt:
                continue  # etcd has it after all (a concurrent append); read again
            self._catch_up(upto)
        if with_sigs and self.certified_height < ledger.height:
            self._read_sigs(max(self.certified_height + 1, ledger.height - 64))

    def _read_sigs(self, from_height: int) -> None:
        kvs = self.client.range(
            self.keys.sigs_at(from_height), E.prefix_end(self.keys.sigs), limit=512
        ).kvs
        for kv in kvs:
            with contextlib.suppress(LedgerError):
                self._on_signature(SignedCheckpoint.decode(kv.value))

    def _verify_signatures(self, txs: Sequence[RawTx]) -> dict[str, bool]:
        """Signature checks for the block's transactions, in parallel (libsodium drops the GIL).

        Transactions this node checked at submission are not checked again; any that
        fails to decode is left to the executor, which records why.
        """
        todo = [t for t in txs if t.id not in self._checked]

        def check(raw: RawTx) -> tuple[str, bool] | None:
            try:
                tx = Transaction.from_body(raw.body, raw.signatures)
            except LedgerError:
                return None
            return tx.id, not tx.bad_signers()

        ok = {t.id: True for t in txs if t.id in self._checked}
        if len(todo) > 64:
            results = list(self._verify_pool.map(check, todo, chunksize=32))
        else:
            results = [check(t) for t in todo]
        for r in results:
            if r is not None:
                ok[r[0]] = r[1]
        return ok

    def _apply(self, proposal: Proposal) -> CommittedBlock | None:
        if self.diverged:
            return None
        block = self.node.commit(proposal, signatures_ok=self._verify_signatures(proposal.txs))
        height = block.header.height
        own = block.header.checkpoint()
        # Signatures of faster peers that arrived before this node had the block.
        for validator, signed in self._certifier.claims(height).items():
            if validator != self.validator and signed.checkpoint == own:
                self._sig_buffer.append((height, signed.signature))
        self._judge(height)
        return block

    def _catch_up(self, upto: int) -> None:
        """Fetch blocks up to ``upto`` from peers, each checked against its certificate."""
        ledger = self.node.ledger
        while not self._stop.is_set() and not self.diverged and ledger.height < upto:
            height = ledger.height + 1
            keys = self._keys_in_force_before(height)
            fetched, proposal, certificate = self._fetch_checked(height, keys)
            block = self.node.commit(proposal, signatures_ok=self._verify_signatures(proposal.txs))
            self.metrics.caught_up.inc()
            if block.header.hash != fetched.header.hash:
                self._diverge(
                    height,
                    f"block {height} executed here to {block.header.hash[:16]}..., but a "
                    f"validator quorum certified {fetched.header.hash[:16]}...",
                )
                return
            exact = self._history.at(height)
            banned = self._certifier.equivocators
            valid = [s for s in certificate if s.validator in exact and s.validator not in banned]
            self._sig_buffer.extend((height, s) for s in valid)
            for sig in valid:
                self._certifier.add(SignedCheckpoint(block.header.checkpoint(), sig))
            self._judge(height)
            if height % 100 == 0:
                self._drain_sigs()
                log.info("caught up to height %d from %s", height, fetched.source)
        self._drain_sigs()

    def _fetch_checked(
        self, height: int, keys: dict[str, str]
    ) -> tuple[FetchedBlock, Proposal, list[CheckpointSignature]]:
        """Block ``height`` from the first peer whose copy passes :func:`check_fetched`."""
        reasons = []
        for url in self._peer_urls():
            try:
                fetched = self._fetcher.fetch([url], height)
            except LedgerError as exc:
                reasons.append(f"{url}: {exc.message}")
                continue
            try:
                proposal, certificate = check_fetched(fetched, self.node.ledger.head, keys)
            except LedgerError as exc:
                # The peer served a block that is not the certified one: faulty or forging.
                self.metrics.refused_blocks.labels(url).inc()
                log.warning("refused block %d from peer %s: %s", height, url, exc.diagnostics())
                reasons.append(f"{url}: {exc.message}")
                continue
            return fetched, proposal, certificate
        raise NotFound(
            "block_unavailable",
            f"No peer provided a certified block {height} ({'; '.join(reasons) or 'no peers'}).",
            height=height,
        )

    def _keys_in_force_before(self, height: int) -> dict[str, str]:
        """Validators in force at ``height`` as known from the state after ``height - 1``."""
        nodes = (self.node.ledger.state("validators") or {"nodes": []})["nodes"]
        return {n["id"]: n["key"] for n in nodes if n["since"] <= height}

    def _peer_urls(self) -> list[str]:
        urls: list[str] = []
        with contextlib.suppress(LedgerError):
            for kv in self.client.range(self.keys.nodes, E.prefix_end(self.keys.nodes)).kvs:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(kv.value)
                    if doc.get("validator") != self.validator and doc.get("url"):
                        urls.append(str(doc["url"]))
        urls.extend(u for u in self.settings.peers if u not in urls)
        return urls

    # -- checkpoints and certification ----------------------------------------------------------

    def _committed(self, block: CommittedBlock) -> None:
        """Ledger commit listener (the applier thread): bookkeeping for the new height."""
        ledger = self.node.ledger
        height = block.header.height
        self._history.record(height, ledger.validator_keys())
        self._certifier.own(block.header.checkpoint())
        if block.signature is not None:
            self._unpublished.add(height)
        with self._acked_lock:
            for result in block.results:
                self._acked.pop(result.id, None)
        self._certifier.forget_below(height - 2048)

    def _publish_sigs(self) -> None:
        """Put this validator's checkpoint signatures into etcd (only while it is one)."""
        if not self._unpublished or self.validator is None or self.diverged:
            return
        ledger = self.node.ledger
        for height in sorted(self._unpublished):
            self._unpublished.discard(height)
            own = self._certifier.own_at(height)
            if own is None or self.validator not in self._history.at(height):
                continue
            assert ledger.identity is not None
            signature = own.sign(self.validator, ledger.identity.key)
            signed = SignedCheckpoint(own, signature)
            try:
                # One put, unless a TEST-ONLY signature fault is active (see faults.py).
                for published in published_checkpoints(signed, ledger.identity.key):
                    self.client.put(self.keys.sig(height, self.validator), published.encode())
            except LedgerError:
                self._unpublished.add(height)
                raise
            self._certifier.add(signed)
            self._judge(height)

    def _on_signature(self, signed: SignedCheckpoint) -> None:
        height = signed.checkpoint.height
        if signed.checkpoint.chain != self.node.ledger.chain_id:
            return
        if height > self.node.ledger.height + 4096 or height <= self.certified_height - 2048:
            return
        if self._certifier.add(signed) and height <= self.node.ledger.height:
            own = self._certifier.own_at(height)
            if (
                own is not None
                and signed.checkpoint == own
                and (signed.signature.validator != self.validator)
            ):
                self._sig_buffer.append((height, signed.signature))
            self._judge(height)
        elif signed.signature.validator in self._certifier.equivocators:
            self._exclude_equivocator(signed.signature.validator)

    def _exclude_equivocator(self, validator: str) -> None:
        """Report a validator that signed two checkpoints at one height and drop every
        signature of it this node kept: none may count toward a certificate."""
        if validator in self._equivocators_reported or validator == self.validator:
            return
        self._equivocators_reported.add(validator)
        first, second = self._certifier.equivocators[validator]
        height = first.checkpoint.height
        self.metrics.equivocating.labels(validator).set(1)
        log.error(
            "validator %s signed two different checkpoints at height %d (state roots %s... "
            "and %s...); none of its signatures counts toward a certificate from now on",
            validator,
            height,
            first.checkpoint.state_root[:16],
            second.checkpoint.state_root[:16],
        )
        self._sig_buffer = [(h, s) for h, s in self._sig_buffer if s.validator != validator]
        store = self.node.ledger.store
        stored = [
            h
            for h in range(max(0, self.node.ledger.height - 2048), self.node.ledger.height + 1)
            if validator in dict(store.checkpoint_sigs(h))  # type: ignore[attr-defined]
        ]
        if stored:
            with store.write_block() as w:
                for h in stored:
                    w.delete_checkpoint_sig(h, validator)
        for h in stored:
            self._judge(h)

    def _judge(self, height: int) -> None:
        verdict: Verdict = self._certifier.verdict(height)
        # Dissent counts only against a certified checkpoint (before that, it may be
        # this node that is wrong), and never against this node itself.
        named = verdict.dissenters if verdict.certified is not None else frozenset()
        for validator in named - self._dissenters - {self.validator}:
            self._dissenters.add(validator)
            self.metrics.dissenters.labels(validator).set(1)
            log.error(
                "validator %s signed a checkpoint at height %d that differs from the certified "
                "one; its signatures are left out of certificates",
                validator,
                height,
            )
        if verdict.is_diverged:
            assert verdict.certified is not None
            self._diverge(
                height,
                f"validators {', '.join(sorted(verdict.signers))} certified state root "
                f"{verdict.certified.state_root[:16]}... at height {height}; this node has "
                f"{self._own_root(height)}",
            )
        elif verdict.is_certified and height > self.certified_height:
            own = self._certifier.own_at(height)
            if own is not None:
                self.certified_height = height
                self.metrics.certified.set(height)

    def _own_root(self, height: int) -> str:
        own = self._certifier.own_at(height)
        return (own.state_root[:16] + "...") if own else "no checkpoint"

    def _drain_sigs(self) -> None:
        """Store peers' signatures that agree with this node's checkpoints (one write)."""
        if not self._sig_buffer:
            return
        buffer, self._sig_buffer = self._sig_buffer, []
        buffer = [(h, s) for h, s in buffer if s.validator not in self._certifier.equivocators]
        store = self.node.ledger.store
        try:
            with store.write_block() as w:
                for height, sig in buffer:
                    w.insert_checkpoint_sig(height, sig.validator, sig.signature)
        except Exception as exc:
            raise StorageError(
                "checkpoint_sig_write_failed", f"Could not store checkpoint signatures: {exc}."
            ) from exc

    def _diverge(self, height: int, why: str) -> None:
        if self.diverged:
            return
        self.diverged = True
        node = self.node
        node.diverged = True
        node.problem = (
            f"state diverged from the certified chain at height {height}: {why}. This node's "
            "data is not trusted; rebuild it from the genesis (it syncs from peers)."
        )
        self.metrics.diverged.set(1)
        log.critical("ALARM: %s", node.problem)
        self._set_leader(False)
