"""Node processes on loopback and the clients that load them over HTTP.

Clients submit through the node's real submission path: ``POST /v1/transactions``
with a JSON array of wire transactions and ``?wait=true``, so a response comes back
once every record of the batch is committed (or refused in its block) and its time is
the batch's submit-to-commit latency.

The records of one VIN form a hash chain and must be committed in order, so each VIN
belongs to one client, which submits its records in stream order and never has two
batches in flight: records of different clients are independent.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from carledger.vehicle.demo import DemoTx

__all__ = [
    "ClientStream",
    "LoadResult",
    "NodeProcess",
    "free_port",
    "partition",
    "run_max",
    "run_paced",
    "start_node",
    "wait_heights",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- node processes ------------------------------------------------------------------------


@dataclass
class NodeProcess:
    """A ``carledger up`` child process on a loopback port."""

    popen: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size in MiB of the node and its child processes
        (its submission check workers), from ``/proc``; the peak is the sum of peaks."""
        figures = [process_rss_mb(pid) for pid in (self.pid, *child_pids(self.pid))]
        return sum(f[0] for f in figures), sum(f[1] for f in figures)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=30)
        self.log.close()


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's), from ``/proc``."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children.extend(map(int, (task / "children").read_text().split()))
    except OSError:
        pass
    return children


def process_rss_mb(pid: int) -> tuple[float, float]:
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def start_node(data: Path, *extra: str, log: Path, timeout: float = 180) -> NodeProcess:
    """Start ``carledger up`` on ``data`` and return once ``/healthz`` answers."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    cmd = [
        sys.executable, "-m", "carledger", "up",
        "--data", str(data),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--log-level", "warning",
        *extra,
    ]  # fmt: skip
    popen = subprocess.Popen(cmd, stdout=out, stderr=out, env={**os.environ, "COLUMNS": "200"})
    node = NodeProcess(popen, port, out)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            out.close()
            raise RuntimeError(f"node exited at start:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            httpx.get(f"{node.url}/healthz", timeout=2)
            return node
        except httpx.HTTPError:
            time.sleep(0.1)
    node.stop()
    raise RuntimeError(f"node did not answer within {timeout} s")


def wait_heights(urls: Sequence[str], *, timeout: float = 300) -> tuple[int, float]:
    """Poll until every node reports the same height and it stops moving; (height, time)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, ...] = ()
    while time.monotonic() < deadline:
        heights = tuple(int(httpx.get(f"{u}/healthz", timeout=5).json()["height"]) for u in urls)
        if len(set(heights)) == 1 and heights == last:
            return heights[0], time.perf_counter()
        last = heights
        time.sleep(0.05)
    raise RuntimeError(f"nodes did not converge: heights {last}")


# --- clients ---------------------------------------------------------------------------------


def wire_json(item: DemoTx) -> str:
    tx = item.tx
    return json.dumps(
        {
            "body": base64.b64encode(tx.body).decode("ascii"),
            "signatures": [s.hex() for s in tx.signatures],
        }
    )


@dataclass
class ClientStream:
    """One client's records, in stream order, as wire JSON; ``pos`` is what it sent."""

    url: str
    wires: list[str]
    pos: int = 0

    def take(self, count: int) -> tuple[bytes, int]:
        chunk = self.wires[self.pos : self.pos + count]
        self.pos += len(chunk)
        return ("[" + ",".join(chunk) + "]").encode(), len(chunk)

    @property
    def left(self) -> int:
        return len(self.wires) - self.pos


