"""Offline verification of a vehicle report, trusting only the chain's genesis.

This module depends on the pure parts of carledger only (encoding, keys, the log
and state tree proofs, the vehicle fold), never on a node, a store or the network,
so a buyer's phone, a lender's back office or an auditor can run it alone.
``docs/reports.md`` describes the format and these steps for other languages.

What :func:`verify_report` checks, in order, each failure with its own code:

1. the report's shape, chain and genesis (``report_malformed``,
   ``report_chain_mismatch``);
2. the checkpoint: signed by a quorum of the genesis validators
   (``checkpoint_not_certified``), the block header hashes to it
   (``header_mismatch``), and it is not older than the caller allows
   (``checkpoint_too_old``);
3. the VIN's state entry (or its absence) and each signer's membership entry
   against the header's state root (``vin_mismatch``, ``state_proof_invalid``);
4. every record: its bytes hash to its id, every signature verifies
   (``record_signature_invalid``), it is for this chain and this VIN
   (``vin_mismatch``), the organisations shown for its signers are the proven ones
   (``signer_mismatch``), and its log leaf (id, height, block time, ``ok``) is
   included in the checkpoint's log (``inclusion_proof_invalid``);
5. the per-VIN hash chain: each record names the previous one (``chain_broken``),
   and the last record and the count are those the state commits to
   (``report_incomplete``): nothing was left out;
6. the vehicle state recomputed from the records equals the proven entry byte for
   byte (``state_mismatch``), and the summary recomputed from it equals the
   report's (``summary_mismatch``).

With ``previous`` (an older report of the same VIN) it also checks that the two
tell one history: the older checkpoint's log is a prefix of the newer one (an RFC
9162 consistency proof the newer report carries) and the older report's records
are the first records of the newer one (``consistency_proof_missing``,
``report_not_newer``, ``report_inconsistent``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
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
from carledger.ledger.executor import SignatureChecks
from carledger.ledger.genesis import Genesis, checkpoint_quorum
from carledger.ledger.tx import Transaction
from carledger.report.summary import summary as summarise
from carledger.vehicle import fold as vehicle_fold
from carledger.vehicle import queries

__all__ = ["REPORT_FORMAT", "VerifiedReport", "content_hash", "verify_report"]

REPORT_FORMAT = "carledger.report.v1"


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """What a report proved: whose records, against which checkpoint."""

    vin: str
    chain: str
    height: int
    checkpoint_time: str
    log_size: int
    log_root: str
    records: int
    record_ids: tuple[str, ...]
    signers: frozenset[str]
    organisations: frozenset[str]
    validators: frozenset[str]
    content_hash: str


def _fail(code: str, message: str, **detail: Any) -> VerificationFailure:
    return VerificationFailure(code, message, **detail)


def _need(doc: Any, key: str, kind: type | tuple[type, ...], where: str = "report") -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise _fail("report_malformed", f"{where}.{key} is missing.")
    value = doc[key]
    # JSON booleans are not counts, though Python's bool is an int.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail("report_malformed", f"{where}.{key} has the wrong type.")
    return value


def _hex(value: Any, where: str) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError
        return bytes.fromhex(value)
    except ValueError:
        raise _fail("report_malformed", f"{where} is not hexadecimal.") from None


def _short(value: str | None) -> str:
    return "none" if value is None else f"{value[:16]}..."


def _age(ms: int) -> str:
    """``7200 s``, or ``3 days (259200 s)`` when that is easier to read."""
    seconds = ms // 1000
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days ({seconds} s)"
    return f"{seconds} s"


def content_hash(report: Mapping[str, Any]) -> str:
    """What a QR code names: sha256 (hex) of the report's RFC 8785 canonical JSON."""
    return hashlib.sha256(canonical.encode(report)).hexdigest()


