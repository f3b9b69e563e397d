"""The SQLite store: schema versions, damaged files, atomic blocks, readers' snapshots."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from carledger.errors import StorageError
from carledger.store.sqlite import (
    CHECKPOINT_AFTER_ROWS,
    SCHEMA_VERSION,
    WRITER_CHECKPOINT_PAGES,
    SQLiteStore,
)


def test_new_store_has_the_current_schema_version(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION).encode()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = SQLiteStore.open(tmp_path / "a.db")  # reopening migrates nothing
    assert again.get_meta("schema_version") == str(SCHEMA_VERSION).encode()
    again.close()


def test_a_store_from_a_newer_carledger_is_refused(tmp_path: Path) -> None:
    SQLiteStore.open(tmp_path / "a.db").close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1).encode(),),
    )
    conn.commit()
    conn.close()
    with pytest.raises(StorageError) as info:
        SQLiteStore.open(tmp_path / "a.db")
    assert info.value.code == "store_too_new"


@pytest.mark.parametrize(
    "content", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "a.db").write_bytes(content)
    with pytest.raises(StorageError) as info:
        SQLiteStore.open(tmp_path / "a.db")
    assert info.value.code == "store_unreadable"


def test_a_failed_block_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")

    def crash() -> None:
        with store.write_block() as w:
            w.write_state({"k/1": b'{"a":1}'})
            w.insert_block(1, "00" * 32, b"{}")
            raise RuntimeError("crash in the middle of a block")

    with pytest.raises(RuntimeError):
        crash()
    assert store.get_state("k/1") is None
    assert store.block(1) is None
    with store.write_block() as w:
        w.write_state({"k/1": b'{"a":2}'})
    assert store.get_state("k/1") == b'{"a":2}'
    store.close()


def test_readers_see_only_committed_blocks(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    with store.write_block() as w:
        w.write_state({"k/1": b"1"})
    seen: list[bytes | None] = []
    inside = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with store.write_block() as w:
            w.write_state({"k/1": b"2"})
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    seen.append(store.get_state("k/1"))  # this thread's own read connection
    release.set()
    thread.join()
    seen.append(store.get_state("k/1"))
    assert seen == [b"1", b"2"]
    store.close()


def test_state_prefix_and_vin_pages(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    with store.write_block() as w:
        w.write_state({f"listing/m/{i:03d}": b"{}" for i in range(10)} | {"listinh/x": b"{}"})
        w.insert_txs((i, f"{i:064x}", 1, "ok", True, b"{}", ()) for i in range(6))
        w.insert_vin_index(("VIN1", i) for i in range(0, 6, 2))
    keys = [k for k, _ in store.state_prefix("listing/")]
    assert keys == [f"listing/m/{i:03d}" for i in range(10)]
    page = store.state_prefix("listing/", after="listing/m/004", limit=3)
    assert [k for k, _ in page] == ["listing/m/005", "listing/m/006", "listing/m/007"]
    assert [t.seq for t in store.txs_of_vin("VIN1")] == [0, 2, 4]
    assert [t.seq for t in store.txs_of_vin("VIN1", after_seq=0, limit=1)] == [2]
    store.close()


def _steps(conn: sqlite3.Connection, run: Callable[[], object]) -> int:
    """How many SQLite virtual-machine steps (in units of 100) ``run`` takes on ``conn``."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        run()
    finally:
        conn.set_progress_handler(None, 0)
    return count[0]


def test_batched_replay_lookups_do_not_grow_with_the_chain(tmp_path: Path) -> None:
    """``used_nonces`` and ``committed_ids`` search an index per key: a batch costs the
    same at 2,000 and at 60,000 stored nonces (a table scan per request would not)."""
    store = SQLiteStore.open(tmp_path / "a.db")
    signer = "ab" * 32
    costs = []
    stored = 0
    for total in (2_000, 60_000):
        with store.write_block() as w:
            w.insert_nonces((signer, f"n-{i}") for i in range(stored, total))
        stored = total
        asked = [(signer, f"n-{i}") for i in range(0, 400, 2)] + [
            (signer, f"new-{i}") for i in range(50)
        ]
        assert store.used_nonces(asked) == set(asked[:200])
        conn = store._c()
        costs.append(
            (
                _steps(conn, lambda a=asked: store.used_nonces(a)),
                _steps(conn, lambda: store.committed_ids(["cd" * 32] * 250)),
            )
        )
    (nonces_small, ids_small), (nonces_big, ids_big) = costs
    assert nonces_big <= 2 * nonces_small + 5, costs
    assert ids_big <= 2 * ids_small + 5, costs
    store.close()


# --- the checkpoint thread ----------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _rows(prefix: str, count: int) -> dict[str, bytes | None]:
    return {f"{prefix}/{i}": b'{"a":1}' for i in range(count)}


def test_committed_blocks_reach_the_database_file_without_waiting_for_the_writer(
    tmp_path: Path,
) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    (row,) = store._writer.execute("PRAGMA wal_autocheckpoint").fetchall()
    assert row[0] == WRITER_CHECKPOINT_PAGES
    checkpoints = store._checkpoints
    assert checkpoints is not None
    # Small blocks gather until they have written a busy block's rows.
    with store.write_block() as w:
        w.write_state(_rows("small", CHECKPOINT_AFTER_ROWS // 2))
    time.sleep(0.2)
    assert checkpoints.runs == 0
    with store.write_block() as w:
        w.write_state(_rows("more", CHECKPOINT_AFTER_ROWS // 2))
    _wait_for(lambda: checkpoints.runs >= 1)
    # The database file alone (no WAL beside it) holds both blocks: the checkpoint
    # thread copied them; SQLite's own checkpoint would wait for 16,384 pages.
    alone = tmp_path / "copy.db"
    shutil.copyfile(tmp_path / "a.db", alone)
    copy = sqlite3.connect(alone)
    assert copy.execute("SELECT count(*) FROM state").fetchone() == (CHECKPOINT_AFTER_ROWS,)
    copy.close()
    store.close()
    assert not checkpoints._thread.is_alive()


def test_a_failing_checkpoint_is_logged_and_blocks_still_commit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing:
        def execute(self, _sql: str) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def close(self) -> None:
            pass

    store = SQLiteStore.open(tmp_path / "a.db")
    checkpoints = store._checkpoints
    assert checkpoints is not None
    real = checkpoints._conn
    checkpoints._conn = Failing()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="carledger.store.sqlite"):
        with store.write_block() as w:
            w.write_state({"k/1": b"1", **_rows("filler", CHECKPOINT_AFTER_ROWS)})
        _wait_for(lambda: "WAL checkpoints fail" in caplog.text)
    assert checkpoints.runs == 0
    checkpoints._conn = real
    with store.write_block() as w:
        w.write_state({"k/2": b"2", **_rows("more", CHECKPOINT_AFTER_ROWS)})
    _wait_for(lambda: checkpoints.runs == 1)
    assert "WAL checkpoints succeed again" in caplog.text
    assert store.get_state("k/1") == b"1" and store.get_state("k/2") == b"2"
    store.close()
