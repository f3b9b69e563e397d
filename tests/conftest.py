"""Suite-wide options: long soak and scale runs only run with --run-slow."""

from __future__ import annotations

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


# --- real node processes ------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeProcess:
    """A `carledger up` child process on a loopback port; its output is kept."""

    data: Path
    port: int
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def start_node(data: Path, *args: str, env: dict[str, str] | None = None) -> NodeProcess:
    """Start a node and return once it listens (it prints uvicorn's 'running' line)."""
    port = free_port()
    cmd = [sys.executable, "-m", "carledger", "up", "--data", str(data), "--host", "127.0.0.1",
           "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    node = NodeProcess(data, port, proc)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            node.output.append(line)
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout=180) or proc.poll() is not None:
        proc.kill()
        raise RuntimeError("node did not start:\n" + "".join(node.output))
    return node


@pytest.fixture
def node_factory() -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def make(data: Path, *args: str, env: dict[str, str] | None = None) -> NodeProcess:
        node = start_node(data, *args, env=env)
        started.append(node)
        return node

    yield make
    for node in started:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=30)
