"""The node's store: one SQLite database in WAL mode.

Everything a block changes (its header, its raw transactions, the per-VIN index, the
state rows, the log's Merkle nodes, the state tree's bucket hashes and this node's
checkpoint signature) is written in ONE SQLite transaction, so a crash at any point
leaves the whole block or none of it. ``synchronous=FULL``: a block acknowledged as
committed survives power loss.

Tables (schema version 2)::

    meta(key, value)                   schema_version, chain_id, genesis,
                                       zstd_dictionary (see codec.py)
    blocks(height, hash, header)       header = canonical JSON bytes
    txs(seq, id, height, code, auth, body, sigs)
                                       seq = log leaf index; auth = 1 when the body
                                       decoded and its signatures verified (only those
                                       use up an id); body = signed bytes as
                                       received (compressed, see codec.py);
                                       sigs = concatenated 64-byte signatures
    vin_index(vin, seq)                accepted records of each VIN, in log order
    nonces(signer, nonce)              nonces used by each first signer (replay rule)
    state(key_hash, key, value, value_hash)
                                       value compressed (codec.py); value_hash is
                                       sha256 of the original value
    smt_buckets(idx, hash, count)      the state tree's bucket level (see smt.py)
    log_nodes(id, hash)                perfect subtrees of the log: id = level << 48 | index
    checkpoint_sigs(height, validator, signature)

One writer connection (the thread that commits blocks) and one read connection per
reading thread; WAL lets readers see the last committed block while a block is
being written. A checkpoint thread with its own connection copies committed pages
from the WAL into the database after every busy block (small blocks share one), so a
block's commit waits only for its own WAL frames to reach the disk, not for that copy
(ADR 0013).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from carledger.errors import StorageError
from carledger.store.codec import Codec, packaged_dictionary

__all__ = ["SCHEMA_VERSION", "BlockWriter", "SQLiteStore", "StoredTx"]

SCHEMA_VERSION = 2
LEVEL_SHIFT = 48
#: WAL pages after which the writer checkpoints by itself (SQLite's automatic
#: checkpoint): only reached when the checkpoint thread cannot keep up or has failed.
WRITER_CHECKPOINT_PAGES = 16_384
#: Rows written (inserted, updated, deleted) after which a commit wakes the checkpoint
#: thread: about one busy block. Small blocks share a checkpoint, which costs two
#: fsyncs whatever its size.
CHECKPOINT_AFTER_ROWS = 1_000

log = logging.getLogger(__name__)

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL);
    CREATE TABLE txs (
        seq INTEGER PRIMARY KEY,
        id BLOB NOT NULL,
        height INTEGER NOT NULL,
        code TEXT NOT NULL,
        auth INTEGER NOT NULL,
        body BLOB NOT NULL,
        sigs BLOB NOT NULL
    );
    CREATE INDEX txs_by_id ON txs(id);
    CREATE TABLE vin_index (
        vin TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (vin, seq)
    ) WITHOUT ROWID;
    CREATE TABLE state (
        key_hash BLOB PRIMARY KEY,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        value_hash BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX state_by_key ON state(key);
    CREATE TABLE smt_buckets (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL, count INTEGER NOT NULL);
    CREATE TABLE log_nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
    CREATE TABLE nonces (
        signer BLOB NOT NULL, nonce TEXT NOT NULL, PRIMARY KEY (signer, nonce)
    ) WITHOUT ROWID;
    CREATE TABLE checkpoint_sigs (
        height INTEGER NOT NULL,
        validator TEXT NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (height, validator)
    ) WITHOUT ROWID;
    """,
    # Version 2 compresses bodies and state values (codec.py); version-1 blobs stay
    # readable as they are. The migration only gives the store its dictionary.
    2: "",
}


#: Values bound in one ``IN (...)`` query (SQLite allows 32,766 since 3.32).
_IN_CHUNK = 500


def _marks(values: Sequence[object]) -> str:
    """``?,?,...``: one placeholder per value (queries never interpolate values)."""
    return ",".join("?" * len(values))


