"""Helpers of the reliability tests: a demo chain to write to, writer threads that keep
what the node acknowledged, the store read back without the node, and figures.

Nothing here sleeps to wait for a condition: waits poll with a deadline. The only
sleeps are the random moments at which a fault is injected.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from carledger.audit import AuditReport, audit_store
from carledger.chain import registry_for
from carledger.crypto.keys import SigningKey
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.node.demo import DEMO_START, create_demo
from carledger.node.home import Home
from carledger.store.sqlite import SQLiteStore
from carledger.vehicle import demo

T = TypeVar("T")

#: Seed of the demo chains these tests write to (keys are derived from it).
SEED = 11


# --- figures: what docs/guarantees.md reports ---------------------------------------------


def report_figures(name: str, figures: dict[str, Any]) -> None:
    """Print the figures of a run; append them to ``$CARLEDGER_FIGURES`` when set."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"FIGURES {line}")
    target = os.environ.get("CARLEDGER_FIGURES")
    if target:
        with Path(target).open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


# --- waiting ------------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (httpx.HTTPError, ValueError, KeyError, sqlite3.Error) as exc:
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


# --- node processes that may be killed ----------------------------------------------------


@dataclass
class Spawned:
    """A ``carledger up`` process whose output goes to a log file (it may be SIGKILLed).

    Either a child of this process (``proc``) or a child forked by the :class:`Zygote`
    (``pid`` only: the kernel reaps it, so a dead node's pid is gone at once).
    """

    data: Path
    port: int
    log: Path
    started: float
    proc: subprocess.Popen[bytes] | None = None
    pid: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        wait_for(f"pid {self.pid} to end", lambda: not self.alive())

    def terminate(self) -> None:
        """SIGTERM (a clean stop) and wait until the process is gone."""
        if self.proc is not None:
            self.stop()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        wait_for(f"pid {self.pid} to stop", lambda: not self.alive(), timeout=60)

    def stop(self) -> int:
        """SIGTERM and the exit status (only for children of this process)."""
        assert self.proc is not None, "only a child of this process has an exit status"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_serving(self, timeout: float = 30.0) -> float:
        """Seconds from spawn until ``/healthz`` answers ``ok``; fail if it exits or stalls."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise AssertionError(f"node exited:\n{self.output()[-3000:]}")
                try:
                    r = http.get(f"{self.url}/healthz")
                    if r.status_code == 200 and r.json()["status"] == "ok":
                        return time.monotonic() - self.started
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        raise AssertionError(f"node did not serve within {timeout} s:\n{self.output()[-3000:]}")


def up_argv(data: Path, port: int, *args: str) -> list[str]:
    return ["up", "--data", str(data), "--host", "127.0.0.1", "--port", str(port), *args]


class Zygote:
    """``node_zygote.py``: forks pre-imported ``carledger up`` processes (see its docstring)."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("node_zygote.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        assert ready.strip() == "ready", ready

    def fork(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"argv": argv, "log": str(log), "env": env or {}}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


class Spawner:
    """Starts ``carledger up`` without waiting for it; :meth:`kill_all` ends every node.

    ``spawner(data, *args)`` forks a pre-imported node from ``zygote`` (fast, for crash
    loops); ``spawner(data, *args, real=True)`` runs ``python -m carledger up``.
    """

    def __init__(self, zygote: Zygote, logs: Path) -> None:
        self.zygote = zygote
        self.logs = logs
        self.started: list[Spawned] = []
        logs.mkdir(parents=True, exist_ok=True)

    def __call__(
        self, data: Path, *args: str, env: dict[str, str] | None = None, real: bool = False
    ) -> Spawned:
        from tests_support import free_port

        port = free_port()
        log = self.logs / f"node-{len(self.started)}.log"
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
            pid = self.zygote.fork(argv, log, env)
            node = Spawned(data, port, log, started_at, pid=pid)
        self.started.append(node)
        return node

    def kill_all(self) -> None:
        for node in self.started:
            node.kill()


# --- a chain to write to ------------------------------------------------------------------


@dataclass
class DemoChain:
    """A node directory holding a small demo market, and the keys of its members."""

    home: Home
    network: demo.DemoNetwork

    @property
    def data(self) -> Path:
        return self.home.path

    @property
    def chain(self) -> str:
        return self.network.chain


def make_demo_chain(path: Path, *, vehicles: int = 3, seed: int = SEED) -> DemoChain:
    home = Home(path)
    create_demo(home, vehicles=vehicles, seed=seed)
    gc.collect()  # the demo's read connections: closed before anything else opens the file
    return DemoChain(home, demo.build_network(str(seed), DEMO_START))


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vin_of(n: int, wmi: str = "KNA") -> str:
    """A VIN no demo car uses (Korean WMI: no check digit)."""
    return f"{wmi}XR{n:012d}"


