"""The summary a buyer reads first, computed from a vehicle's state alone.

Pure: a function of the folded vehicle state and a reference time (the checkpoint's
block time), so the node that builds a report and the verifier that checks it
compute the same bytes. Owners appear as "owner 1, 2, 3": no reference, pseudonymous
or not, is shown to a reader.
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
    readings = queries.live(state["odometer"]["readings"])
    latest = readings[-1] if readings else None
    inspection = queries.current_inspection(state)
    owners = queries.live(state["owners"])
    private = [o for o in owners if not o["stock"]]
    accidents = queries.live(state["accidents"])
    return {
        "records": state["records"],
        "status": state["status"],
        "as_of": as_of,
        "vehicle": state["birth"],
        "first_registered": state["first_registered"],
        "owners": {
            "count": queries.owner_count(state),
            "dealer_stock_periods": sum(1 for o in owners if o["stock"]),
            "current": f"owner {len(private)}"
            if owners and not owners[-1]["stock"]
            else ("dealer stock" if owners else None),
        },
        "uses": [u.get("use") for u in queries.live(state["uses"])],
        "odometer": {
            "latest_km": latest["km"] if latest else None,
            "latest_on": latest["on"] if latest else None,
            "readings": len(readings),
            "rollbacks": sum(1 for r in readings if "rollback" in r.get("flags", [])),
            "implausible": sum(1 for r in readings if "implausible" in r.get("flags", [])),
        },
        "accidents": {
            "count": len(accidents),
            "total_cost_krw": sum(int(a.get("total", 0) or 0) for a in accidents),
        },
        "inspections": {
            "count": len(queries.live(state["inspections"])),
            "latest_on": inspection["on"] if inspection else None,
        },
        "liens_active": len(queries.active_liens(state)),
        "recalls_open": len(queries.open_recalls(state)),
        "stolen": queries.is_stolen(state),
        "scrapped": queries.is_scrapped(state),
        "disputes_open": len(queries.open_disputes(state)),
        "flags": vehicle_facts.facts(state, as_of),
    }
