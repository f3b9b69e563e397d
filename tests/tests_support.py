"""Helpers for tests that start real processes: free loopback ports, node processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path


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
    pump: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the node, wait for it to exit, and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        self.close()

    def close(self) -> None:
        if self.pump is not None:
            self.pump.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_node(data: Path, *args: str, env: dict[str, str] | None = None) -> NodeProcess:
    """Start a node and return once it listens (it prints uvicorn's 'running' line)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "carledger",
        "up",
        "--data",
        str(data),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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

    node.pump = threading.Thread(target=pump, daemon=True)
    node.pump.start()
    if not ready.wait(timeout=180) or proc.poll() is not None:
        node.kill()
        raise RuntimeError("node did not start:\n" + "".join(node.output))
    return node