def partition(items: Sequence[DemoTx], clients: int, urls: Sequence[str]) -> list[ClientStream]:
    """Records split among ``clients`` so that each VIN's records go through one client.

    A record about several VINs (a recall names twenty) ties their chains together:
    such VINs share a client. Records without a VIN go to client 0.
    """
    parent: dict[str, str] = {}

    def root(vin: str) -> str:
        while parent.setdefault(vin, vin) != vin:
            parent[vin] = parent[parent[vin]]
            vin = parent[vin]
        return vin

    for item in items:
        for other in item.vins[1:]:
            a, b = root(item.vins[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    streams = [ClientStream(urls[i % len(urls)], []) for i in range(clients)]
    for item in items:
        owner = zlib.crc32(root(item.vins[0]).encode()) % clients if item.vins else 0
        streams[owner].wires.append(wire_json(item))
    return streams


@dataclass
class LoadResult:
    committed: int = 0
    refused: int = 0
    rejected: int = 0
    seconds: float = 0.0
    started: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.committed / self.seconds if self.seconds > 0 else 0.0

    def add(self, results: list[dict[str, Any]], latency_ms: float) -> None:
        self.latencies_ms.append(latency_ms)
        for r in results:
            status = r["status"]
            if status == "committed":
                self.committed += 1
            elif status == "refused":
                self.refused += 1
                self.codes[str(r.get("code"))] += 1
            else:
                self.rejected += 1
                self.codes[str(r.get("error", {}).get("code", status))] += 1


def _post(client: httpx.Client, body: bytes) -> tuple[list[dict[str, Any]], float]:
    started = time.perf_counter()
    response = client.post(
        "/v1/transactions",
        params={"wait": "true", "timeout": "60"},
        content=body,
        headers={"content-type": "application/json"},
    )
    latency = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return list(response.json()["results"]), latency


def _run(streams: Sequence[ClientStream], work: Any) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    threads = [
        threading.Thread(target=work, args=(i, s, result, lock), daemon=True)
        for i, s in enumerate(streams)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if result.errors:
        raise RuntimeError("load failed: " + "; ".join(result.errors[:3]))
    return result


def run_max(
    streams: Sequence[ClientStream], *, batch: int, seconds: float, share: float = 0.6
) -> LoadResult:
    """Every client submits back to back until ``seconds`` or its records run out.

    A client sends at most ``share`` of its records, leaving the rest for a paced
    phase. The rate counts records committed (code ``ok``) from the first
    submission to the last commit.
    """
    started = time.perf_counter()
    deadline = started + seconds
    last_done = [started]

    def work(_i: int, stream: ClientStream, result: LoadResult, lock: threading.Lock) -> None:
        stop = stream.pos + int(len(stream.wires) * share)
        try:
            with httpx.Client(base_url=stream.url, timeout=120) as client:
                while stream.pos < stop and time.perf_counter() < deadline:
                    body, _ = stream.take(min(batch, stop - stream.pos))
                    results, latency = _post(client, body)
                    with lock:
                        result.add(results, latency)
                        last_done[0] = max(last_done[0], time.perf_counter())
        except Exception as exc:  # reported by _run
            with lock:
                result.errors.append(repr(exc))

    result = _run(streams, work)
    result.started = started
    result.seconds = last_done[0] - started
    return result


def run_paced(streams: Sequence[ClientStream], *, rate: float, seconds: float) -> LoadResult:
    """Submit at ``rate`` records/s in all, in small batches on a fixed schedule.

    Each client sends a batch every ``interval`` (staggered across clients); when a
    response comes late, the next batch goes at once, so latency is measured from
    when a batch was due (no coordinated omission).
    """
    clients = len(streams)
    interval = 0.25
    size = max(1, round(rate * interval / clients))
    interval = size * clients / rate
    started = time.perf_counter()
    end = started + seconds

    def work(i: int, stream: ClientStream, result: LoadResult, lock: threading.Lock) -> None:
        due = started + interval * i / clients
        try:
            with httpx.Client(base_url=stream.url, timeout=120) as client:
                while stream.left and due < end:
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    body, _ = stream.take(size)
                    results, _latency = _post(client, body)
                    with lock:
                        result.add(results, (time.perf_counter() - due) * 1000)
                    due += interval
        except Exception as exc:  # reported by _run
            with lock:
                result.errors.append(repr(exc))

    result = _run(streams, work)
    result.started = started
    result.seconds = time.perf_counter() - started
    return result
