"""Applying blocks (every node): the ``log/`` watch, the applier thread, catch-up.

A watch on ``log/`` feeds blocks and checkpoint signatures to one applier thread,
which executes blocks in height order (verifying every signature itself: other
nodes' submissions were not checked here), publishes this validator's checkpoint
signature and judges certification (:mod:`.checkpoints`). The watch is only a
wake-up and a cache: the applier reads missing blocks by range, so a lost, compacted
or stalled watch costs latency, never correctness. Blocks etcd no longer has come
from peers, checked against their certificates (:mod:`.catchup`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from carledger.errors import LedgerError, NotFound
from carledger.ledger.block import CheckpointSignature, Proposal, RawTx
from carledger.ledger.executor import map_in_parts
from carledger.ledger.ledger import CommittedBlock
from carledger.ledger.tx import Transaction

from . import etcd as E
from .catchup import FetchedBlock, PeerFetcher, check_fetched
from .layout import SignedCheckpoint, decode_proposal

if TYPE_CHECKING:
    from .ordering import EtcdOrdering

__all__ = ["Applier"]

log = logging.getLogger(__name__)

#: Store peers' signatures and publish this node's at least this often (seconds)
#: while blocks keep arriving; at once whenever the applier's queue is empty.
_BOOKKEEPING_S = 0.1


class Applier:
    def __init__(self, o: EtcdOrdering, fetcher: PeerFetcher) -> None:
        self.o = o
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cache: dict[int, Proposal] = {}
        #: Transactions this node checked at submission (signatures and schema), by id,
        #: until they are committed: their blocks skip decoding and checking them again.
        self.checked: OrderedDict[str, Transaction] = OrderedDict()
        self.checked_lock = threading.Lock()
        self._verify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sigverify")
        self._fetcher = fetcher

    def offer(self, proposal: Proposal) -> None:
        """A block this node appended itself (no need to read it back from etcd)."""
        self.inbox.put(("proposal", proposal))

    def stop(self) -> None:
        self.inbox.put(("stop", None))
        self._fetcher.close()
        self._verify_pool.shutdown(wait=False)

    # -- watching ---------------------------------------------------------------------------

    def run_watch(self) -> None:
        o = self.o
        rev = 0
        while not o.stopping.is_set():
            try:
                if rev == 0:
                    rev = o.client.range(o.keys.head, count_only=True).revision + 1
                    self.inbox.put(("resync", None))
                for events in o.client.watch(
                    o.keys.log, E.prefix_end(o.keys.log), rev, idle_timeout=3.0
                ):
                    for ev in events:
                        rev = max(rev, ev.kv.mod_revision + 1)
                        if ev.kind == "PUT":
                            self.inbox.put(("kv", ev.kv))
                    if o.stopping.is_set():
                        return
            except E.WatchCompacted as exc:
                log.info("watch: history compacted at %d; re-reading", exc.compact_revision)
                rev = 0
            except LedgerError as exc:
                if o.stopping.is_set():
                    return
                o.metrics.etcd_errors.inc()
                log.warning("watch: %s", exc.diagnostics())
                o.stopping.wait(0.3)
            except Exception:
                if o.stopping.is_set():
                    return
                log.exception("watch failed unexpectedly")
                rev = 0
                o.stopping.wait(1.0)

    # -- applying ---------------------------------------------------------------------------

    def run(self) -> None:
        o = self.o
        last_sync = 0.0
        last_books = 0.0
        while not o.stopping.is_set():
            try:
                kind, item = self.inbox.get(timeout=1.0)
            except queue.Empty:
                kind, item = "tick", None
            if kind == "stop":
                return
            try:
                if kind == "kv":
                    self._on_log_kv(item)
                elif kind == "proposal" and item.height > o.node.ledger.height:
                    self._cache[item.height] = item
                    self._apply_cached()
                if kind in ("resync", "tick") or time.monotonic() - last_sync > 1.0:
                    last_sync = time.monotonic()
                    self.sync(with_sigs=True)
                if self.inbox.empty() or time.monotonic() - last_books > _BOOKKEEPING_S:
                    last_books = time.monotonic()
                    o.checkpoints.drain()
                    o.checkpoints.publish()
            except LedgerError as exc:
                o.metrics.etcd_errors.inc()
                log.warning("apply: %s", exc.diagnostics())
                if not isinstance(exc, E.EtcdUnavailable):
                    o.node.problem = exc.diagnostics()
                o.stopping.wait(0.5)
            except Exception as exc:
                log.exception("apply failed unexpectedly")
                o.node.problem = f"block application failed: {exc!r}"
                o.stopping.wait(1.0)

    def _on_log_kv(self, kv: E.KV) -> None:
        o = self.o
        kind, height, _validator = o.keys.parse_log_key(kv.key)
        if kind == "b":
            if height <= o.node.ledger.height or height in self._cache:
                return
            self._cache[height] = decode_proposal(kv.value)
            self._apply_cached()
        else:
            o.checkpoints.on_signature(SignedCheckpoint.decode(kv.value))

    def _apply_cached(self) -> None:
        o = self.o
        ledger = o.node.ledger
        while not o.diverged and (ledger.height + 1) in self._cache:
            proposal = self._cache.pop(ledger.height + 1)
            self._apply(proposal)
        for h in [h for h in self._cache if h <= ledger.height]:
            del self._cache[h]

    def sync(self, *, with_sigs: bool) -> None:
        """Bring the ledger up to etcd's head: from etcd, or from peers below what it keeps."""
        o = self.o
        ledger = o.node.ledger
        self._apply_cached()
        head = o.client.get(o.keys.head)
        target = int(json.loads(head.value)["height"]) if head is not None else 0
        while not o.diverged and not o.stopping.is_set() and ledger.height < target:
            nxt = ledger.height + 1
            kvs = o.client.range(o.keys.block(nxt), o.keys.block(nxt + 8)).kvs
            if kvs and o.keys.parse_log_key(kvs[0].key)[1] == nxt:
                for kv in kvs:
                    proposal = decode_proposal(kv.value)
                    if proposal.height != ledger.height + 1 or o.diverged:
                        break
                    self._apply(proposal)
                continue
            first = o.client.range(
                o.keys.blocks, E.prefix_end(o.keys.blocks), limit=1, keys_only=True
            ).kvs
            upto = o.keys.parse_log_key(first[0].key)[1] - 1 if first else target
            if upto < nxt:
                continue  # etcd has it after all (a concurrent append); read again
            self._catch_up(upto)
        if with_sigs and o.certified_height < ledger.height:
            self._read_sigs(max(o.certified_height + 1, ledger.height - 64))

    def _read_sigs(self, from_height: int) -> None:
        o = self.o
        kvs = o.client.range(o.keys.sigs_at(from_height), E.prefix_end(o.keys.sigs), limit=512).kvs
        for kv in kvs:
            with contextlib.suppress(LedgerError):
                o.checkpoints.on_signature(SignedCheckpoint.decode(kv.value))

    def _prepare(self, txs: Sequence[RawTx]) -> tuple[dict[str, bool], list[Transaction]]:
        """Signature checks for the block's transactions, in parallel (libsodium drops the
        GIL), and the transactions decoded on the way, for the executor.

        Transactions this node checked at submission are not checked again (the very
        body and signatures only); any that fails to decode is left to the executor,
        which records why. A transaction goes to the executor as decoded only if it
        passed the checks the executor would skip for it (its envelope and schema:
        a pure function of the body, see ``Executor.execute``).
        """
        static = self.o.node.ledger.executor._check_static
        ok: dict[str, bool] = {}
        decoded: list[Transaction] = []
        todo: list[RawTx] = []
        copies = Counter(raw.id for raw in txs)
        with self.checked_lock:
            for raw in txs:
                mine = self.checked.get(raw.id)
                if mine is not None and mine.signatures == raw.signatures:
                    ok[raw.id] = True
                    decoded.append(mine)
                else:
                    todo.append(raw)

        def check(raw: RawTx) -> tuple[Transaction, bool, bool] | None:
            try:
                tx = Transaction.from_body(raw.body, raw.signatures)
            except LedgerError:
                return None
            try:
                static(tx)
            except LedgerError:
                return tx, not tx.bad_signers(), False
            return tx, not tx.bad_signers(), True

        if len(todo) > 64:
            # Four parts: a future per transaction cost a tenth of a consortium node.
            size = max(32, -(-len(todo) // 4))
            results = map_in_parts(self._verify_pool, check, todo, size)
        else:
            results = [check(t) for t in todo]
        for r in results:
            if r is None:
                continue
            tx, signatures_ok, static_ok = r
            ok[tx.id] = signatures_ok
            if static_ok:
                decoded.append(tx)
        # Results are by id, but two copies of one body may carry different signatures:
        # for such an id the executor verifies each copy itself, by position.
        for tx_id, n in copies.items():
            if n > 1:
                ok.pop(tx_id, None)
        return ok, decoded

    def _apply(self, proposal: Proposal) -> CommittedBlock | None:
        o = self.o
        if o.diverged:
            return None
        signatures_ok, decoded = self._prepare(proposal.txs)
        block = o.node.commit(proposal, signatures_ok=signatures_ok, decoded=decoded)
        height = block.header.height
        own = block.header.checkpoint()
        books = o.checkpoints
        # Signatures of faster peers that arrived before this node had the block.
        for validator, signed in books.certifier.claims(height).items():
            if validator != o.validator and signed.checkpoint == own:
                books.sig_buffer.append((height, signed.signature))
        books.judge(height)
        return block

    def committed(self, block: CommittedBlock) -> None:
        """Ledger commit listener: forget this node's checked copies of what is committed."""
        with self.checked_lock:
            for result in block.results:
                self.checked.pop(result.id, None)

    def _catch_up(self, upto: int) -> None:
        """Fetch blocks up to ``upto`` from peers, each checked against its certificate."""
        o = self.o
        books = o.checkpoints
        ledger = o.node.ledger
        while not o.stopping.is_set() and not o.diverged and ledger.height < upto:
            height = ledger.height + 1
            keys = self._keys_in_force_before(height)
            fetched, proposal, certificate = self._fetch_checked(height, keys)
            signatures_ok, decoded = self._prepare(proposal.txs)
            block = o.node.commit(proposal, signatures_ok=signatures_ok, decoded=decoded)
            o.metrics.caught_up.inc()
            if block.header.hash != fetched.header.hash:
                books.diverge(
                    height,
                    f"block {height} executed here to {block.header.hash[:16]}..., but a "
                    f"validator quorum certified {fetched.header.hash[:16]}...",
                )
                return
            exact = books.history.at(height)
            banned = books.certifier.equivocators
            valid = [s for s in certificate if s.validator in exact and s.validator not in banned]
            books.sig_buffer.extend((height, s) for s in valid)
            for sig in valid:
                books.certifier.add(SignedCheckpoint(block.header.checkpoint(), sig))
            books.judge(height)
            if height % 100 == 0:
                books.drain()
                log.info("caught up to height %d from %s", height, fetched.source)
        books.drain()

    def _fetch_checked(
        self, height: int, keys: dict[str, str]
    ) -> tuple[FetchedBlock, Proposal, list[CheckpointSignature]]:
        """Block ``height`` from the first peer whose copy passes :func:`check_fetched`."""
        o = self.o
        reasons = []
        for url in self._peer_urls():
            try:
                fetched = self._fetcher.fetch([url], height)
            except LedgerError as exc:
                reasons.append(f"{url}: {exc.message}")
                continue
            try:
                proposal, certificate = check_fetched(fetched, o.node.ledger.head, keys)
            except LedgerError as exc:
                # The peer served a block that is not the certified one: faulty or forging.
                o.metrics.refused_blocks.labels(url).inc()
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
        nodes = (self.o.node.ledger.state("validators") or {"nodes": []})["nodes"]
        return {n["id"]: n["key"] for n in nodes if n["since"] <= height}

    def _peer_urls(self) -> list[str]:
        o = self.o
        urls: list[str] = []
        with contextlib.suppress(LedgerError):
            for kv in o.client.range(o.keys.nodes, E.prefix_end(o.keys.nodes)).kvs:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(kv.value)
                    if doc.get("validator") != o.validator and doc.get("url"):
                        urls.append(str(doc["url"]))
        urls.extend(u for u in o.settings.peers if u not in urls)
        return urls
