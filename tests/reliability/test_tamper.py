"""Tamper evidence: an edit of any table of a node's store is caught.

Each case copies a demo chain's data directory, edits one thing with plain SQL (as
someone with access to the disk would), and checks the three lines of defence:

- ``carledger verify`` (the full audit) reports a finding in the edited table;
- the node, opening the store, refuses it with a stable code when the edit touches
  the newest data, which the start-up check covers (the last blocks' headers and
  links, the head block's transactions and log leaves, recent checkpoint signatures,
  the state and log roots, nothing beyond the head); an edit of older history needs
  the full audit, which ``carledger up --verify-store`` runs before serving;
- a report served by a node that was running while its store was edited either is
  refused by the node or fails offline verification, whenever the edit touches
  something the report shows. (An edit the report does not depend on, such as a
  nonce row or the validity code the node displays, leaves a report that is still
  true: its proofs come from the untouched log and state tree.)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from reliability_support import audit, report_figures

from carledger.errors import LedgerError, VerificationFailure
from carledger.ledger.ledger import Ledger
from carledger.node.demo import create_demo
from carledger.node.home import Home
from carledger.report.build import report_for
from carledger.store.codec import Codec
from carledger.verifier import verify_report

SEED = 5
VEHICLES = 6


@dataclass(frozen=True)
class Target:
    """Where the edits aim: the VIN with the most records and one old record of it."""

    vin: str
    seq: int  # an old record of the VIN (more than 8 blocks below the head)
    height: int  # its block
    head: int
    log_size: int


@dataclass(frozen=True)
class Case:
    name: str
    edit: Callable[[sqlite3.Connection, Target], None]
    table: str  # where the audit must find it
    at_start: str | None  # the code the node refuses to start with (None: history)
    report: bool  # whether a report of the target VIN depends on the edited data


def _flip(blob: bytes, at: int = -5) -> bytes:
    out = bytearray(blob)
    out[at] ^= 0x01
    return bytes(out)


def _codec(conn: sqlite3.Connection) -> Codec:
    """The store's own compression (codec.py): edits are written as carledger writes."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'zstd_dictionary'").fetchone()
    return Codec(bytes(row[0]))


def _body(conn: sqlite3.Connection, seq: int) -> bytes:
    blob = bytes(conn.execute("SELECT body FROM txs WHERE seq = ?", (seq,)).fetchone()[0])
    return _codec(conn).unpack(blob)


def _digit_changed(body: bytes) -> bytes:
    """The body with its last digit changed: still JSON, no longer what was signed."""
    i = max(i for i, c in enumerate(body) if chr(c).isdigit())
    return body[:i] + (b"1" if body[i : i + 1] != b"1" else b"2") + body[i + 1 :]


def edit_record_bytes(conn: sqlite3.Connection, t: Target) -> None:
    edited = _codec(conn).pack(_digit_changed(_body(conn, t.seq)))
    conn.execute("UPDATE txs SET body = ? WHERE seq = ?", (edited, t.seq))


def edit_record_bytes_uncompressed(conn: sqlite3.Connection, t: Target) -> None:
    # Stores written before schema version 2 hold bodies as they are: so may an editor.
    conn.execute(
        "UPDATE txs SET body = ? WHERE seq = ?", (_digit_changed(_body(conn, t.seq)), t.seq)
    )


