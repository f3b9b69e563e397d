"""Compressed bodies and state values (schema version 2, ``carledger.store.codec``)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from carledger.errors import StorageError
from carledger.store.codec import MAX_EXPANDED, Codec, packaged_dictionary
from carledger.store.sqlite import SQLiteStore

BODY = json.dumps(
    {
        "chain_id": "carledger-seoul-market",
        "nonce": "0f3a9c",
        "payload": {"odometer_km": 48210, "notes": "timing belt replaced"},
        "prev": "ab" * 32,
        "signers": ["cd" * 32],
        "type": "service.record",
        "vin": "KMHxx41DBxN000142",
    },
    separators=(",", ":"),
    sort_keys=True,
).encode()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(packaged_dictionary())


def test_the_packaged_dictionary_is_a_trained_one() -> None:
    data = packaged_dictionary()
    assert len(data) == 16 * 1024
    assert zstandard.ZstdCompressionDict(data).dict_id() != 0  # not raw content


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=4000) | st.sampled_from([b"", b"\x01", b"\x02", b"\x02\x01", BODY]))
def test_any_bytes_come_back_as_they_were(codec: Codec, raw: bytes) -> None:
    packed = codec.pack(raw)
    assert codec.unpack(packed) == raw
    if raw[:1] in (b"\x01", b"\x02"):
        assert packed != raw  # a marker byte is never stored bare: no ambiguity
    assert Codec(None).unpack(Codec(None).pack(raw)) == raw


def test_a_record_body_shrinks_with_the_dictionary(codec: Codec) -> None:
    plain = Codec(None).pack(BODY)
    packed = codec.pack(BODY)
    assert packed[0] == 0x01 and plain[0] == 0x02
    assert len(packed) < len(plain) < len(BODY)


def test_uncompressed_blobs_of_version_1_stores_read_as_they_are(codec: Codec) -> None:
    assert codec.unpack(BODY) == BODY


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("truncated", lambda b: b[: len(b) // 2]),
        ("bit flipped", lambda b: b[:10] + bytes([b[10] ^ 0x40]) + b[11:]),
        ("marker only", lambda b: b[:1]),
        (
            "no size stated",
            lambda b: b"\x02" + zstandard.ZstdCompressor(write_content_size=False).compress(BODY),
        ),
    ],
)
def test_a_damaged_blob_is_refused_never_returned(codec: Codec, name: str, damage: object) -> None:
    packed = codec.pack(BODY)
    assert callable(damage)
    bad = damage(packed)
    outcome: bytes | str
    try:
        outcome = codec.unpack(bad)
    except StorageError as exc:
        outcome = exc.code
    # A flip inside a literal can still decompress: then to other bytes, never BODY.
    assert outcome == "store_damaged" or (isinstance(outcome, bytes) and outcome != BODY), name


def test_a_blob_claiming_a_huge_size_is_refused_without_allocating_it(codec: Codec) -> None:
    bomb = b"\x02" + zstandard.ZstdCompressor().compress(b"\x00" * (MAX_EXPANDED + 1))
    assert len(bomb) < 10_000
    with pytest.raises(StorageError) as info:
        codec.unpack(bomb)
    assert info.value.code == "store_damaged"


def test_a_dictionary_frame_without_the_dictionary_is_damage(codec: Codec) -> None:
    with pytest.raises(StorageError) as info:
        Codec(None).unpack(codec.pack(BODY))
    assert info.value.code == "store_damaged"


def test_the_store_keeps_compressed_bytes_and_serves_the_originals(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    state = json.dumps({"history": [BODY.decode()] * 5}).encode()
    with store.write_block() as w:
        w.insert_txs([(0, hashlib.sha256(BODY).hexdigest(), 1, "ok", True, BODY, (b"s" * 64,))])
        w.write_state({"vehicle/X": state})
    assert store.txs_range(0, 1)[0].body == BODY
    assert store.get_state("vehicle/X") == state
    assert store.get_states(["vehicle/X"]) == {"vehicle/X": state}
    assert store.state_prefix("vehicle/") == [("vehicle/X", state)]
    body_blob, value_blob, value_hash = store.conn.execute(
        "SELECT t.body, s.value, s.value_hash FROM txs t, state s"
    ).fetchone()
    assert body_blob[0] == 0x01 and len(body_blob) < len(BODY) / 2
    assert value_blob[0] == 0x01 and len(value_blob) < len(state) / 2
    assert value_hash == hashlib.sha256(state).digest()  # the state tree hashes originals
    store.close()


def test_a_version_1_store_is_upgraded_and_its_old_rows_still_read(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("DELETE FROM meta WHERE key = 'zstd_dictionary'")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (b"1",))
    conn.execute(
        "INSERT INTO state (key_hash, key, value, value_hash) VALUES (?, ?, ?, ?)",
        (hashlib.sha256(b"k/1").digest(), "k/1", BODY, hashlib.sha256(BODY).digest()),
    )
    conn.commit()
    conn.close()
    store = SQLiteStore.open(tmp_path / "a.db")
    assert store.get_meta("schema_version") == b"2"
    assert store.get_meta("zstd_dictionary") == packaged_dictionary()
    assert store.get_state("k/1") == BODY
    store.close()


def test_a_damaged_state_value_is_refused_by_the_store(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "a.db")
    with store.write_block() as w:
        w.write_state({"vehicle/X": BODY})
    store.conn.execute("UPDATE state SET value = X'01DEADBEEF'")
    with pytest.raises(StorageError) as info:
        store.get_state("vehicle/X")
    assert info.value.code == "store_damaged"
    assert "vehicle/X" in str(info.value)
    store.close()
