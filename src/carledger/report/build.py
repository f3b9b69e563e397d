"""Building a VIN's verifiable report from a node's ledger.

The report (``carledger.report.v1``, described field by field in ``docs/reports.md``)
carries the summary a buyer reads, every accepted record of the VIN with its signed
bytes, who signed it and its inclusion proof in the log, the certified checkpoint and
its block header, the state proof of the VIN's entry (its head and record count: the
completeness proof), and the state proofs of the signers' membership entries (so the
organisations shown are proven, not asserted). With ``since`` it also carries an RFC
9162 consistency proof from that log size, against which a verifier holding an older
report checks that both show one history. :func:`carledger.verifier.verify_report`
checks all of it offline.

Everything is read under the ledger's lock, so all proofs are against one head.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from carledger.errors import InvalidInput, OrderingError
from carledger.ledger import merkle
from carledger.ledger.block import BlockHeader
from carledger.ledger.ledger import Ledger
from carledger.node.views import _store, checkpoint_view
from carledger.report.summary import summary
from carledger.vehicle import vin as vins
from carledger.vehicle.indexes import vehicle_key
from carledger.verifier import REPORT_FORMAT

__all__ = ["build_report", "report_for"]

PAGE = 1000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def report_for(ledger: Ledger, vin: str, *, since: int | None = None) -> dict[str, Any]:
    """The report of a VIN typed by a person (normalised first; see :func:`build_report`)."""
    return build_report(ledger, vins.normalise(vin), since=since)


def build_report(
    ledger: Ledger, vin: str, *, since: int | None = None, require_certified: bool = True
) -> dict[str, Any]:
    """The report of ``vin`` (already normalised) proven against the head block.

    A VIN with no records gets a report with no records and a proof of absence.
    ``since`` (a log size of an older checkpoint, ``0 < since <= head log size``)
    adds the consistency proof from it; otherwise raises :class:`InvalidInput`
    (``invalid_proof_request``). State proofs exist for the head only, so while the
    head lacks a quorum of validator signatures (a consortium, for a moment after
    each block) raises :class:`OrderingError` (``report_not_certified``, retry);
    ``require_certified=False`` builds it anyway (tests add signatures themselves).
    """
    store = _store(ledger)
    with ledger.lock:
        header, value, proof = ledger.prove_state(vehicle_key(vin))
        if since is not None and not 0 < since <= header.log_size:
            raise InvalidInput(
                "invalid_proof_request",
                f"since is a log size between 1 and {header.log_size} (this checkpoint's).",
                since=since,
            )
        rows = []
        after = -1
        while True:
            page = store.txs_of_vin(vin, after_seq=after, limit=PAGE)
            rows.extend(page)
            if len(page) < PAGE:
                break
            after = page[-1].seq
        times: dict[int, str] = {}
        members: dict[str, dict[str, Any]] = {}
        shown: dict[str, dict[str, Any]] = {}
        records = []
        for tx in rows:
            if tx.height not in times:
                raw = store.block(tx.height)
                assert raw is not None
                times[tx.height] = BlockHeader.from_bytes(raw).time
            path = merkle.inclusion_proof(store, tx.seq, header.log_size)
            envelope = json.loads(tx.body)
            for key in envelope["signers"]:
                if key not in members:
                    _, entry, member_proof = ledger.prove_state(f"member/{key}")
                    members[key] = {
                        "value": None if entry is None else _b64(entry),
                        "proof": member_proof.to_dict(),
                    }
                    member = {} if entry is None else json.loads(entry)
                    shown[key] = {
                        "key": key,
                        "org": member.get("org"),
                        "member": member.get("member"),
                        "roles": member.get("roles", []),
                    }
            records.append(
                {
                    "seq": tx.seq,
                    "height": tx.height,
                    "time": times[tx.height],
                    "type": envelope["type"],
                    "tx": {
                        "body": _b64(tx.body),
                        "signatures": [s.hex() for s in tx.signatures],
                    },
                    "signers": [shown[key] for key in envelope["signers"]],
                    "inclusion": [h.hex() for h in path],
                }
            )
        checkpoint = checkpoint_view(ledger, header.height)
        if require_certified and not checkpoint["certified"]:
            raise OrderingError(
                "report_not_certified",
                f"Block {header.height} is not yet certified by {checkpoint['quorum']} "
                "validators; a report is proven against it. Retry in a moment.",
                retry_after=1,
                height=header.height,
            )
        consistency = None
        if since is not None:
            consistency = {
                "size": since,
                "proof": [h.hex() for h in merkle.consistency_proof(store, since, header.log_size)],
            }
    state = None if value is None else json.loads(value)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "vin": vin,
        "chain": ledger.chain_id,
        "genesis_hash": ledger.genesis.hash,
        "summary": summary(state, header.time),
        "checkpoint": {
            "checkpoint": checkpoint["checkpoint"],
            "signatures": checkpoint["signatures"],
        },
        "header": header.to_dict(),
        "state": {
            "key": vehicle_key(vin),
            "value": None if value is None else _b64(value),
            "proof": proof.to_dict(),
        },
        "members": members,
        "records": records,
    }
    if consistency is not None:
        report["consistency"] = consistency
    return report