def garble_record_blob(conn: sqlite3.Connection, t: Target) -> None:
    # One bit of the compressed form: it no longer decompresses, or not to what was signed.
    blob = bytes(conn.execute("SELECT body FROM txs WHERE seq = ?", (t.seq,)).fetchone()[0])
    conn.execute("UPDATE txs SET body = ? WHERE seq = ?", (_flip(blob, len(blob) // 2), t.seq))


def edit_record_and_id(conn: sqlite3.Connection, t: Target) -> None:
    body = _digit_changed(_body(conn, t.seq))
    conn.execute(
        "UPDATE txs SET body = ?, id = ? WHERE seq = ?",
        (_codec(conn).pack(body), hashlib.sha256(body).digest(), t.seq),
    )


def edit_signature(conn: sqlite3.Connection, t: Target) -> None:
    sigs = bytes(conn.execute("SELECT sigs FROM txs WHERE seq = ?", (t.seq,)).fetchone()[0])
    conn.execute("UPDATE txs SET sigs = ? WHERE seq = ?", (_flip(sigs), t.seq))


def edit_validity_code(conn: sqlite3.Connection, t: Target) -> None:
    conn.execute("UPDATE txs SET code = 'stale_head' WHERE seq = ?", (t.seq,))


def _vehicle_row(conn: sqlite3.Connection, t: Target) -> tuple[bytes, dict[str, Any]]:
    (blob,) = conn.execute(
        "SELECT value FROM state WHERE key = ?", (f"vehicle/{t.vin}",)
    ).fetchone()
    value = _codec(conn).unpack(bytes(blob))
    return value, json.loads(value)


def _odometer_lowered(conn: sqlite3.Connection, t: Target) -> bytes:
    raw, doc = _vehicle_row(conn, t)
    text = raw.decode()
    i = text.index('"km":') + 5
    j = i
    while text[j].isdigit():
        j += 1
    edited = text[:i] + "1" + text[j:]
    assert edited != text and doc
    return edited.encode()


def edit_state_value(conn: sqlite3.Connection, t: Target) -> None:
    edited = _codec(conn).pack(_odometer_lowered(conn, t))
    conn.execute("UPDATE state SET value = ? WHERE key = ?", (edited, f"vehicle/{t.vin}"))


def edit_state_value_and_hash(conn: sqlite3.Connection, t: Target) -> None:
    value = _odometer_lowered(conn, t)
    conn.execute(
        "UPDATE state SET value = ?, value_hash = ? WHERE key = ?",
        (_codec(conn).pack(value), hashlib.sha256(value).digest(), f"vehicle/{t.vin}"),
    )


def delete_state_row(conn: sqlite3.Connection, t: Target) -> None:
    conn.execute("DELETE FROM state WHERE key = ?", (f"vehicle/{t.vin}",))


def edit_log_node_on_path(conn: sqlite3.Connection, t: Target) -> None:
    # The target's sibling leaf: on its inclusion path, not on the log's right edge.
    conn.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE id = ?", (t.seq ^ 1,))


def edit_log_right_edge(conn: sqlite3.Connection, t: Target) -> None:
    del t
    conn.execute(
        "UPDATE log_nodes SET hash = zeroblob(32) WHERE id = (SELECT max(id) FROM log_nodes)"
    )


def edit_smt_bucket(conn: sqlite3.Connection, t: Target) -> None:
    del t
    conn.execute(
        "UPDATE smt_buckets SET hash = randomblob(32) "
        "WHERE idx = (SELECT min(idx) FROM smt_buckets WHERE count > 0)"
    )


def break_smt_bucket(conn: sqlite3.Connection, t: Target) -> None:
    del t
    conn.execute(
        "UPDATE smt_buckets SET hash = zeroblob(32) WHERE idx = (SELECT min(idx) FROM smt_buckets)"
    )


def _header(conn: sqlite3.Connection, height: int) -> dict[str, Any]:
    (raw,) = conn.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()
    return dict(json.loads(raw))


def _put_header(conn: sqlite3.Connection, height: int, header: dict[str, Any]) -> None:
    from carledger.encoding import canonical

    conn.execute(
        "UPDATE blocks SET header = ? WHERE height = ?", (canonical.encode(header), height)
    )


def edit_old_header_time(conn: sqlite3.Connection, t: Target) -> None:
    header = _header(conn, t.height)
    header["time"] = header["time"][:-4] + "999Z"  # still a valid time, a different one
    _put_header(conn, t.height, header)


def edit_head_header(conn: sqlite3.Connection, t: Target) -> None:
    header = _header(conn, t.head)
    header["proposer"] = "mallory"
    _put_header(conn, t.head, header)


def edit_old_block_hash(conn: sqlite3.Connection, t: Target) -> None:
    conn.execute("UPDATE blocks SET hash = zeroblob(32) WHERE height = ?", (t.height,))


def edit_head_checkpoint_signature(conn: sqlite3.Connection, t: Target) -> None:
    (sig,) = conn.execute(
        "SELECT signature FROM checkpoint_sigs WHERE height = ?", (t.head,)
    ).fetchone()
    conn.execute(
        "UPDATE checkpoint_sigs SET signature = ? WHERE height = ?", (_flip(bytes(sig)), t.head)
    )


def delete_head_checkpoint_signature(conn: sqlite3.Connection, t: Target) -> None:
    conn.execute("DELETE FROM checkpoint_sigs WHERE height = ?", (t.head,))


def edit_old_checkpoint_signature(conn: sqlite3.Connection, t: Target) -> None:
    (sig,) = conn.execute(
        "SELECT signature FROM checkpoint_sigs WHERE height = ?", (t.height,)
    ).fetchone()
    conn.execute(
        "UPDATE checkpoint_sigs SET signature = ? WHERE height = ?", (_flip(bytes(sig)), t.height)
    )


def delete_vin_index_row(conn: sqlite3.Connection, t: Target) -> None:
    conn.execute("DELETE FROM vin_index WHERE vin = ? AND seq = ?", (t.vin, t.seq))


def add_vin_index_row(conn: sqlite3.Connection, t: Target) -> None:
    (other,) = conn.execute(
        "SELECT min(seq) FROM vin_index WHERE vin != ? AND seq NOT IN "
        "(SELECT seq FROM vin_index WHERE vin = ?)",
        (t.vin, t.vin),
    ).fetchone()
    conn.execute("INSERT INTO vin_index (vin, seq) VALUES (?, ?)", (t.vin, other))


def delete_nonce(conn: sqlite3.Connection, t: Target) -> None:
    del t
    (signer, nonce) = conn.execute("SELECT signer, nonce FROM nonces LIMIT 1").fetchone()
    conn.execute("DELETE FROM nonces WHERE signer = ? AND nonce = ?", (signer, nonce))


def edit_head_record(conn: sqlite3.Connection, t: Target) -> None:
    seq = t.log_size - 1
    edited = _codec(conn).pack(_digit_changed(_body(conn, seq)))
    conn.execute("UPDATE txs SET body = ? WHERE seq = ?", (edited, seq))


def add_tx_beyond_head(conn: sqlite3.Connection, t: Target) -> None:
    conn.execute(
        "INSERT INTO txs (seq, id, height, code, auth, body, sigs) "
        "SELECT ?, id, ?, code, auth, body, sigs FROM txs WHERE seq = ?",
        (t.log_size, t.head + 1, t.seq),
    )


def edit_stored_genesis(conn: sqlite3.Connection, t: Target) -> None:
    del t
    conn.execute(
        "UPDATE meta SET value = CAST(replace(CAST(value AS TEXT), 'Seoul', 'Busan') AS BLOB) "
        "WHERE key = 'genesis'"
    )


CASES = [
    Case("record bytes", edit_record_bytes, "txs", None, True),
    Case("record bytes, stored uncompressed", edit_record_bytes_uncompressed, "txs", None, True),
    Case("record's compressed form garbled", garble_record_blob, "txs", None, True),
    Case("record bytes and id", edit_record_and_id, "txs", None, True),
    Case("record signature", edit_signature, "txs", None, True),
    Case("validity code", edit_validity_code, "txs", None, False),
    Case("state value", edit_state_value, "state", None, True),
    Case("state value and hash", edit_state_value_and_hash, "state", None, True),
    Case("state row deleted", delete_state_row, "state", None, True),
    Case("log node on a proof path", edit_log_node_on_path, "log_nodes", None, True),
    Case(
        "log node on the right edge", edit_log_right_edge, "log_nodes", "log_root_mismatch", False
    ),
    Case("state tree bucket", edit_smt_bucket, "smt_buckets", "state_root_mismatch", False),
    Case(
        "state tree bucket malformed", break_smt_bucket, "smt_buckets", "invalid_bucket_row", False
    ),
    Case("old block header", edit_old_header_time, "blocks", None, True),
    Case("head block header", edit_head_header, "blocks", "block_hash_mismatch", True),
    Case("old block hash", edit_old_block_hash, "blocks", None, False),
    Case(
        "head checkpoint signature",
        edit_head_checkpoint_signature,
        "checkpoint_sigs",
        "checkpoint_signature_invalid",
        True,
    ),
    Case(
        "head checkpoint signature deleted",
        delete_head_checkpoint_signature,
        "checkpoint_sigs",
        "checkpoint_signature_missing",
        True,
    ),
    Case("old checkpoint signature", edit_old_checkpoint_signature, "checkpoint_sigs", None, False),
    Case("per-VIN index row deleted", delete_vin_index_row, "vin_index", None, True),
    Case("per-VIN index row added", add_vin_index_row, "vin_index", None, True),
    Case("nonce deleted", delete_nonce, "nonces", None, False),
    Case("head block record", edit_head_record, "txs", "head_txs_mismatch", False),
    Case("transaction beyond the head", add_tx_beyond_head, "txs", "store_has_extra_rows", False),
    # The audit trusts the store's own genesis unless given one: block 0 no longer follows it.
    Case("stored genesis", edit_stored_genesis, "blocks", "genesis_mismatch", False),
]


@dataclass
class Pristine:
    path: Path
    target: Target


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    path = tmp_path_factory.mktemp("tamper") / "node"
    create_demo(Home(path), vehicles=VEHICLES, seed=SEED)
    conn = sqlite3.connect(path / "ledger.db")
    try:
        head, log_size = conn.execute(
            "SELECT height, json_extract(header, '$.log_size') FROM blocks "
            "ORDER BY height DESC LIMIT 1"
        ).fetchone()
        (vin,) = conn.execute(
            "SELECT vin FROM vin_index GROUP BY vin ORDER BY count(*) DESC, vin LIMIT 1"
        ).fetchone()
        rows = conn.execute(
            "SELECT v.seq, t.height FROM vin_index v JOIN txs t ON t.seq = v.seq "
            "WHERE v.vin = ? AND t.height < ? ORDER BY v.seq",
            (vin, head - 8),
        ).fetchall()
    finally:
        conn.close()
    seq, height = rows[len(rows) // 2]
    return Pristine(path, Target(vin, seq, height, head, log_size))


@pytest.fixture
def copy(pristine: Pristine, tmp_path: Path) -> Path:
    target = tmp_path / "node"
    shutil.copytree(pristine.path, target)
    return target


def _edit(data: Path, case: Case, target: Target) -> None:
    conn = sqlite3.connect(data / "ledger.db", isolation_level=None)
    try:
        conn.execute("BEGIN")
        case.edit(conn, target)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _report_outcome(ledger: Ledger, vin: str) -> str:
    """What a running node serves after the edit: refused, failing, or verifying."""
    try:
        report = report_for(ledger, vin)
    except LedgerError as exc:
        return f"refused:{exc.code}"
    try:
        verify_report(json.loads(json.dumps(report)), ledger.genesis)
    except VerificationFailure as exc:
        return f"fails:{exc.code}"
    return "verifies"


OUTCOMES: dict[str, dict[str, Any]] = {}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tampering_is_detected(case: Case, pristine: Pristine, copy: Path) -> None:
    target = pristine.target
    home = Home(copy)
    running = home.open_ledger(None)  # the node, running while its disk is edited
    try:
        assert _report_outcome(running, target.vin) == "verifies"
        _edit(copy, case, target)
        report = _report_outcome(running, target.vin)
    finally:
        running.store.close()  # type: ignore[attr-defined]

    # 1. the full audit (carledger verify) names the edited table
    result = audit(copy)
    assert not result.ok
    assert result.findings[0].table == case.table, [str(f) for f in result.findings]

    # 2. the node at start
    if case.at_start is None:
        home.open_ledger(None).store.close()  # type: ignore[attr-defined]
        started = "opens (history: --verify-store refuses)"
    else:
        with pytest.raises(LedgerError) as info:
            home.open_ledger(None)
        assert info.value.code == case.at_start, info.value
        started = f"refused:{info.value.code}"

    # 3. a report the running node serves
    if case.report:
        assert report != "verifies", report
    OUTCOMES[case.name] = {
        "verify": str(result.findings[0]),
        "start": started,
        "report": report,
    }


def test_tamper_figures() -> None:
    # Runs after the cases (same module, in order): the table docs/guarantees.md shows.
    assert len(OUTCOMES) == len(CASES)
    report_figures("tamper", {"cases": len(CASES), "outcomes": OUTCOMES})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carledger", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_refuses_a_tampered_store(pristine: Pristine, tmp_path: Path) -> None:
    head_edit, history_edit = tmp_path / "head", tmp_path / "history"
    cases = {c.name: c for c in CASES}
    for path, case in (
        (head_edit, cases["head block header"]),
        (history_edit, cases["record bytes"]),
    ):
        shutil.copytree(pristine.path, path)
        _edit(path, case, pristine.target)
    # The head header edit: `carledger up` refuses at once, naming the code.
    done = _cli("up", "--data", str(head_edit), "--port", "1")
    assert done.returncode == 1
    assert "[block_hash_mismatch]" in done.stderr
    # Old history: `carledger verify` and `carledger up --verify-store` find it.
    done = _cli("verify", "--data", str(history_edit), "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["findings"][0]["table"] == "txs"
    done = _cli("up", "--data", str(history_edit), "--port", "1", "--verify-store")
    assert done.returncode == 1
    assert "[store_audit_failed]" in done.stderr