def verify_report(
    report: Any,
    genesis: Genesis,
    *,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
    previous: Any = None,
) -> VerifiedReport:
    """Verify ``report`` against ``genesis``; raise :class:`VerificationFailure` on any fault.

    ``now_ms`` and ``max_age_ms`` (both or neither) demand a checkpoint no older than
    ``max_age_ms`` before ``now_ms``. Time is a parameter: this function never
    reads the clock. ``previous``, an older report of the same VIN that the caller
    kept, must verify too (without the age limit) and tell the same history; a
    failure of its own carries ``detail["report"] == "previous"``.
    """
    if (now_ms is None) != (max_age_ms is None):
        raise ValueError("now_ms and max_age_ms go together")
    older = None
    if previous is not None:
        try:
            older = _verify_one(previous, genesis, None, None)
        except VerificationFailure as exc:
            exc.message = f"The previous report does not verify: {exc.message}"
            exc.args = (exc.message,)
            exc.detail["report"] = "previous"
            raise
    newer = _verify_one(report, genesis, now_ms, max_age_ms)
    if older is not None:
        _check_consistent(report, newer, older)
    return newer


# --- one report ----------------------------------------------------------------------


def _verify_one(
    report: Any, genesis: Genesis, now_ms: int | None, max_age_ms: int | None
) -> VerifiedReport:
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise _fail("report_malformed", f"This is not a {REPORT_FORMAT} document.")
    vin = _need(report, "vin", str)
    if report.get("chain") != genesis.chain_id:
        raise _fail(
            "report_chain_mismatch",
            f"The report is for chain {report.get('chain')!r}; the genesis is for "
            f"{genesis.chain_id!r}.",
        )
    if report.get("genesis_hash") != genesis.hash:
        raise _fail(
            "report_chain_mismatch",
            f"The report was made on a chain {genesis.chain_id!r} that started from another "
            f"genesis ({_short(report.get('genesis_hash'))}, not {_short(genesis.hash)}).",
        )
    # The records' signatures are checked on two threads while the checkpoint, the
    # proofs and the fold are checked here (libsodium releases the GIL): they are a
    # third of the work for a long history. Faults are still reported in their order.
    early = report.get("records")
    started = _start_records(early) if isinstance(early, list) else None
    header, validators = _checkpoint(report, genesis)
    if max_age_ms is not None and now_ms is not None:
        age = now_ms - parse_time(header.time)
        if age > max_age_ms:
            raise _fail(
                "checkpoint_too_old",
                f"The checkpoint (height {header.height}, {header.time}) is {_age(age)} old; "
                f"at most {_age(max_age_ms)} is accepted. Ask the node for a fresh report.",
                age_s=age // 1000,
                height=header.height,
            )
    state_root = bytes.fromhex(header.state_root)

    # 3. the VIN's state entry and the signers' membership entries
    key = f"vehicle/{vin}"
    state_doc = _need(report, "state", dict)
    if state_doc.get("key") != key:
        raise _fail(
            "vin_mismatch",
            f"The proven state entry is {state_doc.get('key')!r}, not {key!r}: it proves "
            "nothing about this VIN.",
        )
    value = _proven_entry(state_doc, key, state_root, "state")
    members = _members(report, state_root)

    # 4. and 5. records and the per-VIN chain
    records = _need(report, "records", list)
    log_root = bytes.fromhex(header.log_root)
    folded: Any = None
    prev_id: str | None = None
    ids: list[str] = []
    signers: set[str] = set()
    decoded, signed = started if started is not None else _start_records(records)
    for i, rec in enumerate(records):
        where = f"records[{i}]"
        tx = _record_tx(rec, i, decoded[i], signed, genesis)
        _check_vin(tx, vin, folded, where)
        _check_signers(rec, tx, members, where)
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
                f"{where} ({_short(tx.id)}) is not proven to be in the log as an accepted "
                f"record at height {height}: {exc.message}",
                index=i,
            ) from exc
        if height > header.height:
            raise _fail("report_malformed", f"{where} claims a height after the checkpoint.")
        record = vehicle_fold.Record(tx.id, tx.type, tx.payload, tx.signers, height, time)
        named = vehicle_fold.named_prev(vin, record)
        if named != prev_id:
            raise _fail(
                "chain_broken",
                f"{where} ({_short(tx.id)}) names {_short(named)} as the previous record of "
                f"{vin}, but the report's previous record is {_short(prev_id)} (reordered, "
                "dropped or inserted records).",
                index=i,
            )
        prev_id = tx.id
        ids.append(tx.id)
        signers.update(tx.signers)
        folded = vehicle_fold.fold(vin, folded, record)

    # completeness and state equality
    if value is None:
        if records:
            raise _fail(
                "report_incomplete",
                f"The certified state proves {vin} has no records, but the report shows "
                f"{len(records)}.",
            )
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
                f"The certified state commits to {committed[1]} records of {vin} ending with "
                f"{_short(committed[0])}; the report has {len(records)} ending with "
                f"{_short(prev_id)}. Records were left out.",
                committed=committed[1],
                shown=len(records),
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
            "The report's summary differs from the one recomputed from its records"
            f"{_first_difference(report.get('summary'), expected)}.",
        )
    return VerifiedReport(
        vin=vin,
        chain=genesis.chain_id,
        height=header.height,
        checkpoint_time=header.time,
        log_size=header.log_size,
        log_root=header.log_root,
        records=len(records),
        record_ids=tuple(ids),
        signers=frozenset(signers),
        organisations=frozenset(
            m["org"] for k in signers if (m := members.get(k)) is not None and m["org"]
        ),
        validators=frozenset(validators),
        content_hash=content_hash(report),
    )