def node_id(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


@dataclass(frozen=True, slots=True)
class StoredTx:
    seq: int
    id: str
    height: int
    code: str
    body: bytes
    signatures: tuple[bytes, ...]


def _blob(value: object) -> bytes:
    """Column bytes; a value edited outside carledger may come back as text."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _split_sigs(blob: bytes) -> tuple[bytes, ...]:
    return tuple(blob[i : i + 64] for i in range(0, len(blob), 64))


class _Reads:
    """Read queries shared by the store (committed data) and a block writer (pending)."""

    conn: sqlite3.Connection
    codec: Codec

    def _c(self) -> sqlite3.Connection:
        return self.conn

    def nonce_used(self, signer: str, nonce: str) -> bool:
        """Whether ``signer`` (its first 8 bytes) already used ``nonce`` on this chain."""
        return (
            self._c()
            .execute(
                "SELECT 1 FROM nonces WHERE signer = ? AND nonce = ?",
                (bytes.fromhex(signer[:16]), nonce),
            )
            .fetchone()
            is not None
        )

    def used_nonces(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The ``(signer, nonce)`` pairs among ``pairs`` that :meth:`nonce_used` would confirm."""
        keys = list(dict.fromkeys((bytes.fromhex(signer[:16]), nonce) for signer, nonce in pairs))
        found: set[tuple[bytes, str]] = set()
        conn = self._c()
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            marks = ",".join(["(?, ?)"] * len(chunk))
            # A join from the constant rows, so each is one primary-key search: SQLite
            # answers ``(signer, nonce) IN (VALUES ...)`` by scanning the whole table
            # (38 ms a request at 300,000 nonces, growing with the chain).
            rows = conn.execute(
                f"SELECT n.signer, n.nonce FROM (VALUES {marks}) AS v "  # noqa: S608 (placeholders only)
                "CROSS JOIN nonces AS n ON n.signer = v.column1 AND n.nonce = v.column2",
                [v for pair in chunk for v in pair],
            )
            found.update((_blob(k), str(n)) for k, n in rows)
        return {(s, n) for s, n in pairs if (bytes.fromhex(s[:16]), n) in found}

    def get_state(self, key: str) -> bytes | None:
        row = (
            self._c()
            .execute(
                "SELECT value FROM state WHERE key_hash = ?",
                (hashlib.sha256(key.encode()).digest(),),
            )
            .fetchone()
        )
        return None if row is None else self.codec.unpack(_blob(row[0]), f"The state of {key!r}")

    def get_states(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """:meth:`get_state` of many keys in one query per 500 (absent keys map to None)."""
        by_hash = {hashlib.sha256(k.encode()).digest(): k for k in keys}
        out: dict[str, bytes | None] = dict.fromkeys(keys)
        hashes = list(by_hash)
        conn = self._c()
        for i in range(0, len(hashes), _IN_CHUNK):
            chunk = hashes[i : i + _IN_CHUNK]
            rows = conn.execute(
                f"SELECT key_hash, value FROM state WHERE key_hash IN ({_marks(chunk)})",  # noqa: S608 (placeholders only)
                chunk,
            )
            for kh, value in rows:
                key = by_hash[bytes(kh)]
                out[key] = self.codec.unpack(_blob(value), f"The state of {key!r}")
        return out

    def leaves_in_range(self, lo: bytes, hi: bytes | None) -> Iterable[tuple[bytes, bytes]]:
        if hi is None:
            rows = self._c().execute(
                "SELECT key_hash, value_hash FROM state WHERE key_hash >= ? ORDER BY key_hash",
                (lo,),
            )
        else:
            rows = self._c().execute(
                "SELECT key_hash, value_hash FROM state WHERE key_hash >= ? AND key_hash < ? "
                "ORDER BY key_hash",
                (lo, hi),
            )
        return [(bytes(k), bytes(v)) for k, v in rows]

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """The hashes of the log nodes ``(level, index)``, in order (one query per 500).

        Raises StorageError ``missing_log_node`` naming the first one that is absent.
        """
        wanted = [node_id(level, index) for level, index in ids]
        found: dict[int, bytes] = {}
        conn = self._c()
        unique = list(dict.fromkeys(wanted))
        for i in range(0, len(unique), _IN_CHUNK):
            chunk = unique[i : i + _IN_CHUNK]
            rows = conn.execute(
                f"SELECT id, hash FROM log_nodes WHERE id IN ({_marks(chunk)})",  # noqa: S608 (placeholders only)
                chunk,
            )
            found.update((int(k), bytes(h)) for k, h in rows)
        out = []
        for (level, index), nid in zip(ids, wanted, strict=True):
            value = found.get(nid)
            if value is None:
                raise StorageError(
                    "missing_log_node", f"The log node at level {level}, index {index} is missing."
                )
            out.append(value)
        return out


class BlockWriter(_Reads):
    """Writes of one block inside one open SQLite transaction (:meth:`SQLiteStore.write_block`)."""

    def __init__(self, conn: sqlite3.Connection, codec: Codec) -> None:
        self.conn = conn
        self.codec = codec

    def insert_txs(
        self, rows: Iterable[tuple[int, str, int, str, bool, bytes, tuple[bytes, ...]]]
    ) -> None:
        pack = self.codec.pack
        self.conn.executemany(
            "INSERT INTO txs (seq, id, height, code, auth, body, sigs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (seq, bytes.fromhex(tx_id), height, code, int(auth), pack(body), b"".join(sigs))
                for seq, tx_id, height, code, auth, body, sigs in rows
            ),
        )

    def insert_nonces(self, rows: Iterable[tuple[str, str]]) -> None:
        self.conn.executemany(
            "INSERT INTO nonces (signer, nonce) VALUES (?, ?)",
            ((bytes.fromhex(signer[:16]), nonce) for signer, nonce in rows),
        )

    def insert_vin_index(self, rows: Iterable[tuple[str, int]]) -> None:
        self.conn.executemany("INSERT INTO vin_index (vin, seq) VALUES (?, ?)", rows)

    def write_state(self, writes: dict[str, bytes | None]) -> list[bytes]:
        """Apply state writes; return the key hashes that changed (for the state tree)."""
        upserts = []
        deletes = []
        changed = []
        for key, value in writes.items():
            kh = hashlib.sha256(key.encode()).digest()
            changed.append(kh)
            if value is None:
                deletes.append((kh,))
            else:
                upserts.append((kh, key, self.codec.pack(value), hashlib.sha256(value).digest()))
        self.conn.executemany(
            "INSERT INTO state (key_hash, key, value, value_hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key_hash) DO UPDATE SET value = excluded.value, "
            "value_hash = excluded.value_hash",
            upserts,
        )
        self.conn.executemany("DELETE FROM state WHERE key_hash = ?", deletes)
        return changed

    def insert_log_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        self.conn.executemany(
            "INSERT INTO log_nodes (id, hash) VALUES (?, ?)",
            ((node_id(level, index), h) for level, index, h in nodes),
        )

    def write_buckets(self, rows: Iterable[tuple[int, bytes, int]]) -> None:
        self.conn.executemany(
            "INSERT INTO smt_buckets (idx, hash, count) VALUES (?, ?, ?) "
            "ON CONFLICT(idx) DO UPDATE SET hash = excluded.hash, count = excluded.count",
            rows,
        )

    def insert_block(self, height: int, block_hash: str, header: bytes) -> None:
        self.conn.execute(
            "INSERT INTO blocks (height, hash, header) VALUES (?, ?, ?)",
            (height, bytes.fromhex(block_hash), header),
        )

    def insert_checkpoint_sig(self, height: int, validator: str, signature: bytes) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO checkpoint_sigs (height, validator, signature) "
            "VALUES (?, ?, ?)",
            (height, validator, signature),
        )

    def delete_checkpoint_sig(self, height: int, validator: str) -> None:
        """Forget a validator's signature (it was shown to sign two checkpoints at a height)."""
        self.conn.execute(
            "DELETE FROM checkpoint_sigs WHERE height = ? AND validator = ?", (height, validator)
        )

    def set_meta(self, key: str, value: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class _Checkpointer:
    """Copies the WAL into the database on a thread of its own, after every commit that
    brings the rows written since the last one to :data:`CHECKPOINT_AFTER_ROWS`.

    A passive checkpoint never blocks the writer or a reader; SQLite releases the GIL
    while it copies. Commits that come while one runs are covered by the next. An
    error (a full disk) is logged, once until a checkpoint succeeds again, and the next
    commit tries again: until the copy succeeds the pages stay in the WAL, which SQLite
    reads as part of the database, so nothing committed depends on it.
    """

    def __init__(self, conn: sqlite3.Connection, *, durable: bool) -> None:
        if not durable:
            conn.execute("PRAGMA synchronous=OFF")
        self._conn = conn
        self._wanted = threading.Event()
        self._rows = 0
        self._stopping = False
        self.runs = 0
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def written(self, rows: int) -> None:
        """A block committed ``rows`` row changes; checkpoint once enough have gathered."""
        self._rows += rows
        if self._rows >= CHECKPOINT_AFTER_ROWS:
            self._rows = 0
            self._wanted.set()

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        failing = False
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    if not failing:
                        log.warning("WAL checkpoints fail (tried again later): %s", exc)
                    failing = True
                else:
                    if failing:
                        log.warning("WAL checkpoints succeed again")
                    failing = False
                    self.runs += 1
        finally:
            self._conn.close()


class SQLiteStore(_Reads):
    """A node's database. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path | str, conn: sqlite3.Connection) -> None:
        self.path = str(path)
        self._writer = conn
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._closed = False
        self.codec = Codec(None)
        self._checkpoints: _Checkpointer | None = None

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, durable: bool = True) -> SQLiteStore:
        """Open (creating if absent) the store at ``path`` and bring its schema up to date.

        ``durable=False`` skips the fsync of each commit: only for bulk loads that are
        redone from scratch after a crash (the demo chain, benchmarks).

        Raises :class:`StorageError`: ``store_unreadable`` when the file is not a
        SQLite database (torn or overwritten), ``store_too_new`` when it was written
        by a newer carledger.
        """
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = cls._connect(path)
            if not durable:
                conn.execute("PRAGMA synchronous=OFF")
            store = cls(path, conn)
            store._migrate()
            store.codec = Codec(store.get_meta("zstd_dictionary"))
            if str(path) != ":memory:":
                conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
                store._checkpoints = _Checkpointer(cls._connect(path), durable=durable)
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                "store_unreadable", f"The store {path} cannot be read as a database: {exc}."
            ) from exc
        return store

    @staticmethod
    def _connect(path: Path | str) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _migrate(self) -> None:
        conn = self._writer
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        version = 0
        if has_meta:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StorageError(
                "store_too_new",
                f"The store has schema version {version}; this carledger knows up to "
                f"{SCHEMA_VERSION}. Upgrade carledger.",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if target == 2:
                    conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('zstd_dictionary', ?)",
                        (packaged_dictionary(),),
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(target).encode(),),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- connections -----------------------------------------------------------------

    def _c(self) -> sqlite3.Connection:
        # Reads use a connection per thread so they never see a half-written block.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(self.path) if self.path != ":memory:" else self._writer
            self._local.conn = conn
        return conn

    @property
    def conn(self) -> sqlite3.Connection:  # type: ignore[override]
        return self._c()

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed block."""
        conn = self._c()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write_block(self) -> Iterator[BlockWriter]:
        """One SQLite transaction for one block: committed on normal exit, rolled back on error.

        A database error (disk full, I/O error) while writing or committing raises
        :class:`StorageError` (``commit_failed``) with nothing written.
        """
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                yield BlockWriter(conn, self.codec)
                conn.execute("COMMIT")
                if self._checkpoints is not None:
                    self._checkpoints.written(conn.total_changes - before)
            except BaseException as exc:
                # SQLite may already have rolled back (a full disk at COMMIT does).
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(
                        "commit_failed", f"The block could not be written: {exc}."
                    ) from exc
                raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._checkpoints is not None:
                self._checkpoints.stop()
            self._writer.close()

    # -- reads -------------------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        row = self._c().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def head(self) -> tuple[int, bytes] | None:
        row = (
            self._c()
            .execute("SELECT height, header FROM blocks ORDER BY height DESC LIMIT 1")
            .fetchone()
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def block(self, height: int) -> bytes | None:
        row = self._c().execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    def blocks(self, start: int, stop: int) -> list[tuple[int, bytes, bytes]]:
        rows = self._c().execute(
            "SELECT height, hash, header FROM blocks WHERE height >= ? AND height < ? "
            "ORDER BY height",
            (start, stop),
        )
        return [(int(h), bytes(b), bytes(x)) for h, b, x in rows]

    def has_tx(self, tx_id: str) -> bool:
        return (
            self._c()
            .execute("SELECT 1 FROM txs WHERE id = ? AND auth = 1", (bytes.fromhex(tx_id),))
            .fetchone()
            is not None
        )

    def committed_ids(self, tx_ids: Sequence[str]) -> set[str]:
        """The ids among ``tx_ids`` for which :meth:`has_tx` is true (one query per 500)."""
        found: set[str] = set()
        conn = self._c()
        for i in range(0, len(tx_ids), _IN_CHUNK):
            chunk = [bytes.fromhex(t) for t in tx_ids[i : i + _IN_CHUNK]]
            rows = conn.execute(
                f"SELECT id FROM txs WHERE auth = 1 AND id IN ({_marks(chunk)})",  # noqa: S608 (placeholders only)
                chunk,
            )
            found.update(_blob(r[0]).hex() for r in rows)
        return found

    def tx_by_id(self, tx_id: str) -> StoredTx | None:
        row = (
            self._c()
            .execute(
                "SELECT seq, id, height, code, body, sigs FROM txs WHERE id = ? "
                "ORDER BY auth DESC, seq LIMIT 1",
                (bytes.fromhex(tx_id),),
            )
            .fetchone()
        )
        return None if row is None else self._tx(row)

    def txs_range(self, start_seq: int, stop_seq: int) -> list[StoredTx]:
        rows = self._c().execute(
            "SELECT seq, id, height, code, body, sigs FROM txs WHERE seq >= ? AND seq < ? "
            "ORDER BY seq",
            (start_seq, stop_seq),
        )
        return [self._tx(r) for r in rows]

    def txs_of_vin(self, vin: str, *, after_seq: int = -1, limit: int = 1000) -> list[StoredTx]:
        rows = self._c().execute(
            "SELECT t.seq, t.id, t.height, t.code, t.body, t.sigs FROM vin_index v "
            "JOIN txs t ON t.seq = v.seq WHERE v.vin = ? AND v.seq > ? ORDER BY v.seq LIMIT ?",
            (vin, after_seq, limit),
        )
        return [self._tx(r) for r in rows]

    def _tx(self, row: tuple[int, bytes, int, str, bytes, bytes]) -> StoredTx:
        seq, tx_id, height, code, body, sigs = row
        return StoredTx(
            int(seq),
            _blob(tx_id).hex(),
            int(height),
            str(code),
            self.codec.unpack(_blob(body), f"The body of record {seq}"),
            _split_sigs(_blob(sigs)),
        )

    def state_prefix(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> list[tuple[str, bytes]]:
        """State entries whose key starts with ``prefix``, in key order, after key ``after``."""
        start = max(prefix, after)
        rows = self._c().execute(
            "SELECT key, value FROM state WHERE key > ? AND key < ? ORDER BY key LIMIT ?",
            (start if after else prefix, prefix + "\U0010ffff", limit),
        )
        unpack = self.codec.unpack
        return [(str(k), unpack(_blob(v), f"The state of {k!r}")) for k, v in rows]

    def checkpoint_sigs(self, height: int) -> list[tuple[str, bytes]]:
        rows = self._c().execute(
            "SELECT validator, signature FROM checkpoint_sigs WHERE height = ? ORDER BY validator",
            (height,),
        )
        return [(str(v), bytes(s)) for v, s in rows]

    def bucket_rows(self) -> list[tuple[int, bytes, int]]:
        rows = self._c().execute("SELECT idx, hash, count FROM smt_buckets ORDER BY idx")
        return [(int(i), bytes(h), int(c)) for i, h, c in rows]

    def log_node_count(self) -> int:
        return int(self._c().execute("SELECT count(*) FROM log_nodes").fetchone()[0])
