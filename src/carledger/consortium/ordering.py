"""Consortium ordering over etcd: :class:`EtcdOrdering` plugs into :class:`Node`.

Roles, all in one node process (threads), each in its own module:

- **submissions** (any node, :mod:`.submit`): :meth:`EtcdOrdering.enqueue` hands
  checked transactions to a flusher that writes them, coalesced, as ``pending/``
  batches; a submission is acknowledged only once etcd (Raft) has committed its
  batch, so an acknowledged transaction survives any minority of crashes.
- **session** (:mod:`.session`): a lease kept alive; under it this node's
  ``nodes/<id>`` entry and, for validators, an ``election/`` candidate key. The
  candidate with the lowest create revision leads. The leader also compacts etcd.
- **leader** (:mod:`.leader`, :mod:`.pending`): follows ``pending/`` with a watch
  and cuts blocks from the oldest batches, appending block ``N`` with one fenced etcd
  transaction that also deletes the batches it consumed. Safety never depends on
  leadership being exclusive: two would-be leaders cannot both append ``N``, and a
  batch is consumed exactly once.
- **apply** (every node, :mod:`.apply`): a watch on ``log/`` feeds blocks and
  checkpoint signatures to one applier thread, which executes blocks in height
  order (verifying every signature itself), and reads missing blocks by range or,
  below what etcd keeps, from peers (:mod:`.catchup`).
- **checkpoints** (:mod:`.checkpoints`, :mod:`.certify`): each validator signs and
  publishes its checkpoint after every block and judges certification.

Divergence: when a checkpoint other than this node's own is certified, the node sets
``node.diverged``, reports it (log, ``carledger_consortium_diverged`` metric,
``/healthz`` degraded), stops applying and leading, and refuses submissions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carledger.errors import LedgerError, OrderingError
from carledger.ledger.ledger import CommittedBlock
from carledger.ledger.tx import Transaction

from . import etcd as E
from .apply import Applier
from .catchup import PeerFetcher
from .checkpoints import Checkpoints
from .faults import apply_test_fault
from .layout import ChainKeys
from .leader import Leader
from .metrics import OrderingMetrics
from .pending import PendingView
from .session import Session
from .submit import Submitter

if TYPE_CHECKING:
    from carledger.node.service import Node

__all__ = ["EtcdOrdering", "EtcdSettings"]

#: Transactions this node checked at submission and remembers until committed.
_CHECKED_MAX = 50_000


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


class EtcdOrdering:
    """The :class:`carledger.node.service.Ordering` of a consortium node."""

    def __init__(self, settings: EtcdSettings, *, client: E.EtcdClient | None = None) -> None:
        self.settings = settings
        self.client = client or E.EtcdClient(
            settings.endpoints, timeout=settings.request_timeout, tls=settings.tls
        )
        #: Set once the node stops; every thread of this ordering waits on it.
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._node: Node | None = None
        self.keys: ChainKeys
        self.validator: str | None = None
        self.is_leader = False
        self.diverged = False
        self.certified_height = 0
        self._acked: dict[str, None] = {}
        self._acked_lock = threading.Lock()
        self.session = Session(self)
        self.checkpoints = Checkpoints(self)
        self.applier = Applier(
            self,
            PeerFetcher(verify=settings.tls.verify() if settings.tls is not None else True),
        )
        self.metrics: OrderingMetrics
        self.submitter: Submitter | None = None
        self.pending_view: PendingView | None = None

    # -- the Ordering protocol ------------------------------------------------------------

    def start(self, node: Node) -> None:
        self._node = node
        ledger = node.ledger
        apply_test_fault(ledger.registry)  # test-only; a no-op unless CARLEDGER_TEST_FAULT
        self.keys = ChainKeys.for_chain(ledger.chain_id, self.settings.prefix)
        self.validator = ledger.identity.validator if ledger.identity else None
        self.metrics = OrderingMetrics(node.metrics.registry)
        self.client.observe = self.metrics.observe_etcd
        books = self.checkpoints
        books.history.record(ledger.height, ledger.validator_keys())
        books.certifier.own(ledger.head.checkpoint())
        # The head's signature may not have reached etcd before a crash.
        books.unpublished.add(ledger.height)
        ledger.on_commit(self._committed)
        self.submitter = Submitter(
            self.client,
            self.keys,
            self.session.node_name,
            stop=self.stopping,
            submit_timeout=self.settings.submit_timeout,
            metrics=self.metrics,
        )
        self.pending_view = PendingView(
            self.client,
            self.keys,
            stop=self.stopping,
            leading=self.session.leading,
            metrics=self.metrics,
        )
        leader = Leader(self, self.pending_view)
        for name, target in (
            ("etcd-session", self.session.run),
            ("etcd-submit", self.submitter.run),
            ("etcd-watch", self.applier.run_watch),
            ("etcd-apply", self.applier.run),
            ("etcd-pending", self.pending_view.run),
            ("etcd-leader", leader.run),
            ("etcd-sigs", books.run_publisher),
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
        if self.stopping.is_set() or self.submitter is None:
            return [OrderingError("node_stopping", "This node is shutting down.")] * len(txs)
        applier = self.applier
        with applier.checked_lock:
            for tx in txs:
                applier.checked[tx.id] = tx
            while len(applier.checked) > _CHECKED_MAX:
                applier.checked.popitem(last=False)
        sub = self.submitter.submit([tx.to_wire() for tx in txs])
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
        self.stopping.set()
        self.wake_leader()
        if self.submitter is not None:
            self.submitter.stop()
        self.checkpoints.stop()
        self.applier.inbox.put(("stop", None))
        lease = self.session.lease
        if lease is not None:
            with contextlib.suppress(LedgerError):
                self.client.lease_revoke(lease)
        self.client.close()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()
        self.applier.stop()

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

    def wake_leader(self) -> None:
        if self.pending_view is not None:
            self.pending_view.poke()

    def _committed(self, block: CommittedBlock) -> None:
        """Ledger commit listener (the applier thread): bookkeeping for the new height."""
        self.checkpoints.committed(block)
        self.applier.committed(block)
        with self._acked_lock:
            for result in block.results:
                self._acked.pop(result.id, None)
        self.wake_leader()  # the leader may wait for this node to catch up
