"""Audit of a node's whole store: replay from genesis and compare every byte.

``carledger verify --data DIR`` runs :func:`audit_store`. It re-executes every
stored block from the genesis into a scratch store, with the same code every node
runs, and compares: each transaction's id with the hash of its stored bytes, each
signature, each block header (and its stored hash), each validity code, then the
whole state table, the per-VIN index, the state tree's buckets and the log's Merkle
nodes, and every stored checkpoint signature. The first disagreement is reported
with its height, table and row: editing any committed byte is caught.

:func:`check_at_start` is the cheap part a node runs every time it opens its store
(work of one block, whatever the chain's length): the last blocks' stored hashes and
links, the head block's transactions and log leaves, the head's checkpoint
signatures, and that nothing lies beyond the head. With the state and log roots
that :class:`~carledger.ledger.ledger.Ledger` checks when it loads, an edit of the
newest data is refused at start; older history needs the full audit
(``carledger verify``, or ``carledger up --verify-store``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from carledger.crypto.keys import verify_signature
from carledger.errors import LedgerError, StorageError
from carledger.ledger import merkle
from carledger.ledger.block import BlockHeader, Proposal, RawTx, leaf_input, tx_root
from carledger.ledger.contracts import ContractRegistry
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger
from carledger.store.sqlite import SQLiteStore

__all__ = ["AuditReport", "Finding", "audit_store", "check_at_start"]


@dataclass(frozen=True, slots=True)
class Finding:
    height: int | None
    table: str
    row: str
    message: str

    def __str__(self) -> str:
        where = f"height {self.height}, " if self.height is not None else ""
        return f"{where}{self.table} row {self.row}: {self.message}"


@dataclass(slots=True)
class AuditReport:
    height: int = 0
    blocks: int = 0
    transactions: int = 0
    state_rows: int = 0
    checkpoint_signatures: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "height": self.height,
            "blocks": self.blocks,
            "transactions": self.transactions,
            "state_rows": self.state_rows,
            "checkpoint_signatures": self.checkpoint_signatures,
            "findings": [
                {"height": f.height, "table": f.table, "row": f.row, "message": f.message}
                for f in self.findings
            ],
        }


def audit_store(
    store: SQLiteStore,
    registry_for: Callable[[Genesis], ContractRegistry],
    *,
    genesis: Genesis | None = None,
    progress: Callable[[int, int], None] | None = None,
    signer: str | None = None,
) -> AuditReport:
    """Audit ``store`` from genesis. Never raises for damage: it is reported as findings.

    ``genesis`` (optional) is the document the auditor trusts; without it the
    store's own copy is used (and only checked for consistency with block 0).
    ``signer`` (optional) is the validator id of the node that wrote the store: it
    signs every block it commits, so a block without its signature was altered.
    A damaged file (SQLite's own structure check, or a page that cannot be read)
    is a finding in table ``file``.
    """
    report = AuditReport()
    try:
        damage = [str(r[0]) for r in store.conn.execute("PRAGMA quick_check")]
        if damage != ["ok"]:
            report.findings.append(
                Finding(None, "file", "structure", f"SQLite finds the file damaged: {damage[0]}")
            )
            return report
        _audit(store, registry_for, report, genesis, progress, signer)
    except sqlite3.DatabaseError as exc:
        report.findings.append(Finding(None, "file", "pages", f"The file is damaged: {exc}."))
    return report


def _audit(
    store: SQLiteStore,
    registry_for: Callable[[Genesis], ContractRegistry],
    report: AuditReport,
    genesis: Genesis | None,
    progress: Callable[[int, int], None] | None,
    signer: str | None,
) -> None:
    stored_genesis = store.get_meta("genesis")
    if stored_genesis is None:
        report.findings.append(Finding(None, "meta", "genesis", "The store has no genesis."))
        return
    try:
        own = Genesis.from_dict(json.loads(stored_genesis))
    except (LedgerError, ValueError) as exc:
        report.findings.append(Finding(None, "meta", "genesis", f"Unreadable genesis: {exc}"))
        return
    if own.bytes != stored_genesis:
        report.findings.append(
            Finding(None, "meta", "genesis", "The stored genesis is not in canonical form.")
        )
        return
    if genesis is not None and genesis.hash != own.hash:
        report.findings.append(
            Finding(None, "meta", "genesis", "The store's genesis differs from the one given.")
        )
        return
    genesis = genesis or own
    head = store.head()
    if head is None:
        report.findings.append(Finding(None, "blocks", "0", "The store has no blocks."))
        return
    report.height = head[0]
    with tempfile.TemporaryDirectory(prefix="carledger-audit-") as scratch:
        replay_store = SQLiteStore.open(Path(scratch) / "replay.db")
        try:
            replay = Ledger(replay_store, genesis, registry_for(genesis))
            _replay_blocks(store, replay, report, progress)
            if report.ok:
                _compare_tables(store, replay_store, report)
        finally:
            replay_store.close()
    if report.ok:
        _check_checkpoints(store, replay, report, signer)


def _replay_blocks(
    store: SQLiteStore,
    replay: Ledger,
    report: AuditReport,
    progress: Callable[[int, int], None] | None,
) -> None:
    height = report.height
    stored0 = store.block(0)
    if not _same_block(0, stored0, replay.head, report):
        return
    report.blocks = 1
    for h in range(1, height + 1):
        raw_header = store.block(h)
        if raw_header is None:
            report.findings.append(Finding(h, "blocks", str(h), "The block is missing."))
            return
        try:
            header = BlockHeader.from_bytes(raw_header)
        except LedgerError as exc:
            report.findings.append(Finding(h, "blocks", str(h), f"Unreadable header: {exc}"))
            return
        first = replay.head.log_size
        stored_txs = store.txs_range(first, header.log_size) if header.log_size >= first else []
        raws = []
        for tx in stored_txs:
            if hashlib.sha256(tx.body).hexdigest() != tx.id:
                report.findings.append(
                    Finding(h, "txs", f"seq {tx.seq}", "The stored bytes do not hash to the id.")
                )
                return
            if tx.height != h:
                report.findings.append(
                    Finding(h, "txs", f"seq {tx.seq}", f"Recorded at height {tx.height}.")
                )
                return
            raws.append(RawTx(tx.body, tx.signatures))
        try:
            committed = replay.apply(Proposal(h, header.time, header.proposer, tuple(raws)))
        except LedgerError as exc:
            report.findings.append(Finding(h, "blocks", str(h), f"Replay refused: {exc}"))
            return
        for tx, result in zip(stored_txs, committed.results, strict=True):
            if tx.code != result.code:
                report.findings.append(
                    Finding(
                        h,
                        "txs",
                        f"seq {tx.seq}",
                        f"Stored validity code {tx.code!r}, replay gives {result.code!r}.",
                    )
                )
                return
        if not _same_block(h, raw_header, committed.header, report):
            return
        report.blocks += 1
        report.transactions += len(raws)
        if progress:
            progress(h, height)


def _same_block(
    height: int, stored: bytes | None, replayed: BlockHeader, report: AuditReport
) -> bool:
    if stored is None:
        report.findings.append(Finding(height, "blocks", str(height), "The block is missing."))
        return False
    try:
        header = BlockHeader.from_bytes(stored)
    except LedgerError as exc:
        report.findings.append(Finding(height, "blocks", str(height), f"Unreadable: {exc}"))
        return False
    for name, value in replayed.to_dict().items():
        if getattr(header, name) != value:
            report.findings.append(
                Finding(
                    height,
                    "blocks",
                    str(height),
                    f"Header field {name} is {getattr(header, name)!r}; replay gives {value!r}.",
                )
            )
            return False
    if header.encoded != stored:
        report.findings.append(
            Finding(height, "blocks", str(height), "The header bytes are not canonical.")
        )
        return False
    return True


def _rows(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[object, ...]]:
    yield from conn.execute(sql)


_TABLES = [
    ("blocks", "SELECT height, hash, header FROM blocks ORDER BY height"),
    ("txs", "SELECT seq, id, height, code, auth, body, sigs FROM txs ORDER BY seq"),
    ("state", "SELECT key_hash, key, value, value_hash FROM state ORDER BY key_hash"),
    ("vin_index", "SELECT vin, seq FROM vin_index ORDER BY vin, seq"),
    ("nonces", "SELECT signer, nonce FROM nonces ORDER BY signer, nonce"),
    ("smt_buckets", "SELECT idx, hash, count FROM smt_buckets ORDER BY idx"),
    ("log_nodes", "SELECT id, hash FROM log_nodes ORDER BY id"),
]


def _describe(table: str, row: tuple[object, ...]) -> str:
    if table == "state":
        return f"key {row[1]!r}"
    if table == "log_nodes":
        node = int(str(row[0]))
        return f"level {node >> 48} index {node & ((1 << 48) - 1)}"
    first = row[0]
    return first.hex() if isinstance(first, bytes) else str(first)


#: The compressed column of a table (codec.py): compared by its original bytes, since
#: a store keeps the dictionary it was created with.
_PACKED = {"txs": 5, "state": 2}


def _unpacked(
    rows: Iterator[tuple[object, ...]], store: SQLiteStore, column: int | None
) -> Iterator[tuple[object, ...]]:
    if column is None:
        yield from rows
        return
    for row in rows:
        blob = row[column]
        if isinstance(blob, bytes):
            # A blob that does not decompress is compared as stored: it differs.
            with contextlib.suppress(StorageError):
                blob = store.codec.unpack(blob)
        yield (*row[:column], blob, *row[column + 1 :])


def _compare_tables(store: SQLiteStore, replay: SQLiteStore, report: AuditReport) -> None:
    for table, sql in _TABLES:
        column = _PACKED.get(table)
        ours = _unpacked(_rows(store.conn, sql), store, column)
        theirs = _unpacked(_rows(replay.conn, sql), replay, column)
        count = 0
        while True:
            a = next(ours, None)
            b = next(theirs, None)
            if a is None and b is None:
                break
            if a != b:
                row = a if a is not None else b
                assert row is not None
                if a is None:
                    message = "A row is missing from the store."
                elif b is None:
                    message = "The store has a row that replay does not produce."
                else:
                    message = "The stored row differs from the replayed one."
                    if table == "state" and a[0] == b[0]:
                        message = "The stored state value differs from the replayed one."
                report.findings.append(Finding(None, table, _describe(table, row), message))
                return
            count += 1
        if table == "state":
            report.state_rows = count


def _check_checkpoints(
    store: SQLiteStore, replay: Ledger, report: AuditReport, signer: str | None
) -> None:
    keys = replay.genesis.validator_keys()
    validators = replay.state("validators")
    if validators:
        keys.update({n["id"]: n["key"] for n in validators["nodes"]})
    for height in range(report.height + 1):
        raw = store.block(height)
        if raw is None:
            continue
        header = BlockHeader.from_bytes(raw)
        data = header.checkpoint().signing_bytes()
        signatures = store.checkpoint_sigs(height)
        if signer is not None and signer not in {v for v, _ in signatures}:
            report.findings.append(
                Finding(
                    height,
                    "checkpoint_sigs",
                    signer,
                    "This node's own checkpoint signature is missing.",
                )
            )
            return
        for validator, sig in signatures:
            key = keys.get(validator)
            if key is None or not verify_signature(bytes.fromhex(key), data, sig):
                report.findings.append(
                    Finding(
                        height,
                        "checkpoint_sigs",
                        validator,
                        "The checkpoint signature does not verify with the validator's key.",
                    )
                )
                return
            report.checkpoint_signatures += 1


#: How many blocks below the head :func:`check_at_start` re-hashes and links.
RECENT_BLOCKS = 8


def _altered(code: str, message: str) -> StorageError:
    return StorageError(
        code,
        f"{message} The store was altered or damaged; run `carledger verify` to locate the "
        "damage, then restore it from a backup or re-sync it from peers.",
    )


def check_at_start(ledger: Ledger, store: SQLiteStore) -> None:
    """Cheap integrity checks of ``store`` under a loaded ``ledger`` (before serving).

    Work is bounded by one block and :data:`RECENT_BLOCKS` headers. Raises
    :class:`StorageError`: ``block_hash_mismatch`` (a recent header does not hash to
    its stored hash, or is not canonical), ``block_link_broken`` (a recent header
    does not name its predecessor), ``head_txs_mismatch`` (the head block's stored
    transactions are not the ones its header commits to), ``log_leaf_mismatch`` (a
    stored log leaf of the head block differs from its transaction),
    ``checkpoint_signature_invalid`` / ``checkpoint_signature_missing`` (a recent
    checkpoint signature does not verify / this validator's own is gone) and
    ``store_has_extra_rows`` (transactions or signatures beyond the head).
    """
    head = ledger.head
    keys = ledger.genesis.validator_keys()
    validators = ledger.state("validators")
    if validators:
        keys.update({n["id"]: n["key"] for n in validators["nodes"]})
    own = None
    if ledger.identity is not None:
        # This node signs every block it commits, also before it is a validator in force.
        own = ledger.identity.validator
        keys[own] = ledger.identity.key.public_hex
    previous: str | None = None
    for height, stored_hash, raw in store.blocks(
        max(0, head.height - RECENT_BLOCKS), head.height + 1
    ):
        try:
            header = BlockHeader.from_bytes(raw)
        except LedgerError as exc:
            raise _altered(
                "block_hash_mismatch", f"Block {height}'s header is unreadable."
            ) from exc
        if header.encoded != raw or header.hash != stored_hash.hex() or header.height != height:
            raise _altered(
                "block_hash_mismatch", f"Block {height}'s header does not hash to its stored hash."
            )
        expected = ledger.genesis.hash if height == 0 else previous
        if expected is not None and header.prev != expected:
            raise _altered(
                "block_link_broken", f"Block {height} does not name block {height - 1} as previous."
            )
        previous = header.hash
        data = header.checkpoint().signing_bytes()
        signed = dict(store.checkpoint_sigs(height))
        for validator, sig in signed.items():
            key = keys.get(validator)
            if key is None or not verify_signature(bytes.fromhex(key), data, sig):
                raise _altered(
                    "checkpoint_signature_invalid",
                    f"The checkpoint signature of {validator} at height {height} does not verify.",
                )
        if own is not None and height == head.height and own not in signed:
            raise _altered(
                "checkpoint_signature_missing",
                f"This validator's own checkpoint signature at height {height} is missing.",
            )
    if previous != head.hash:
        raise _altered("block_hash_mismatch", f"The head block {head.height} is not the last one.")
    first = head.log_size - head.tx_count
    txs = store.txs_range(first, head.log_size)
    leaves = [leaf_input(t.id, head.height, head.time, t.code) for t in txs]
    if (
        len(txs) != head.tx_count
        or any(hashlib.sha256(t.body).hexdigest() != t.id or t.height != head.height for t in txs)
        or tx_root(leaves) != head.tx_root
    ):
        raise _altered(
            "head_txs_mismatch",
            f"The stored transactions of block {head.height} are not those its header commits to.",
        )
    stored_leaves = store.get_nodes([(0, first + i) for i in range(len(leaves))])
    for i, (leaf, stored) in enumerate(zip(leaves, stored_leaves, strict=True)):
        if merkle.leaf_hash(leaf) != stored:
            raise _altered(
                "log_leaf_mismatch", f"The stored log leaf {first + i} does not match its record."
            )
    conn = store.conn
    (max_seq,) = conn.execute("SELECT max(seq) FROM txs").fetchone()
    (max_sig,) = conn.execute("SELECT max(height) FROM checkpoint_sigs").fetchone()
    if (max_seq is not None and max_seq >= head.log_size) or (
        max_sig is not None and max_sig > head.height
    ):
        raise _altered(
            "store_has_extra_rows",
            f"The store holds transactions or signatures beyond block {head.height}.",
        )


def open_for_audit(path: Path) -> SQLiteStore:
    if not path.exists():
        raise StorageError("store_missing", f"There is no store at {path}.")
    return SQLiteStore.open(path)
