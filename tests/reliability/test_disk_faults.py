"""Disk faults: a torn or truncated store file, a deleted write-ahead log, a full disk.

In every case the node either refuses to start, naming what is wrong with a stable
code, or refuses to answer from the damaged part of the store (``store_damaged``)
while answering everything else exactly as an undamaged copy would: it never serves
wrong data. A full disk during a block write rolls the block back, the node says so
on ``/healthz`` (``commit_failed``), loses nothing it acknowledged, and carries on
once there is space again. Recovery of a consortium node from its peers is in
``test_crash_consortium.py``.
"""

from __future__ import annotations

import itertools
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_support import (
    DemoChain,
    Spawned,
    Spawner,
    Writer,
    Zygote,
    audit,
    committed_ids,
    make_demo_chain,
    register_tx,
    report_figures,
    run_verify,
    wait_for,
)

from carledger.node import vehicle_views, views

pytestmark = pytest.mark.integration

NODE_ARGS = ("--log-level", "warning", "--block-interval-ms", "10")
PAGE = 4096


def _checkpoint(db: Path) -> None:
    """Move everything into the main file, as a clean shutdown of the last user does."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carledger", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _write_a_while(chain: DemoChain, spawn: Callable[..., Spawned], txs: int) -> list[str]:
    """Run a node until ``txs`` records are acknowledged; stop it cleanly."""
    node = spawn(chain.data, *NODE_ARGS)
    node.wait_serving()
    counter = itertools.count(10_000)
    writer = Writer(node.url, lambda n: register_tx(chain.network, n), counter, batch=10)
    writer.start()
    wait_for("records to be acknowledged", lambda: len(writer.stats.acked) >= txs)
    writer.stop()
    writer.join(timeout=30)
    node.terminate()
    return writer.stats.acked


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, zygote: Zygote) -> DemoChain:
    """A demo chain with live blocks, stopped cleanly, everything in the main file."""
    base = tmp_path_factory.mktemp("disk")
    chain = make_demo_chain(base / "node", vehicles=4)
    spawner = Spawner(zygote, base / "logs")
    try:
        _write_a_while(chain, spawner, 60)
    finally:
        spawner.kill_all()
    _checkpoint(chain.home.db_path)
    return chain


def _copy(chain: DemoChain, target: Path) -> Path:
    shutil.copytree(chain.data, target)
    return target


def _start_refused(data: Path) -> str:
    """`carledger up` on ``data``: it must exit 1 naming a code; return that code."""
    done = _cli("up", "--data", str(data), "--port", "1", "--log-level", "warning")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.rsplit("[", 1)[1].split("]", 1)[0]


def test_truncated_emptied_and_deleted_store_is_refused(written: DemoChain, tmp_path: Path) -> None:
    db = written.home.db_path
    size = db.stat().st_size
    outcomes = {}

    def truncate_half(path: Path) -> None:
        with path.open("r+b") as fh:
            fh.truncate(size // 2 // PAGE * PAGE)

    def empty(path: Path) -> None:
        path.write_bytes(b"")

    def delete(path: Path) -> None:
        path.unlink()

    def zero_header(path: Path) -> None:
        with path.open("r+b") as fh:
            fh.write(b"\0" * PAGE)

    cases = {
        "truncated to half": (truncate_half, "store_unreadable"),
        "emptied": (empty, "store_behind_head_mark"),
        "deleted": (delete, "store_behind_head_mark"),
        "header page torn": (zero_header, "store_unreadable"),
    }
    for name, (damage, expected) in cases.items():
        data = _copy(written, tmp_path / name.replace(" ", "-"))
        damage(data / "ledger.db")
        code = _start_refused(data)
        assert code == expected, (name, code)
        outcomes[name] = code
    report_figures("disk.refused_at_start", {"cases": outcomes})


def _pristine_answers(chain: DemoChain) -> dict[str, Any]:
    """What an undamaged copy answers, computed in this process from the store."""
    ledger = chain.home.open_ledger(None)
    try:
        store: Any = ledger.store
        answers: dict[str, Any] = {}
        for h in range(ledger.height + 1):
            answers[f"/v1/blocks/{h}"] = views.block_view(ledger, h)
        for tx in store.txs_range(0, ledger.head.log_size):
            answers[f"/v1/transactions/{tx.id}"] = views.transaction_view(ledger, tx.id)
        for key, _ in store.state_prefix("vehicle/", limit=1000):
            vin = key.split("/", 1)[1]
            answers[f"/v1/vehicles/{vin}"] = vehicle_views.vehicle_view(ledger, vin)
            answers[f"/v1/vehicles/{vin}/history"] = vehicle_views.history_view(ledger, vin)
        return answers
    finally:
        store.close()


#: Lookups by key whose row a torn page took away can only answer "unknown": the node
#: holds no proof of existence by id. Everything else must be right or refused.
LOST_AS_UNKNOWN = {"unknown_transaction", "unknown_vehicle"}


def _sweep(url: str, answers: dict[str, Any]) -> dict[str, int]:
    """Every read must equal the undamaged answer or be refused as ``store_damaged``."""
    seen = {"same": 0, "refused": 0, "unknown": 0}
    with httpx.Client(timeout=10) as http:
        for path, expected in answers.items():
            r = http.get(url + path)
            if r.status_code == 200:
                assert r.json() == expected, f"{path} answered wrong data"
                seen["same"] += 1
                continue
            problem = r.json()
            if r.status_code == 404 and problem["code"] in LOST_AS_UNKNOWN:
                seen["unknown"] += 1
                continue
            assert (r.status_code, problem["code"]) == (500, "store_damaged"), (path, problem)
            seen["refused"] += 1
    return seen


def test_torn_pages_never_serve_wrong_data(
    written: DemoChain, tmp_path: Path, spawn: Callable[..., Spawned]
) -> None:
    answers = _pristine_answers(written)
    pages = written.home.db_path.stat().st_size // PAGE
    rng = random.Random(7)
    tried = {
        "pages": 0,
        "refused_at_start": 0,
        "served": 0,
        "reads_same": 0,
        "reads_refused": 0,
        "reads_unknown": 0,
    }
    for k, page in enumerate(rng.sample(range(1, pages), 8)):
        data = _copy(written, tmp_path / f"torn-{k}")
        with (data / "ledger.db").open("r+b") as fh:
            # A torn write: the second half of the page is garbage.
            fh.seek(page * PAGE + PAGE // 2)
            fh.write(rng.randbytes(PAGE // 2))
        tried["pages"] += 1
        result = audit(data)
        assert not result.ok, f"page {page}: the audit found nothing"
        node = spawn(data, *NODE_ARGS)
        try:
            node.wait_serving(20)
        except AssertionError:
            assert not node.alive()
            assert "[" in node.output(), node.output()
            tried["refused_at_start"] += 1
            continue
        tried["served"] += 1
        seen = _sweep(node.url, answers)
        tried["reads_same"] += seen["same"]
        tried["reads_refused"] += seen["refused"]
        tried["reads_unknown"] += seen["unknown"]
        if seen["refused"]:
            health = httpx.get(f"{node.url}/healthz", timeout=5)
            assert health.status_code == 503
            assert "[store_damaged]" in health.json()["problem"]
        node.kill()
    report_figures("disk.torn_pages", tried)


class _SnapshotReader:
    """A process holding a read transaction open on ``db`` until it is killed.

    Killed, not closed: the last connection to close would checkpoint the WAL.
    """

    def __init__(self, db: Path) -> None:
        code = (
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN')\n"
            "c.execute('SELECT count(*) FROM blocks').fetchone()\n"
            "print('reading', flush=True)\n"
            "time.sleep(600)\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "reading"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def test_deleted_wal_after_a_crash_is_refused(
    tmp_path: Path, spawn: Callable[..., Spawned]
) -> None:
    chain = make_demo_chain(tmp_path / "node", vehicles=2)
    node = spawn(chain.data, *NODE_ARGS)
    node.wait_serving()
    # A reader that keeps its snapshot (a long query, a backup) holds the node's
    # checkpoints back: what is committed after it began stays in the WAL alone.
    reader = _SnapshotReader(chain.home.db_path)
    try:
        writer = Writer(
            node.url, lambda n: register_tx(chain.network, n), itertools.count(), batch=5
        )
        writer.start()
        wait_for("records to be acknowledged", lambda: len(writer.stats.acked) >= 30)
        node.kill()
        writer.join(timeout=30)
    finally:
        reader.kill()
    wal = chain.data / "ledger.db-wal"
    assert wal.exists() and wal.stat().st_size > 0  # committed blocks live only there
    wal.unlink()
    (chain.data / "ledger.db-shm").unlink(missing_ok=True)
    assert _start_refused(chain.data) == "store_behind_head_mark"
    report_figures("disk.deleted_wal", {"acknowledged_before": len(writer.stats.acked)})


# --- a full disk ---------------------------------------------------------------------------


class SmallDisk:
    """Where a node's store runs out of space, one of two ways.

    ``tmpfs``: a 6 MiB tmpfs mounted for the test (needs root, as the test machines
    run), nearly filled with a file; freeing space = deleting the file. SQLite sees
    ENOSPC ("database or disk is full").
    ``file-size-limit``: the node's RLIMIT_FSIZE (set with prlimit, no privilege
    needed) caps every file it writes at about 600 KiB more than the store holds;
    freeing space = lifting the limit. SQLite sees EFBIG (an I/O error). Used wherever
    mounting is not allowed, and always as a second case.
    """

    def __init__(self, how: str, root: Path) -> None:
        self.how = how
        self.root = root
        self.mounted = False
        self.pid = 0

    def __enter__(self) -> SmallDisk:
        if self.how == "tmpfs":
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(self.root)],
                capture_output=True,
                check=False,
            )
            self.mounted = done.returncode == 0
            if not self.mounted:
                self.how = "file-size-limit"  # no privilege to mount: the other way
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)

    def fill(self, data: Path) -> None:
        if self.how == "tmpfs":
            free = shutil.disk_usage(self.root).free
            (self.root / "filler").write_bytes(b"\0" * max(0, free - 600 * 1024))

    def limit(self, pid: int, data: Path) -> None:
        if self.how == "file-size-limit":
            self.pid = pid
            largest = max(p.stat().st_size for p in data.rglob("*") if p.is_file())
            cap = largest + 600 * 1024
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (cap, resource.RLIM_INFINITY))

    def free(self) -> None:
        if self.how == "tmpfs":
            (self.root / "filler").unlink()
        else:
            inf = resource.RLIM_INFINITY
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (inf, inf))


@pytest.fixture(params=["tmpfs", "file-size-limit"])
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmallDisk]:
    root = tmp_path / "small-disk"
    root.mkdir()
    with SmallDisk(str(request.param), root) as disk:
        yield disk


def test_full_disk_during_block_writes(
    small_disk: SmallDisk, spawn: Callable[..., Spawned]
) -> None:
    chain = make_demo_chain(small_disk.root / "node", vehicles=2)
    small_disk.fill(chain.data)
    node = spawn(chain.data, *NODE_ARGS)
    small_disk.limit(node.pid, chain.data)
    node.wait_serving()
    counter = itertools.count()
    writer = Writer(
        node.url,
        lambda n: register_tx(chain.network, n),
        counter,
        batch=20,
        stop_on_transport_error=False,
        timeout=3,
    )
    writer.start()

    def degraded() -> dict[str, Any] | None:
        h = httpx.get(f"{node.url}/healthz", timeout=5)
        return h.json() if h.status_code == 503 else None

    health = wait_for("the disk to fill up", degraded, timeout=120)
    assert "[commit_failed]" in health["problem"], health
    if small_disk.how == "tmpfs":
        assert "full" in health["problem"], health
    stuck_at = health["height"]
    acked_when_full = len(writer.stats.acked)
    writer.stop()
    writer.join(timeout=30)
    # Nothing is committed while the disk is full; the node keeps answering reads.
    assert httpx.get(f"{node.url}/v1/blocks/{stuck_at}", timeout=5).status_code == 200
    small_disk.free()
    wait_for(
        "the node to commit again",
        lambda: (
            (h := httpx.get(f"{node.url}/healthz", timeout=5)).status_code == 200
            and h.json()["height"] > stuck_at
            and h.json()["mempool"] == 0
        ),
        timeout=60,
    )
    node.terminate()
    acked = set(writer.stats.acked)
    assert not writer.stats.refused, writer.stats.refused[:3]
    assert acked <= committed_ids(chain.home.db_path)
    code, doc, out = run_verify(chain.data)
    assert code == 0 and doc is not None and doc["ok"], out
    report_figures(
        f"disk.full.{small_disk.how}",
        {
            "acknowledged": len(acked),
            "acknowledged_before_full": acked_when_full,
            "lost": 0,
            "height_when_full": stuck_at,
            "final_height": doc["height"],
        },
    )