def _checkpoint(report: dict[str, Any], genesis: Genesis) -> tuple[BlockHeader, set[str]]:
    """The certified checkpoint's block header, and the validators that signed it."""
    cp_doc = _need(report, "checkpoint", dict)
    try:
        checkpoint = Checkpoint.from_dict(_need(cp_doc, "checkpoint", dict, "checkpoint"))
        raw_signatures = _need(cp_doc, "signatures", list, "checkpoint")
        if not all(isinstance(s, dict) for s in raw_signatures):
            raise _fail("report_malformed", "checkpoint.signatures holds a non-object.")
        signatures = [CheckpointSignature.from_dict(s) for s in raw_signatures]
        header = BlockHeader.from_dict(_need(report, "header", dict))
    except InvalidInput as exc:
        raise _fail("report_malformed", exc.message) from exc
    if checkpoint.chain != genesis.chain_id:
        raise _fail("report_chain_mismatch", "The checkpoint is for another chain.")
    keys = genesis.validator_keys()
    signed = checkpoint.verify_certified(signatures, keys, checkpoint_quorum(len(keys)))
    if header.hash != checkpoint.block_hash or header.checkpoint() != checkpoint:
        raise _fail(
            "header_mismatch",
            f"The block header (height {header.height}) does not hash to the certified "
            f"checkpoint's block {_short(checkpoint.block_hash)}.",
        )
    return header, signed


def _proven_entry(doc: Any, key: str, root: bytes, where: str) -> bytes | None:
    """The value of ``key`` (None: absent) after checking its proof against ``root``."""
    value_b64 = doc.get("value") if isinstance(doc, dict) else None
    try:
        if value_b64 is not None and not isinstance(value_b64, str):
            raise ValueError("value is base64 text or null")
        value = None if value_b64 is None else base64.b64decode(value_b64, validate=True)
        proof = smt.SparseProof.from_dict(doc.get("proof") if isinstance(doc, dict) else None)
    except (binascii.Error, ValueError, InvalidInput) as exc:
        raise _fail("report_malformed", f"The proof of {where} is malformed: {exc}") from exc
    try:
        smt.verify_entry(root, key, value, proof)
    except VerificationFailure as exc:
        raise _fail(
            "state_proof_invalid",
            f"The proof of {where} ({key}) does not verify against the checkpoint's state "
            f"root: {exc.message}",
        ) from exc
    return value


