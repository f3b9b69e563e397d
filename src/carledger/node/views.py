"""Read models over a node's ledger: what the API, the web pages and the CLI show.

Every function returns plain JSON-ready dicts and raises :class:`NotFound` /
:class:`InvalidInput` with stable codes; none of them writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from carledger.errors import (
    InvalidInput,
    LedgerError,
    NotFound,
    StorageError,
    VerificationFailure,
)
from carledger.ledger import merkle
from carledger.ledger.block import BlockHeader, CheckpointSignature, leaf_input, tx_root
from carledger.ledger.genesis import checkpoint_quorum
from carledger.ledger.ledger import Ledger
from carledger.store.sqlite import SQLiteStore, StoredTx

__all__ = [
    "block_transactions_view",
    "block_view",
    "checkpoint_view",
    "consistency_view",
    "record_view",
    "transaction_view",
]

MAX_PAGE = 500


def _store(ledger: Ledger) -> SQLiteStore:
    store = ledger.store
    assert isinstance(store, SQLiteStore)
    return store


def check_tx_id(tx_id: str) -> str:
    if len(tx_id) != 64 or any(c not in "0123456789abcdef" for c in tx_id):
        raise InvalidInput("invalid_tx_id", "A transaction id is 64 lowercase hex characters.")
    return tx_id


def record_view(ledger: Ledger, tx: StoredTx, *, with_raw: bool = False) -> dict[str, Any]:
    """One committed transaction: envelope fields, signers' provenance, validity."""
    envelope = json.loads(tx.body)
    signers = []
    for key in envelope.get("signers", []):
        member = ledger.state(f"member/{key}") or {}
        signers.append(
            {
                "key": key,
                "org": member.get("org"),
                "member": member.get("member"),
                "roles": member.get("roles", []),
            }
        )
    head = ledger.head
    block_time = _block_time(ledger, tx.height) if tx.height <= head.height else None
    if block_time is None and tx.height <= head.height:
        raise _damaged(f"block {tx.height} of transaction {tx.id} (it is missing)")
    view: dict[str, Any] = {
        "id": tx.id,
        "seq": tx.seq,
        "height": tx.height,
        "code": tx.code,
        "valid": tx.code == "ok",
        "type": envelope.get("type"),
        "created": envelope.get("created"),
        "payload": envelope.get("payload"),
        "signers": signers,
        "block_time": block_time,
    }
    if with_raw:
        view["raw"] = {
            "body": base64.b64encode(tx.body).decode("ascii"),
            "signatures": [s.hex() for s in tx.signatures],
        }
    return view


def _block_time(ledger: Ledger, height: int) -> str | None:
    raw = _store(ledger).block(height)
    return None if raw is None else BlockHeader.from_bytes(raw).time


def transaction_view(ledger: Ledger, tx_id: str) -> dict[str, Any]:
    """A committed transaction with its inclusion proof against the head's log."""
    tx = _store(ledger).tx_by_id(check_tx_id(tx_id))
    if tx is None:
        raise NotFound("unknown_transaction", f"No committed transaction has id {tx_id}.")
    with ledger.lock:
        head = ledger.head
        proof = merkle.inclusion_proof(_store(ledger), tx.seq, head.log_size)
    # Served only if it proves itself: a damaged store must not answer a wrong record.
    if hashlib.sha256(tx.body).hexdigest() != tx.id:
        raise _damaged(f"transaction {tx_id}")
    view = record_view(ledger, tx, with_raw=True)
    leaf = leaf_input(tx.id, tx.height, view["block_time"], tx.code)
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), tx.seq, head.log_size, proof, bytes.fromhex(head.log_root)
        )
    except VerificationFailure as exc:
        raise _damaged(f"transaction {tx_id}") from exc
    view["proof"] = {
        "leaf_index": tx.seq,
        "leaf_input": leaf.hex(),
        "log_size": head.log_size,
        "log_root": head.log_root,
        "inclusion": [h.hex() for h in proof],
        "checkpoint": checkpoint_view(ledger, head.height),
    }
    return view


