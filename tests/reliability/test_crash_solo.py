"""Crash consistency of one node: SIGKILL at random moments under sustained writes.

Each cycle starts ``carledger up`` on the same data directory, lets two writer threads
submit batches with ``wait=true``, and kills the node with SIGKILL at a random moment:
usually while blocks are being written, sometimes while it is still starting. After
every restart, every transaction the node acknowledged as committed in any earlier
cycle must be in the store, the node must answer ``/healthz`` with ``ok`` within
seconds, and every few cycles (and at the end) ``carledger verify`` must pass.

The cycles fork their nodes from a pre-imported interpreter (``node_zygote.py``: the
same code as ``python -m carledger up``, without a second of imports per start); the
last start is a plain ``python -m carledger up`` that is stopped cleanly. In-between
audits run ``carledger verify``'s audit in this process; the last one is the CLI.

``CARLEDGER_CRASH_SEED`` replays a run (the seed is printed with the figures).
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from reliability_support import (
    Spawned,
    Writer,
    audit,
    committed_ids,
    enrol_tx,
    make_demo_chain,
    register_tx,
    report_figures,
    run_verify,
)

pytestmark = pytest.mark.integration

NODE_ARGS = ("--log-level", "warning", "--block-interval-ms", "10", "--block-max-txs", "64")
#: A node must answer within this many seconds of being started on a crashed store.
SERVE_WITHIN = 15.0


def crash_cycles(
    tmp_path: Path, spawn: Callable[..., Spawned], *, cycles: int, verify_every: int
) -> dict[str, object]:
    seed = int(os.environ.get("CARLEDGER_CRASH_SEED", "20261122"))
    rng = random.Random(seed)
    chain = make_demo_chain(tmp_path / "node", vehicles=2)
    db = chain.home.db_path
    counter = itertools.count()

    def make_tx(n: int):  # type: ignore[no-untyped-def]
        return register_tx(chain.network, n) if n % 2 else enrol_tx(chain.network, n)

    acked: set[str] = set()
    serve_times: list[float] = []
    kills = {"writing": 0, "starting": 0}
    verified = 0
    started = time.monotonic()
    for cycle in range(cycles):
        node = spawn(chain.data, *NODE_ARGS)
        if cycle % 7 == 3:
            # Killed while opening the store and starting up.
            time.sleep(rng.uniform(0.0, 1.2))
            node.kill()
            kills["starting"] += 1
            continue
        serve_times.append(node.wait_serving(SERVE_WITHIN))
        present = committed_ids(db)
        lost = acked - present
        assert not lost, f"cycle {cycle}: {len(lost)} acknowledged transactions lost"
        with httpx.Client(timeout=5) as http:
            for tx_id in rng.sample(sorted(acked), min(3, len(acked))):
                assert http.get(f"{node.url}/v1/transactions/{tx_id}").status_code == 200
        writers = [Writer(node.url, make_tx, counter) for _ in range(2)]
        for w in writers:
            w.start()
        assert writers[0].first_ack.wait(15), node.output()[-2000:]
        time.sleep(rng.uniform(0.0, 0.4))
        node.kill()
        kills["writing"] += 1
        for w in writers:
            w.join(timeout=30)
            assert not w.is_alive()
            assert not w.stats.refused, w.stats.refused[:5]
            acked.update(w.stats.acked)
        if (cycle + 1) % verify_every == 0:
            result = audit(chain.data)
            assert result.ok, [str(f) for f in result.findings]
            verified += 1
    # The last restart: all acknowledged is there, `carledger verify` passes, the node serves.
    code, doc, out = run_verify(chain.data)
    assert code == 0 and doc is not None and doc["ok"], out
    verified += 1
    node = spawn(chain.data, *NODE_ARGS, real=True)
    serve_times.append(node.wait_serving(SERVE_WITHIN))
    lost = acked - committed_ids(db)
    assert not lost, f"{len(lost)} acknowledged transactions lost"
    height = httpx.get(f"{node.url}/healthz", timeout=5).json()["height"]
    assert node.stop() == 0
    figures: dict[str, object] = {
        "seed": seed,
        "cycles": cycles,
        "sigkills": sum(kills.values()),
        "sigkills_while_writing": kills["writing"],
        "sigkills_while_starting": kills["starting"],
        "acknowledged": len(acked),
        "lost": 0,
        "verify_runs": verified,
        "height": height,
        "restart_to_serving_s_max": round(max(serve_times), 2),
        "restart_to_serving_s_median": round(statistics.median(serve_times), 2),
        "seconds": round(time.monotonic() - started, 1),
    }
    return figures


def test_sigkill_under_writes_loses_nothing(tmp_path: Path, spawn: Callable[..., Spawned]) -> None:
    figures = crash_cycles(tmp_path, spawn, cycles=30, verify_every=10)
    assert figures["acknowledged"] > 100  # type: ignore[operator]
    report_figures("crash.solo", figures)


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_sigkill_under_writes_loses_nothing_long(
    tmp_path: Path, spawn: Callable[..., Spawned]
) -> None:
    figures = crash_cycles(tmp_path, spawn, cycles=500, verify_every=50)
    report_figures("crash.solo.long", figures)