def _members(report: dict[str, Any], root: bytes) -> dict[str, dict[str, Any]]:
    """Every signer key's proven membership: ``{org, member, roles}`` (all None if none)."""
    doc = _need(report, "members", dict)
    out: dict[str, dict[str, Any]] = {}
    for key, entry in doc.items():
        value = _proven_entry(entry, f"member/{key}", root, f"members[{key[:16]}...]")
        if value is None:
            out[key] = {"key": key, "org": None, "member": None, "roles": []}
            continue
        try:
            member = json.loads(value)
            out[key] = {
                "key": key,
                "org": member["org"],
                "member": member["member"],
                "roles": member["roles"],
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise _fail(
                "report_malformed", f"The proven entry member/{key} is not a membership."
            ) from exc
    return out


#: Records decoded before their signature checks start on the verifying threads.
_SIGNATURE_PART = 8
#: Below this many records every signature is checked here, at its record's turn.
_PARALLEL_FROM = 32


class _CheckedHere:
    def __getitem__(self, tx: Transaction) -> bool:
        return not tx.bad_signers()


def _start_records(
    records: list[Any],
) -> tuple[list[Transaction | VerificationFailure], SignatureChecks | _CheckedHere]:
    """The records decoded, and their signature checks (started in parts as they decode)."""
    if len(records) < _PARALLEL_FROM:
        return [_decode_record(rec, i) for i, rec in enumerate(records)], _CheckedHere()
    decoded: list[Transaction | VerificationFailure] = []
    checks = SignatureChecks()
    for i in range(0, len(records), _SIGNATURE_PART):
        part = [
            _decode_record(rec, j)
            for j, rec in enumerate(records[i : i + _SIGNATURE_PART], start=i)
        ]
        decoded.extend(part)
        checks.start([tx for tx in part if isinstance(tx, Transaction)])
    return decoded, checks


def _decode_record(rec: Any, index: int) -> Transaction | VerificationFailure:
    """The transaction a report's record carries, or the failure to raise at its turn."""
    where = f"records[{index}]"
    try:
        raw = _need(rec, "tx", dict, where)
        return Transaction.from_wire(raw)
    except VerificationFailure as exc:
        return exc
    except LedgerError as exc:
        return _fail("report_malformed", f"{where} is not a transaction: {exc.message}")


def _record_tx(
    rec: Any,
    index: int,
    decoded: Transaction | VerificationFailure,
    signed: SignatureChecks | _CheckedHere,
    genesis: Genesis,
) -> Transaction:
    """``decoded`` checked: every signature good (``signed[tx]``), this chain, the type
    shown; raises the first fault."""
    where = f"records[{index}]"
    if isinstance(decoded, VerificationFailure):
        raise decoded
    tx = decoded
    if not signed[tx]:
        bad = tx.bad_signers()
        raise _fail(
            "record_signature_invalid",
            f"{where} ({_short(tx.id)}, {tx.type}) has a signature by {_short(bad[0])} that "
            "does not verify over its bytes: the record or the signature was altered.",
            index=index,
        )
    if tx.chain != genesis.chain_id:
        raise _fail("report_chain_mismatch", f"{where} is a record of chain {tx.chain!r}.")
    if rec.get("type") != tx.type:
        raise _fail("report_malformed", f"{where}.type is not the signed record's type.")
    return tx


def _check_vin(tx: Transaction, vin: str, folded: Any, where: str) -> None:
    """Raise unless ``tx`` is about ``vin``: by VIN, or by the plate ``vin`` carried then.

    A gate device may name a car by its plate, which the node resolved through the
    plate index; the plate must then be the one this VIN's own records gave it.
    """
    payload = tx.payload
    vehicles = payload.get("vehicles")
    if isinstance(vehicles, list):
        about = [str(v.get("vin")) for v in vehicles if isinstance(v, dict)]
    elif "vin" in payload:
        about = [str(payload["vin"])]
    elif "plate" in payload:
        plate = queries.current_plate(folded)
        if payload["plate"] == plate:
            return
        about = [f"the car with plate {payload['plate']} (this VIN's plate is {plate})"]
    else:
        about = ["no vehicle"]
    if vin not in about:
        raise _fail(
            "vin_mismatch",
            f"{where} ({_short(tx.id)}, {tx.type}) is a record about {', '.join(about)}, "
            f"not {vin}.",
        )


def _check_signers(
    rec: dict[str, Any], tx: Transaction, members: dict[str, dict[str, Any]], where: str
) -> None:
    shown = rec.get("signers")
    proven = []
    for key in tx.signers:
        member = members.get(key)
        if member is None:
            raise _fail(
                "report_malformed",
                f"{where} is signed by {_short(key)}, whose membership the "
                "report does not prove (members lacks it).",
            )
        proven.append(member)
    if shown != proven:
        raise _fail(
            "signer_mismatch",
            f"{where} ({_short(tx.id)}) names signers' organisations that differ from the "
            "membership the checkpoint's state proves.",
        )


def _first_difference(shown: Any, expected: Any, path: str = "summary") -> str:
    """`` (first at summary.x.y)``: where two JSON values part, for the error message."""
    if isinstance(shown, dict) and isinstance(expected, dict):
        for k in sorted(set(shown) | set(expected)):
            if canonical.encode(shown.get(k)) != canonical.encode(expected.get(k)):
                return _first_difference(shown.get(k), expected.get(k), f"{path}.{k}")
    if isinstance(shown, list) and isinstance(expected, list) and len(shown) == len(expected):
        for i, (a, b) in enumerate(zip(shown, expected, strict=True)):
            if canonical.encode(a) != canonical.encode(b):
                return _first_difference(a, b, f"{path}[{i}]")
    return f" (first at {path})"


# --- two reports ---------------------------------------------------------------------


def _check_consistent(report: dict[str, Any], newer: VerifiedReport, older: VerifiedReport) -> None:
    """Raise unless ``older`` and ``newer`` (both verified) tell one history of one VIN."""
    if older.vin != newer.vin:
        raise _fail(
            "vin_mismatch",
            f"The previous report is about {older.vin}, this one about {newer.vin}.",
        )
    if older.log_size > newer.log_size:
        raise _fail(
            "report_not_newer",
            f"The previous report's checkpoint (height {older.height}, log size "
            f"{older.log_size}) is newer than this one's (height {newer.height}, log size "
            f"{newer.log_size}); pass them the other way round.",
        )
    if 0 < older.log_size < newer.log_size:
        doc = report.get("consistency")
        if not isinstance(doc, dict) or doc.get("size") != older.log_size:
            raise _fail(
                "consistency_proof_missing",
                f"This report carries no consistency proof from log size {older.log_size} "
                f"(the previous report's); fetch it with ?since={older.log_size}.",
                since=older.log_size,
            )
        proof = [_hex(h, "consistency.proof") for h in _need(doc, "proof", list, "consistency")]
        try:
            merkle.verify_consistency(
                older.log_size,
                newer.log_size,
                proof,
                bytes.fromhex(older.log_root),
                bytes.fromhex(newer.log_root),
            )
        except VerificationFailure as exc:
            raise _fail(
                "report_inconsistent",
                f"The previous report's log (size {older.log_size}, height {older.height}) is "
                f"not a prefix of this report's log (size {newer.log_size}, height "
                f"{newer.height}): the ledger showed two different histories. Keep both "
                f"reports as evidence. ({exc.message})",
            ) from exc
    elif older.log_size == newer.log_size and older.log_root != newer.log_root:
        raise _fail(
            "report_inconsistent",
            f"Both reports are of log size {older.log_size} but their log roots differ: the "
            "ledger showed two different histories. Keep both reports as evidence.",
        )
    if newer.record_ids[: older.records] != older.record_ids:
        at = next(
            (
                i
                for i, rid in enumerate(older.record_ids)
                if i >= newer.records or newer.record_ids[i] != rid
            ),
            older.records,
        )
        raise _fail(
            "report_inconsistent",
            f"Record {at + 1} of {older.vin} in the previous report "
            f"({_short(older.record_ids[at])}) is not record {at + 1} of this report: the "
            "two reports show different histories of the vehicle.",
            index=at,
        )
