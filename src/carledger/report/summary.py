"""The summary a buyer reads first, computed from a vehicle's state alone.

Pure: a function of the folded vehicle state and a reference time (the checkpoint's
block time), so the node that builds a report and the verifier that checks it
compute the same bytes. Owners appear as "owner 1, 2, 3": no owner reference,
pseudonymous or not, is shown to a reader.
"""

from __future__ import annotations

from typing import Any

from carledger.vehicle import facts as vehicle_facts
from carledger.vehicle import queries

__all__ = ["summary"]


def summary(state: dict[str, Any] | None, as_of: str) -> dict[str, Any]:
    """What a report shows on top; ``state`` None means the VIN has no records."""
    if state is None:
        return {"records": 0, "status": "unknown", "as_of": as_of, "flags": []}
    out = vehicle_facts.summary(state)
    owners = queries.live(state["owners"])
    if not owners:
        out["owner"] = None
    elif owners[-1]["stock"]:
        out["owner"] = "dealer stock"
    else:
        out["owner"] = f"owner {queries.owner_count(state)}"
    out["as_of"] = as_of
    out["flags"] = vehicle_facts.facts(state, as_of)
    return out
