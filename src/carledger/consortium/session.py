"""The node's etcd session: lease, election, registration and compaction.

A lease (TTL ``lease_ttl`` seconds) is kept alive; under it this node's
``nodes/<id>`` entry (its stored height and API URL, for compaction and catch-up)
and, for validators, an ``election/`` candidate key. The candidate with the lowest
create revision leads (etcd's election recipe, with plain KV calls). When the leader
dies its lease expires and the next candidate leads. The leader also compacts: block
and signature keys are deleted, and etcd's history compacted, only below
``min(stored height of every live node) - retain_blocks``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from carledger.errors import LedgerError

from . import etcd as E

if TYPE_CHECKING:
    from .ordering import EtcdOrdering

__all__ = ["Session"]

log = logging.getLogger(__name__)


class Session:
    def __init__(self, o: EtcdOrdering) -> None:
        self.o = o
        self.lease: int | None = None
        self.candidate_rev = 0
        #: Set while this node leads (the block cutter and the pending view wait on it).
        self.leading = threading.Event()
        self._pruned = 0
        self._last_compact = 0.0

    @property
    def node_name(self) -> str:
        return self.o.validator or f"observer-{os.getpid()}"

    def run(self) -> None:
        o = self.o
        ttl = o.settings.lease_ttl
        registered: tuple[int, str] | None = None
        while not o.stopping.is_set():
            try:
                if o.diverged:
                    self.resign()
                    o.stopping.wait(1.0)
                    continue
                if self.lease is None:
                    self.lease, _ = o.client.lease_grant(ttl)
                    self.candidate_rev = 0
                    registered = None
                    if o.validator is not None:
                        self._campaign()
                elif o.client.lease_keepalive(self.lease) <= 0:
                    log.warning("etcd lease %x expired; campaigning again", self.lease)
                    self.set_leader(False)
                    self.lease = None
                    continue
                head = o.node.ledger.height
                url = o.settings.advertise_url
                if registered != (head, url):
                    doc = {"validator": o.validator, "height": head, "url": url}
                    o.client.put(
                        o.keys.node(self.node_name),
                        json.dumps(doc).encode(),
                        lease=self.lease or 0,
                    )
                    registered = (head, url)
                if o.validator is not None:
                    self._check_leadership()
                if o.is_leader and time.monotonic() - self._last_compact > (
                    o.settings.compact_interval
                ):
                    self._last_compact = time.monotonic()
                    self._compact()
                o.metrics.failovers.set(o.client.failovers)
            except LedgerError as exc:
                o.metrics.etcd_errors.inc()
                log.warning("etcd session: %s", exc.diagnostics())
                if o.is_leader:
                    # Without a confirmed lease this node may no longer lead; appends
                    # are fenced anyway, this just stops trying.
                    self.set_leader(False)
            except Exception:
                # A bug must not silently end the session thread: log it and go on.
                log.exception("etcd session failed unexpectedly")
                self.set_leader(False)
            o.stopping.wait(max(0.2, ttl / 4))

    def _campaign(self) -> None:
        o = self.o
        assert self.lease is not None
        key = o.keys.candidate(self.lease)
        value = json.dumps({"validator": o.validator, "url": o.settings.advertise_url})
        result = o.client.txn(
            [E.compare(key, "CREATE", 0)],
            [E.op_put(key, value.encode(), self.lease)],
            [E.op_range(key)],
        )
        if result.succeeded:
            self.candidate_rev = result.revision
        else:
            kv = result.responses[0]["response_range"]["kvs"][0]
            self.candidate_rev = int(kv["create_revision"])

    def _check_leadership(self) -> None:
        o = self.o
        if self.lease is None or not self.candidate_rev:
            self.set_leader(False)
            return
        first = o.client.range(
            o.keys.election,
            E.prefix_end(o.keys.election),
            limit=1,
            sort_target="CREATE",
        ).kvs
        mine = bool(first) and first[0].key == o.keys.candidate(self.lease)
        self.set_leader(mine)

    def set_leader(self, leading: bool) -> None:
        o = self.o
        if leading == o.is_leader:
            return
        o.is_leader = leading
        if leading:
            log.info("%s leads ordering from now on", o.validator)
            self.leading.set()
        else:
            log.info("%s no longer leads ordering", o.validator)
            self.leading.clear()
        o.wake_leader()
        with contextlib.suppress(AttributeError):
            o.metrics.leader.set(1 if leading else 0)

    def resign(self) -> None:
        self.set_leader(False)
        if self.lease is not None:
            lease, self.lease = self.lease, None
            with contextlib.suppress(LedgerError):
                self.o.client.lease_revoke(lease)

    def _compact(self) -> None:
        """Delete blocks and signatures every live node has stored, then compact history."""
        o = self.o
        retain = o.settings.retain_blocks
        live = o.client.range(o.keys.nodes, E.prefix_end(o.keys.nodes)).kvs
        heights = []
        for kv in live:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                heights.append(int(json.loads(kv.value)["height"]))
        if not heights:
            return
        floor = min(heights) - retain
        if floor <= self._pruned:
            return
        rev, deleted = o.client.delete_range(o.keys.block(0), o.keys.block(floor + 1))
        rev2, _ = o.client.delete_range(o.keys.sigs, o.keys.sigs_at(floor + 1))
        o.client.compact(max(rev, rev2))
        self._pruned = floor
        log.info("etcd: removed %d blocks up to height %d and compacted", deleted, floor)
