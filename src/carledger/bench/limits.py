"""What the machine can physically do, measured in the same run as every figure.

- Ed25519 verification on one core with the library the node uses (PyNaCl, i.e.
  libsodium's ``crypto_sign_open``) in a plain loop over a typical record's body.
- SQLite inserts: one ``executemany`` of rows the size of a typical record (id,
  body, signature) into a WAL database with ``synchronous=FULL`` and one commit.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import nacl.bindings

from carledger.crypto.keys import SigningKey

__all__ = ["ed25519_verify_per_s", "sqlite_insert_per_s"]

#: A typical demo record body is about 550 bytes.
TYPICAL_BODY = 550


def ed25519_verify_per_s(*, seconds: float = 1.0, repeats: int = 3) -> float:
    """Median over ``repeats`` runs of signatures verified per second on one core."""
    key = SigningKey(bytes(range(32)))
    body = os.urandom(TYPICAL_BODY)
    signed = key.sign(body) + body
    public = key.public_key.raw
    open_ = nacl.bindings.crypto_sign_open
    rates = []
    for _ in range(repeats):
        count = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(200):
                open_(signed, public)
            count += 200
        rates.append(count / elapsed)
    return statistics.median(rates)


def sqlite_insert_per_s(*, rows: int = 50_000, repeats: int = 3) -> float:
    """Median over ``repeats`` runs of rows inserted per second, commit included."""
    data = [
        (i, os.urandom(32), i // 1000, os.urandom(TYPICAL_BODY), os.urandom(64))
        for i in range(rows)
    ]
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="carledger-bench-") as tmp:
            conn = sqlite3.connect(str(Path(tmp) / "raw.db"), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(
                    "CREATE TABLE txs (seq INTEGER PRIMARY KEY, id BLOB NOT NULL, "
                    "height INTEGER NOT NULL, body BLOB NOT NULL, sigs BLOB NOT NULL)"
                )
                started = time.perf_counter()
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO txs VALUES (?, ?, ?, ?, ?)", data)
                conn.execute("COMMIT")
                rates.append(rows / (time.perf_counter() - started))
            finally:
                conn.close()
    return statistics.median(rates)
