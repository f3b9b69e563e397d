"""Fixtures of the security tests: one demo chain, and one node serving it, per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from carledger.node.demo import create_demo
from carledger.node.home import Home
from tests_support import NodeProcess, start_node

VEHICLES = 4


def pytest_configure(config: pytest.Config) -> None:
    # Long fuzzing runs: --run-slow multiplies every property test's examples.
    import security_support

    security_support.SCALE = 30 if config.getoption("--run-slow") else 1


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo chain (seed 13, four vehicles), never written to: copy it to write."""
    path = tmp_path_factory.mktemp("security") / "pristine"
    create_demo(Home(path), vehicles=VEHICLES, seed=13)
    return path


@pytest.fixture(scope="module")
def demo_node(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """``carledger up`` on a copy of the demo chain, for the whole module."""
    data = tmp_path_factory.mktemp("node") / "node"
    shutil.copytree(demo_data, data)
    node = start_node(data, "--block-interval-ms", "10")
    yield node
    node.kill()
