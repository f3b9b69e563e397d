"""Checkpoint signatures in a running node: publishing its own, judging everyone's.

After each block a validator signs its checkpoint and publishes the signature under
``log/s/<height>/<validator>``; every node collects the signatures it sees (the
applier's watch), stores those that agree with its own checkpoint, and judges each
height with :class:`~.certify.Certifier`. When a checkpoint other than this node's own
is certified, the node declares itself diverged: it logs, sets
``carledger_consortium_diverged``, degrades ``/healthz``, stops applying and leading,
and refuses submissions.

Everything here runs on the applier thread except :meth:`Checkpoints.run_publisher`:
the etcd writes of this validator's signatures go through their own thread, several
heights in one etcd transaction, so that a write's round trip never holds up the
execution of the next block.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from carledger.errors import LedgerError, StorageError
from carledger.ledger.block import CheckpointSignature
from carledger.ledger.ledger import CommittedBlock

from . import etcd as E
from .certify import Certifier, ValidatorHistory, Verdict
from .faults import published_checkpoints
from .layout import MAX_TXN_OPS, SignedCheckpoint

if TYPE_CHECKING:
    from .ordering import EtcdOrdering

__all__ = ["Checkpoints"]

log = logging.getLogger(__name__)


class Checkpoints:
    def __init__(self, o: EtcdOrdering) -> None:
        self.o = o
        self.history = ValidatorHistory()
        self.certifier = Certifier(self.history.at)
        self.unpublished: set[int] = set()
        self.sig_buffer: list[tuple[int, CheckpointSignature]] = []
        self._dissenters: set[str] = set()
        self._equivocators_reported: set[str] = set()
        self._outbox: list[tuple[bytes, bytes]] = []
        self._outbox_cond = threading.Condition()

    # -- this node's checkpoints -------------------------------------------------------------

    def committed(self, block: CommittedBlock) -> None:
        """Bookkeeping for a new height (ledger commit listener, applier thread)."""
        ledger = self.o.node.ledger
        height = block.header.height
        self.history.record(height, ledger.validator_keys())
        self.certifier.own(block.header.checkpoint())
        if block.signature is not None:
            self.unpublished.add(height)
        self.certifier.forget_below(height - 2048)

    def publish(self) -> None:
        """Sign this validator's new checkpoints and hand them to the publisher thread."""
        o = self.o
        if not self.unpublished or o.validator is None or o.diverged:
            return
        ledger = o.node.ledger
        puts: list[tuple[bytes, bytes]] = []
        for height in sorted(self.unpublished):
            self.unpublished.discard(height)
            own = self.certifier.own_at(height)
            if own is None or o.validator not in self.history.at(height):
                continue
            assert ledger.identity is not None
            signature = own.sign(o.validator, ledger.identity.key)
            signed = SignedCheckpoint(own, signature)
            # One put, unless a TEST-ONLY signature fault is active (see faults.py).
            key = o.keys.sig(height, o.validator)
            for published in published_checkpoints(signed, ledger.identity.key):
                puts.append((key, published.encode()))
            self.certifier.add(signed)
            self.judge(height)
        if puts:
            with self._outbox_cond:
                self._outbox.extend(puts)
                self._outbox_cond.notify()

    def run_publisher(self) -> None:
        """The thread that writes this validator's signatures to etcd, in order."""
        o = self.o
        while not o.stopping.is_set():
            with self._outbox_cond:
                while not self._outbox and not o.stopping.is_set():
                    self._outbox_cond.wait(1.0)
                todo = list(self._outbox)
            if not todo:
                continue
            # One transaction per run of distinct keys (etcd refuses a key twice in one).
            chunk: list[tuple[bytes, bytes]] = []
            keys: set[bytes] = set()
            for key, value in todo:
                if key in keys or len(chunk) >= MAX_TXN_OPS - 8:
                    break
                keys.add(key)
                chunk.append((key, value))
            try:
                o.client.txn([], [E.op_put(k, v) for k, v in chunk])
            except LedgerError as exc:
                if o.stopping.is_set():
                    return
                o.metrics.etcd_errors.inc()
                log.warning("publishing checkpoint signatures: %s", exc.diagnostics())
                o.stopping.wait(0.3)
                continue
            with self._outbox_cond:
                del self._outbox[: len(chunk)]

    def stop(self) -> None:
        with self._outbox_cond:
            self._outbox_cond.notify_all()

    # -- everyone's signatures ----------------------------------------------------------------

    def on_signature(self, signed: SignedCheckpoint) -> None:
        o = self.o
        height = signed.checkpoint.height
        if signed.checkpoint.chain != o.node.ledger.chain_id:
            return
        if height > o.node.ledger.height + 4096 or height <= o.certified_height - 2048:
            return
        if self.certifier.known(signed):
            return  # seen (and verified) before: a re-read changes nothing
        if self.certifier.add(signed) and height <= o.node.ledger.height:
            own = self.certifier.own_at(height)
            if (
                own is not None
                and signed.checkpoint == own
                and (signed.signature.validator != o.validator)
            ):
                self.sig_buffer.append((height, signed.signature))
            self.judge(height)
        elif signed.signature.validator in self.certifier.equivocators:
            self._exclude_equivocator(signed.signature.validator)

    def _exclude_equivocator(self, validator: str) -> None:
        """Report a validator that signed two checkpoints at one height and drop every
        signature of it this node kept: none may count toward a certificate."""
        o = self.o
        if validator in self._equivocators_reported or validator == o.validator:
            return
        self._equivocators_reported.add(validator)
        first, second = self.certifier.equivocators[validator]
        height = first.checkpoint.height
        o.metrics.equivocating.labels(validator).set(1)
        log.error(
            "validator %s signed two different checkpoints at height %d (state roots %s... "
            "and %s...); none of its signatures counts toward a certificate from now on",
            validator,
            height,
            first.checkpoint.state_root[:16],
            second.checkpoint.state_root[:16],
        )
        self.sig_buffer = [(h, s) for h, s in self.sig_buffer if s.validator != validator]
        ledger = o.node.ledger
        store = ledger.store
        stored = [
            h
            for h in range(max(0, ledger.height - 2048), ledger.height + 1)
            if validator in dict(store.checkpoint_sigs(h))  # type: ignore[attr-defined]
        ]
        if stored:
            with store.write_block() as w:
                for h in stored:
                    w.delete_checkpoint_sig(h, validator)
        for h in stored:
            self.judge(h)

    def judge(self, height: int) -> None:
        o = self.o
        verdict: Verdict = self.certifier.verdict(height)
        # Dissent counts only against a certified checkpoint (before that, it may be
        # this node that is wrong), and never against this node itself.
        named = verdict.dissenters if verdict.certified is not None else frozenset()
        for validator in named - self._dissenters - {o.validator}:
            self._dissenters.add(validator)
            o.metrics.dissenters.labels(validator).set(1)
            log.error(
                "validator %s signed a checkpoint at height %d that differs from the certified "
                "one; its signatures are left out of certificates",
                validator,
                height,
            )
        if verdict.is_diverged:
            assert verdict.certified is not None
            self.diverge(
                height,
                f"validators {', '.join(sorted(verdict.signers))} certified state root "
                f"{verdict.certified.state_root[:16]}... at height {height}; this node has "
                f"{self._own_root(height)}",
            )
        elif verdict.is_certified and height > o.certified_height:
            own = self.certifier.own_at(height)
            if own is not None:
                o.certified_height = height
                o.metrics.certified.set(height)

    def _own_root(self, height: int) -> str:
        own = self.certifier.own_at(height)
        return (own.state_root[:16] + "...") if own else "no checkpoint"

    def drain(self) -> None:
        """Store peers' signatures that agree with this node's checkpoints (one write)."""
        if not self.sig_buffer:
            return
        buffer, self.sig_buffer = self.sig_buffer, []
        buffer = [(h, s) for h, s in buffer if s.validator not in self.certifier.equivocators]
        store = self.o.node.ledger.store
        try:
            with store.write_block() as w:
                for height, sig in buffer:
                    w.insert_checkpoint_sig(height, sig.validator, sig.signature)
        except Exception as exc:
            raise StorageError(
                "checkpoint_sig_write_failed", f"Could not store checkpoint signatures: {exc}."
            ) from exc

    def diverge(self, height: int, why: str) -> None:
        o = self.o
        if o.diverged:
            return
        o.diverged = True
        node = o.node
        node.diverged = True
        node.problem = (
            f"state diverged from the certified chain at height {height}: {why}. This node's "
            "data is not trusted; rebuild it from the genesis (it syncs from peers)."
        )
        o.metrics.diverged.set(1)
        log.critical("ALARM: %s", node.problem)
        o.session.set_leader(False)
