"""Offline verification of a vehicle report, trusting only the chain's genesis.

This module depends on the pure parts of carledger only (encoding, keys, the log
and state tree proofs, the vehicle fold), never on a node, a store or the network,
so a buyer's phone, a lender's back office or an auditor can run it alone.

What :func:`verify_report` checks, in order, each failure with its own code:

1. the report's shape and chain (``report_malformed``, ``report_chain_mismatch``);
2. the checkpoint: signed by a quorum of the genesis validators
   (``checkpoint_not_certified``), not older than the caller allows
   (``checkpoint_too_old``), and the block header hashes to it (``header_mismatch``);
3. the VIN's state entry (or its absence) against the header's state root
   (``state_proof_invalid``);
4. every record: its bytes hash to its id, every signature verifies
   (``record_signature_invalid``), it is for this chain, and its log leaf (id,
   height, block time, ``ok``) is included in the checkpoint's log
   (``inclusion_proof_invalid``);
5. the per-VIN hash chain: each record names the previous one (``chain_broken``),
   and the last record and the count are those the state commits to
   (``report_incomplete``): nothing was left out;
6. the vehicle state recomputed from the records equals the proven entry byte for
   byte (``state_mismatch``), and the summary recomputed from it equals the
   report's (``summary_mismatch``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from carledger.encoding import canonical
from carledger.errors import InvalidInput, LedgerError, VerificationFailure
from carledger.ledger import merkle, smt
from carledger.ledger.block import (
    BlockHeader,
    Checkpoint,
    CheckpointSignature,
    leaf_input,
    parse_time,
)
from carledger.ledger.genesis import Genesis, checkpoint_quorum
from carledger.ledger.tx import Transaction
from carledger.report.summary import summary as summarise
from carledger.vehicle import fold as vehicle_fold

__all__ = ["REPORT_FORMAT", "VerifiedReport", "verify_report"]

REPORT_FORMAT = "carledger.report.v1"


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    vin: str
    chain: str
    height: int
    checkpoint_time: str
    records: int
    signers: frozenset[str]
    content_hash: str


def _fail(code: str, message: str, **detail: Any) -> VerificationFailure:
    return VerificationFailure(code, message, **detail)


def _need(doc: Any, key: str, kind: type | tuple[type, ...], where: str = "report") -> Any:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), kind):
        raise _fail("report_malformed", f"{where}.{key} is missing or has the wrong type.")
    return doc[key]


def _hex(value: Any, where: str) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError
        return bytes.fromhex(value)
    except ValueError:
        raise _fail("report_malformed", f"{where} is not hexadecimal.") from None


def content_hash(report: dict[str, Any]) -> str:
    """What a QR code names: sha256 of the canonical report."""
    return hashlib.sha256(canonical.encode(report)).hexdigest()


def verify_report(
    report: Any,
    genesis: Genesis,
    *,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
) -> VerifiedReport:
    """Verify ``report`` against ``genesis``; raise :class:`VerificationFailure` on any fault.

    ``now_ms`` and ``max_age_ms`` (both or neither) demand a checkpoint no older than
    ``max_age_ms`` before ``now_ms``. Time is a parameter: this function never
    reads the clock.
    """
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise _fail("report_malformed", f"This is not a {REPORT_FORMAT} document.")
    vin = _need(report, "vin", str)
    if report.get("chain") != genesis.chain_id:
        raise _fail(
            "report_chain_mismatch",
            f"The report is for chain {report.get('chain')!r}; the genesis is for "
            f"{genesis.chain_id!r}.",
        )

    # 2. the checkpoint and its header
    cp_doc = _need(report, "checkpoint", dict)
    try:
        checkpoint = Checkpoint.from_dict(_need(cp_doc, "checkpoint", dict, "checkpoint"))
        signatures = [
            CheckpointSignature.from_dict(s)
            for s in _need(cp_doc, "signatures", list, "checkpoint")
        ]
        header = BlockHeader.from_dict(_need(report, "header", dict))
    except InvalidInput as exc:
        raise _fail("report_malformed", exc.message) from exc
    if checkpoint.chain != genesis.chain_id:
        raise _fail("report_chain_mismatch", "The checkpoint is for another chain.")
    keys = genesis.validator_keys()
    checkpoint.verify_certified(signatures, keys, checkpoint_quorum(len(keys)))
    if header.hash != checkpoint.block_hash or header.checkpoint() != checkpoint:
        raise _fail(
            "header_mismatch", "The block header does not hash to the certified checkpoint."
        )
    if max_age_ms is not None:
        if now_ms is None:
            raise ValueError("max_age_ms needs now_ms")
        age = now_ms - parse_time(header.time)
        if age > max_age_ms:
            raise _fail(
                "checkpoint_too_old",
                f"The checkpoint is {age // 1000} s old; at most {max_age_ms // 1000} s is "
                "accepted. Ask the node for a fresh report.",
                age_s=age // 1000,
            )

    # 3. the VIN's state entry
    state_doc = _need(report, "state", dict)
    key = f"vehicle/{vin}"
    if state_doc.get("key") != key:
        raise _fail("vin_mismatch", f"The state entry is not {key}.")
    value_b64 = state_doc.get("value")
    try:
        value = None if value_b64 is None else base64.b64decode(value_b64, validate=True)
        proof = smt.SparseProof.from_dict(state_doc.get("proof"))
    except (binascii.Error, ValueError, InvalidInput) as exc:
        raise _fail("report_malformed", f"The state proof is malformed: {exc}") from exc
    smt.verify_entry(bytes.fromhex(header.state_root), key, value, proof)

    # 4. records
    records = _need(report, "records", list)
    log_root = bytes.fromhex(header.log_root)
    folded: Any = None
    prev_id: str | None = None
    signers: set[str] = set()
    for i, rec in enumerate(records):
        where = f"records[{i}]"
        raw = _need(rec, "tx", dict, where)
        try:
            tx = Transaction.from_wire(raw)
        except LedgerError as exc:
            raise _fail("report_malformed", f"{where} is not a transaction: {exc.message}") from exc
        if tx.chain != genesis.chain_id:
            raise _fail("report_chain_mismatch", f"{where} is for another chain.")
        if tx.bad_signers():
            raise _fail(
                "record_signature_invalid",
                f"{where} ({tx.id[:16]}...) has a signature that does not verify.",
                index=i,
            )
        height = _need(rec, "height", int, where)
        time = _need(rec, "time", str, where)
        seq = _need(rec, "seq", int, where)
        path = [_hex(h, f"{where}.inclusion") for h in _need(rec, "inclusion", list, where)]
        try:
            leaf = merkle.leaf_hash(leaf_input(tx.id, height, time, "ok"))
            merkle.verify_inclusion(leaf, seq, header.log_size, path, log_root)
        except LedgerError as exc:
            raise _fail(
                "inclusion_proof_invalid",
                f"{where} ({tx.id[:16]}...) is not proven to be in the log as an accepted "
                f"record at height {height}: {exc.message}",
                index=i,
            ) from exc
        if height > header.height:
            raise _fail("report_malformed", f"{where} claims a height after the checkpoint.")
        # 5. the per-VIN chain
        record = vehicle_fold.Record(tx.id, tx.type, tx.payload, tx.signers, height, time)
        try:
            named = vehicle_fold.named_prev(vin, record)
        except VerificationFailure as exc:
            raise _fail("vin_mismatch", f"{where} is not a record about {vin}.") from exc
        if named != prev_id:
            raise _fail(
                "chain_broken",
                f"{where} names {str(named)[:16]}... as the previous record of {vin}, but the "
                f"report's previous record is {str(prev_id)[:16]}... (reordered, dropped or "
                "inserted records).",
                index=i,
            )
        prev_id = tx.id
        signers.update(tx.signers)
        folded = vehicle_fold.fold(vin, folded, record)

    # completeness and state equality
    if value is None:
        if records:
            raise _fail("report_incomplete", f"The state proves {vin} has no records.")
    else:
        try:
            proven = json.loads(value)
            committed = (proven["head"], proven["records"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _fail(
                "report_malformed", "The proven state entry is not a vehicle state."
            ) from exc
        if committed != (prev_id, len(records)):
            raise _fail(
                "report_incomplete",
                f"The state commits to {committed[1]} records ending with "
                f"{str(committed[0])[:16]}...; the report has {len(records)} ending with "
                f"{str(prev_id)[:16]}... Records were left out.",
            )
        if canonical.encode(folded) != value:
            raise _fail(
                "state_mismatch",
                "The vehicle state recomputed from the records differs from the proven state.",
            )
    # 6. the summary a person reads
    expected = summarise(folded, header.time)
    if canonical.encode(report.get("summary")) != canonical.encode(expected):
        raise _fail(
            "summary_mismatch",
            "The report's summary differs from the one recomputed from its records.",
        )
    return VerifiedReport(
        vin=vin,
        chain=genesis.chain_id,
        height=header.height,
        checkpoint_time=header.time,
        records=len(records),
        signers=frozenset(signers),
        content_hash=content_hash(report),
    )
