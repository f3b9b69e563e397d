"""A fresh local consortium per test (4 etcd members, 4 nodes), always stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_support import CURRENT

from carledger.consortium.local import ETCD_BINARY, LocalCluster


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    if not Path(ETCD_BINARY).exists():
        pytest.fail(f"{ETCD_BINARY} is missing: scripts/setup --dev installs etcd-server")
    made: list[LocalCluster] = []

    def make(
        n: int = 4, *node_args: str, env: dict[int, dict[str, str]] | None = None
    ) -> LocalCluster:
        cluster = LocalCluster(tmp_path / "cluster", n, "test-consortium", node_args)
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
