"""``carledger bench``: the one place performance figures come from.

Suites (each a module): :mod:`~carledger.bench.limits` (what the machine can do),
:mod:`~carledger.bench.ingest` (one node over HTTP), :mod:`~carledger.bench.cluster`
(4 etcd members and 4 nodes), :mod:`~carledger.bench.chain` (report latency, offline
verification, storage and replay over one big ledger) and
:mod:`~carledger.bench.importer` (``carledger import``). Market data comes from
:mod:`~carledger.bench.data`; :mod:`~carledger.bench.runner` assembles the result.
``docs/performance.md`` holds the latest full run and what the profiles showed.
"""

from carledger.bench.runner import SUITES, TARGETS, BenchOptions, run_bench

__all__ = ["SUITES", "TARGETS", "BenchOptions", "run_bench"]
