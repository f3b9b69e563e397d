"""Suite-wide options: long soak and scale runs only run with --run-slow."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run long soak/scale tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long run: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# --- real node processes (helpers live in tests_support.py) ------------------------

from collections.abc import Callable, Iterator  # noqa: E402

from tests_support import NodeProcess, start_node  # noqa: E402


@pytest.fixture
def node_factory() -> Iterator[Callable[..., NodeProcess]]:
    """Start `carledger up` processes; every one is killed at the end of the test."""
    started: list[NodeProcess] = []

    def make(data: Path, *args: str, env: dict[str, str] | None = None) -> NodeProcess:
        node = start_node(data, *args, env=env)
        started.append(node)
        return node

    yield make
    for node in started:
        node.kill()