def block_view(ledger: Ledger, height: int) -> dict[str, Any]:
    store = _store(ledger)
    if not 0 <= height <= ledger.height:
        raise NotFound("unknown_block", f"There is no block at height {height}.")
    raw = store.block(height)
    if raw is None:
        raise _damaged(f"block {height} (it is missing)")
    try:
        header = BlockHeader.from_bytes(raw)
    except LedgerError as exc:
        raise _damaged(f"block {height}") from exc
    first = header.log_size - header.tx_count
    rows = store.txs_range(first, header.log_size)
    leaves = [leaf_input(t.id, height, header.time, t.code) for t in rows]
    if (
        header.encoded != raw
        or header.height != height
        or len(rows) != header.tx_count
        or tx_root(leaves) != header.tx_root
        or any(hashlib.sha256(t.body).hexdigest() != t.id for t in rows)
    ):
        raise _damaged(f"block {height}")
    txs = []
    for tx in rows:
        envelope = json.loads(tx.body)
        txs.append({"id": tx.id, "seq": tx.seq, "type": envelope.get("type"), "code": tx.code})
    return {
        "hash": header.hash,
        "header": header.to_dict(),
        "transactions": txs,
        "checkpoint": checkpoint_view(ledger, height),
    }


def _damaged(what: str) -> StorageError:
    return StorageError(
        "store_damaged",
        f"The stored {what} does not verify against this node's own log: its store is "
        "damaged. Ask another node; operators: run `carledger verify`.",
    )


def block_transactions_view(ledger: Ledger, height: int) -> dict[str, Any]:
    """The raw transactions of block ``height`` as ``{"body": base64, "signatures": [hex]}``."""
    store = _store(ledger)
    raw = store.block(height) if 0 <= height <= ledger.height else None
    if raw is None:
        raise NotFound("unknown_block", f"There is no block at height {height}.")
    header = BlockHeader.from_bytes(raw)
    txs = store.txs_range(header.log_size - header.tx_count, header.log_size)
    return {
        "height": height,
        "hash": header.hash,
        "transactions": [
            {
                "body": base64.b64encode(tx.body).decode("ascii"),
                "signatures": [s.hex() for s in tx.signatures],
            }
            for tx in txs
        ],
    }


def checkpoint_view(ledger: Ledger, height: int | None = None) -> dict[str, Any]:
    """The checkpoint at ``height`` (default: head) with validators' signatures."""
    store = _store(ledger)
    height = ledger.height if height is None else height
    raw = store.block(height) if 0 <= height <= ledger.height else None
    if raw is None:
        raise NotFound("unknown_block", f"There is no block at height {height}.")
    checkpoint = BlockHeader.from_bytes(raw).checkpoint()
    keys = ledger.validator_keys()
    sigs = store.checkpoint_sigs(height)
    signatures = [CheckpointSignature(v, s) for v, s in sigs]
    valid = checkpoint.valid_signers(signatures, keys)
    quorum = checkpoint_quorum(len(keys))
    return {
        "checkpoint": checkpoint.to_dict(),
        "signatures": [s.to_dict() for s in signatures],
        "validators": len(keys),
        "quorum": quorum,
        "certified": len(valid) >= quorum,
        "time": BlockHeader.from_bytes(raw).time,
    }


def consistency_view(ledger: Ledger, first: int, second: int) -> dict[str, Any]:
    """An RFC 9162 consistency proof between two log sizes of this node's log."""
    size = ledger.head.log_size
    if not 0 < first <= second <= size:
        raise InvalidInput(
            "invalid_proof_request",
            f"Need 0 < first <= second <= {size} (the current log size).",
        )
    store = _store(ledger)
    with ledger.lock:
        proof = merkle.consistency_proof(store, first, second)
        return {
            "first": first,
            "second": second,
            "first_root": merkle.root_at(store, first).hex(),
            "second_root": merkle.root_at(store, second).hex(),
            "proof": [h.hex() for h in proof],
        }


def page_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("invalid_limit", f"limit is between 1 and {MAX_PAGE}.")
    return limit
