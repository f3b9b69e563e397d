"""Fixtures of the reliability tests: node processes that may be killed, and a fresh local
consortium per test (4 etcd members, 4 nodes), always stopped afterwards."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The consortium helpers live beside the cluster tests; share them under the same name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from cluster_support import CURRENT
from reliability_support import Spawner, Zygote

from carledger.consortium.local import ETCD_BINARY, LocalCluster


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def spawn(tmp_path: Path, zygote: Zygote) -> Iterator[Spawner]:
    """Start ``carledger up`` without waiting for it (see :class:`Spawner`); all are killed
    at the end of the test."""
    spawner = Spawner(zygote, tmp_path / "logs")
    yield spawner
    spawner.kill_all()


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
