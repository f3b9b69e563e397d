"""Prometheus metrics of consortium ordering (leadership, certification, etcd health and
latency)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["OrderingMetrics"]


class OrderingMetrics:
    """The Prometheus figures of consortium ordering, in the node's registry."""

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
        self.etcd_seconds = Histogram(
            "carledger_etcd_request_seconds",
            "Duration of etcd requests a member answered, by operation (kv/txn, kv/range, ...)",
            ["op"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.refused_blocks = Counter(
            "carledger_catchup_refused_blocks",
            "Blocks a peer served for catch-up that failed their certificate check, by peer",
            ["peer"],
            registry=registry,
        )

    def observe_etcd(self, op: str, seconds: float) -> None:
        """An :attr:`carledger.consortium.etcd.EtcdClient.observe` hook."""
        self.etcd_seconds.labels(op).observe(seconds)
