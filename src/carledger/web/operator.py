"""The operators' pages: block explorer, node and checkpoint status, membership.

Replicas are judged by what they signed: every validator node executes every block
and signs the checkpoint it computed (chain, height, block hash, state root, log).
A validator whose valid signature is on this node's checkpoint computed the same
state; one that signed nothing recently is behind or down. So the status page lists,
for each validator, whether it signed the head and the latest height it signed
within the recent blocks: the replicas agree exactly when they all sign the same
checkpoints.
"""

from __future__ import annotations

from typing import Any

from carledger.errors import InvalidInput
from carledger.ledger.block import Checkpoint, CheckpointSignature
from carledger.ledger.ledger import Ledger
from carledger.node import views
from carledger.node.service import Node
from carledger.web import directory

__all__ = ["RECENT", "block_list", "members_page", "status_page", "valid_signers"]

#: How many recent blocks the status page looks at for each validator's last signature.
RECENT = 50


def block_list(ledger: Ledger, before: int | None, limit: int = 25) -> dict[str, Any]:
    """Blocks newest first, ``limit`` of them below height ``before`` (default: the head)."""
    top = ledger.height if before is None else min(before - 1, ledger.height)
    blocks = []
    for height in range(top, max(-1, top - limit), -1):
        view = views.block_view(ledger, height)
        codes = [tx["code"] for tx in view["transactions"]]
        blocks.append(
            {
                "height": height,
                "hash": view["hash"],
                "time": view["header"]["time"],
                "proposer": view["header"]["proposer"],
                "tx_count": view["header"]["tx_count"],
                "refused": sum(1 for c in codes if c != "ok"),
                "certified": view["checkpoint"]["certified"],
            }
        )
    older = top - limit + 1 if top - limit + 1 > 0 else None
    return {"blocks": blocks, "older": older, "height": ledger.height}


def valid_signers(ledger: Ledger, checkpoint: dict[str, Any]) -> set[str]:
    """The validators whose signature in a ``checkpoint_view`` verifies."""
    cp = Checkpoint.from_dict(checkpoint["checkpoint"])
    sigs = []
    for s in checkpoint["signatures"]:
        try:
            sigs.append(CheckpointSignature.from_dict(s))
        except InvalidInput:
            continue
    return cp.valid_signers(sigs, ledger.validator_keys())


def status_page(node: Node) -> dict[str, Any]:
    ledger = node.ledger
    head = views.checkpoint_view(ledger)
    height = ledger.height
    last_signed: dict[str, int] = {}
    head_signers = valid_signers(ledger, head)
    for h in range(height, max(-1, height - RECENT), -1):
        view = head if h == height else views.checkpoint_view(ledger, h)
        for validator in valid_signers(ledger, view) if h != height else head_signers:
            last_signed.setdefault(validator, h)
    replicas = []
    for v in directory.validators(ledger):
        org = directory.org(ledger, v["org"])
        replicas.append(
            {
                "id": v["id"],
                "org": v["org"],
                "org_name": org["name"] if org else v["org"],
                "key": v["key"],
                "since": v["since"],
                "signed_head": v["id"] in head_signers,
                "last_signed": last_signed.get(v["id"]),
                "behind": None if v["id"] not in last_signed else height - last_signed[v["id"]],
            }
        )
    describe = getattr(node.ordering, "describe", None)
    ordering = describe() if callable(describe) else {"ordering": "solo"}
    return {
        "node": node.status(),
        "ordering": ordering,
        "checkpoint": head,
        "replicas": replicas,
        "agree": all(r["signed_head"] for r in replicas),
        "certified": head["certified"],
        "recent": RECENT,
    }


def members_page(ledger: Ledger) -> dict[str, Any]:
    orgs = directory.orgs(ledger)
    everyone = directory.members(ledger)
    by_org: dict[str, list[dict[str, Any]]] = {o["id"]: [] for o in orgs}
    for m in everyone:
        by_org.setdefault(m["org"], []).append(m)
    return {
        "orgs": orgs,
        "members": by_org,
        "validators": directory.validators(ledger),
        "markets": directory.markets(ledger),
        "total": len(everyone),
    }
