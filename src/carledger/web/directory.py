"""Who and where: organisations, members, validators and markets, read from the state.

The node's read models (``carledger.node.views``) have no view of markets or members
yet, so this module reads the state entries the membership and market contracts
write (``org/<id>``, ``orgs``, ``member/<key>``, ``validators``, ``market/<id>``; see
``carledger.ledger.membership``) through the ledger and, for the two listings that
need a key range, through the store's ``state_prefix``. It never writes. When the
node grows ``markets_view``/``members_view`` read models, these functions become
thin calls to them.
"""

from __future__ import annotations

import json
from typing import Any

from carledger.ledger.genesis import checkpoint_quorum
from carledger.ledger.ledger import Ledger
from carledger.store.sqlite import SQLiteStore

__all__ = ["market", "markets", "member", "members", "org", "orgs", "trust", "validators"]

#: At most this many members or markets are listed on one page.
LIMIT = 2000


def _prefix(ledger: Ledger, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    store = ledger.store
    if not isinstance(store, SQLiteStore):
        return []
    return [(k, json.loads(v)) for k, v in store.state_prefix(prefix, limit=LIMIT)]


def org(ledger: Ledger, org_id: str) -> dict[str, Any] | None:
    entry = ledger.state(f"org/{org_id}")
    return None if entry is None else {"id": org_id, **entry}


def orgs(ledger: Ledger) -> list[dict[str, Any]]:
    ids = (ledger.state("orgs") or {"ids": []})["ids"]
    return [o for o in (org(ledger, i) for i in ids) if o is not None]


def member(ledger: Ledger, key: str) -> dict[str, Any] | None:
    entry = ledger.state(f"member/{key}")
    return None if entry is None else {"key": key, **entry}


def members(ledger: Ledger) -> list[dict[str, Any]]:
    """Every member key ever enrolled (revoked and rotated ones too), by org then name."""
    found = [{"key": k.split("/", 1)[1], **v} for k, v in _prefix(ledger, "member/")]
    return sorted(found, key=lambda m: (m["org"], m["member"], m["key"]))


def validators(ledger: Ledger) -> list[dict[str, Any]]:
    return list((ledger.state("validators") or {"nodes": []})["nodes"])


def market(ledger: Ledger, market_id: str) -> dict[str, Any] | None:
    if "/" in market_id:
        return None
    entry = ledger.state(f"market/{market_id}")
    return None if entry is None else {"id": market_id, **entry}


def markets(ledger: Ledger) -> list[dict[str, Any]]:
    found = {k.split("/", 1)[1]: v for k, v in _prefix(ledger, "market/")}
    for doc in ledger.genesis.markets:  # a store without prefix reads still has these
        found.setdefault(doc["id"], {k: doc[k] for k in ("name", "operator", "gated")})
    return [{"id": i, **found[i]} for i in sorted(found)]


def trust(ledger: Ledger) -> dict[str, Any]:
    """What a page ships for the browser verifier: the genesis' chain and validator keys.

    Exactly what :func:`carledger.verifier.verify_report` trusts: the genesis
    document's validators (not validators added later) and the 2f+1 quorum of them.
    """
    keys = ledger.genesis.validator_keys()
    return {
        "chain": ledger.chain_id,
        "genesis_hash": ledger.genesis.hash,
        "validators": keys,
        "quorum": checkpoint_quorum(len(keys)),
    }