def register_tx(network: demo.DemoNetwork, n: int, *, tag: str = "w") -> Transaction:
    """A birth record of a new car ``n``, by the demo manufacturer."""
    key = network.key("hmc-01")
    payload = {
        "vin": vin_of(n),
        "prev": None,
        "make": "Hyundai",
        "model": "Avante",
        "model_year": 2024,
        "trim": "Smart",
        "color": "white",
        "fuel": "gasoline",
        "transmission": "automatic",
        "engine_code": "G4FL",
        "plant": "Ulsan",
        "manufactured_on": "2024-01-15",
        "country": "KR",
    }
    body = build_body(
        chain=network.chain,
        type="vehicle.register",
        payload=payload,
        signers=[key.public_hex],
        created=now_utc(),
        nonce=f"{tag}-reg-{n}",
    )
    return sign(body, [key])


def enrol_tx(network: demo.DemoNetwork, n: int, *, tag: str = "w") -> Transaction:
    """The enrolment of a new dealer key ``n`` by the admin of dealer organisation ``dealer-01``."""
    org_id = network.members["dealer-01"].org
    admin = network.admins[org_id]
    member = SigningKey.generate()
    body = build_body(
        chain=network.chain,
        type="member.enrol",
        payload={
            "key": member.public_hex,
            "org": org_id,
            "member": f"{tag}-m{n}",
            "roles": ["dealer"],
        },
        signers=[admin.public_hex],
        created=now_utc(),
        nonce=f"{tag}-enrol-{n}",
    )
    return sign(body, [admin])


# --- writers ------------------------------------------------------------------------------


@dataclass
class WriterStats:
    acked: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    transport_errors: int = 0


class Writer(threading.Thread):
    """Submits batches with ``wait=true`` until stopped or the node goes away.

    Only transactions the node answered ``committed`` are *acknowledged*; anything
    else the node said is kept in ``stats.refused`` (a test expects none).
    """

    def __init__(
        self,
        url: str,
        make_tx: Callable[[int], Transaction],
        counter: Iterable[int],
        *,
        batch: int = 4,
        stop_on_transport_error: bool = True,
        timeout: float = 15.0,
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.make_tx = make_tx
        self.counter = iter(counter)
        self.batch = batch
        self.stop_on_transport_error = stop_on_transport_error
        self.timeout = timeout
        self.stats = WriterStats()
        self.first_ack = threading.Event()
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        with httpx.Client(timeout=self.timeout) as http:
            while not self._halt.is_set():
                with self._lock:
                    txs = [self.make_tx(next(self.counter)) for _ in range(self.batch)]
                try:
                    r = http.post(
                        f"{self.url}/v1/transactions",
                        params={"wait": "true"},
                        json=[t.to_wire() for t in txs],
                    )
                except httpx.HTTPError:
                    self.stats.transport_errors += 1
                    if self.stop_on_transport_error:
                        return
                    self._halt.wait(0.05)
                    continue
                self.stats.requests += 1
                if r.status_code != 200:
                    self.stats.refused.extend((t.id, f"http {r.status_code}") for t in txs)
                    continue
                for tx, res in zip(txs, r.json()["results"], strict=True):
                    if res["status"] == "committed":
                        self.stats.acked.append(tx.id)
                        self.first_ack.set()
                    else:
                        code = (res.get("error") or {}).get("code", res["status"])
                        self.stats.refused.append((tx.id, str(code)))


# --- the store, read without the node -------------------------------------------------------


def committed_ids(db: Path) -> set[str]:
    """Ids committed with code ``ok``; a read-only connection (it never checkpoints)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {bytes(r[0]).hex() for r in conn.execute("SELECT id FROM txs WHERE code = 'ok'")}
    finally:
        conn.close()


def audit(data: Path) -> AuditReport:
    """What ``carledger verify`` computes, in this process (no interpreter start)."""
    info = data / "node.json"
    signer = json.loads(info.read_text())["validator"] if info.exists() else None
    store = SQLiteStore.open(Home(data).db_path)
    try:
        return audit_store(store, registry_for, signer=signer)
    finally:
        store.close()


def run_verify(data: Path, *extra: str) -> tuple[int, dict[str, Any] | None, str]:
    """``carledger verify --data DATA --json``: exit status, its JSON (if any), output."""
    done = subprocess.run(
        [sys.executable, "-m", "carledger", "verify", "--data", str(data), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        doc = None
    return done.returncode, doc, done.stdout + done.stderr
