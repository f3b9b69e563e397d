"""Building a VIN's verifiable report from a node's ledger.

The report (``carledger.report.v1``, described in ``docs/reports.md``) carries the
summary a buyer reads, every accepted record of the VIN with its signed bytes, who
signed it and its inclusion proof in the log, the certified checkpoint and its block
header, and the state proof of the VIN's entry (its head and record count): the
completeness proof. :func:`carledger.verifier.verify_report` checks all of it offline.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from carledger.ledger import merkle
from carledger.ledger.block import BlockHeader
from carledger.ledger.ledger import Ledger
from carledger.node.views import _store, checkpoint_view
from carledger.report.summary import summary
from carledger.vehicle.indexes import vehicle_key
from carledger.verifier import REPORT_FORMAT

__all__ = ["build_report"]

PAGE = 1000


def build_report(ledger: Ledger, vin: str) -> dict[str, Any]:
    """The report of ``vin`` (already normalised) proven against the head block."""
    store = _store(ledger)
    with ledger.lock:
        header, value, proof = ledger.prove_state(vehicle_key(vin))
        rows = []
        after = -1
        while True:
            page = store.txs_of_vin(vin, after_seq=after, limit=PAGE)
            rows.extend(page)
            if len(page) < PAGE:
                break
            after = page[-1].seq
        times: dict[int, str] = {}
        records = []
        for tx in rows:
            if tx.height not in times:
                raw = store.block(tx.height)
                assert raw is not None
                times[tx.height] = BlockHeader.from_bytes(raw).time
            path = merkle.inclusion_proof(store, tx.seq, header.log_size)
            envelope = json.loads(tx.body)
            signers = []
            for key in envelope["signers"]:
                member = ledger.state(f"member/{key}") or {}
                signers.append(
                    {
                        "key": key,
                        "org": member.get("org"),
                        "member": member.get("member"),
                        "roles": member.get("roles", []),
                    }
                )
            records.append(
                {
                    "seq": tx.seq,
                    "height": tx.height,
                    "time": times[tx.height],
                    "type": envelope["type"],
                    "tx": {
                        "body": base64.b64encode(tx.body).decode("ascii"),
                        "signatures": [s.hex() for s in tx.signatures],
                    },
                    "signers": signers,
                    "inclusion": [h.hex() for h in path],
                }
            )
        checkpoint = checkpoint_view(ledger, header.height)
    state = None if value is None else json.loads(value)
    return {
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
            "value": None if value is None else base64.b64encode(value).decode("ascii"),
            "proof": proof.to_dict(),
        },
        "records": records,
    }
