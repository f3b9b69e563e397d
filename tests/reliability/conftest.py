"""Fixtures of the reliability tests: node processes that may be killed, and a fresh local
consortium per test (4 etcd members, 4 nodes), always stopped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The consortium helpers live beside the cluster tests; share them under the same name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from cluster_support import CURRENT
from reliability_support import Spawned, Zygote, up_argv

from carledger.consortium.local import ETCD_BINARY, LocalCluster
from tests_support import free_port


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def spawn(tmp_path: Path, zygote: Zygote) -> Iterator[Callable[..., Spawned]]:
    """Start ``carledger up`` without waiting for it; every node is killed at the end.

    ``spawn(data, *args)`` forks a pre-imported node (fast, for crash loops);
    ``spawn(data, *args, real=True)`` runs ``python -m carledger up`` as a child.
    """
    started: list[Spawned] = []
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)

    def make(
        data: Path, *args: str, env: dict[str, str] | None = None, real: bool = False
    ) -> Spawned:
        port = free_port()
        log = logs / f"node-{len(started)}.log"
        argv = up_argv(data, port, *args)
        if real:
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "carledger", *argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "COLUMNS": "200", **(env or {})},
                )
            node = Spawned(data, port, log, time.monotonic(), proc=proc, pid=proc.pid)
        else:
            started_at = time.monotonic()
            pid = zygote.fork(argv, log, env)
            node = Spawned(data, port, log, started_at, pid=pid)
        started.append(node)
        return node

    yield make
    for node in started:
        node.kill()


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    if not Path(ETCD_BINARY).exists():
        pytest.fail(f"{ETCD_BINARY} is missing: scripts/setup --dev installs etcd-server")
    made: list[LocalCluster] = []

    def make(
        n: int = 4, *node_args: str, env: dict[int, dict[str, str]] | None = None
    ) -> LocalCluster:
        cluster = LocalCluster(tmp_path / "cluster", n, "rel-consortium", node_args)
        made.append(cluster)
        CURRENT.append(cluster)
        cluster.create()
        for i in range(1, n + 1):
            cluster.start_etcd(i)
        cluster.wait_etcd()
        for i in range(1, n + 1):
            cluster.start_node(i, env=(env or {}).get(i))
        for i in range(1, n + 1):
            cluster.wait_node(i)
        return cluster

    yield make
    CURRENT.clear()
    for cluster in made:
        cluster.down()
