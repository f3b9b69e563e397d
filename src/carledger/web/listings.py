"""A market's listings page: what a citizen needs to judge each car on sale.

Built from ``listings_view`` (the open listings index, filtered by make and price)
and, per listed car, ``vehicle_view`` for the gate record: whether the car is inside
the market now. A listing is shown as suspect when its inspection is not valid today
or its car left a gated market (``car_not_present`` after 24 hours away, "outside"
before that). Prices in the filter are in 만원 (10,000 KRW), as Korean buyers read them.
"""

from __future__ import annotations

from typing import Any

from carledger.ledger.ledger import Ledger
from carledger.node.vehicle_views import listings_view, vehicle_view
from carledger.vehicle.clock import local_date
from carledger.web.i18n import Translator

__all__ = ["MAN", "listing_rows", "market_makes"]

MAN = 10_000  # 만원
PAGE = 30


def market_makes(ledger: Ledger, market: str) -> list[str]:
    """The makes of the cars listed in ``market`` (for the filter's choices)."""
    found = listings_view(ledger, market=market, limit=500)["listings"]
    return sorted({str(x["vehicle"]["make"]) for x in found if x["vehicle"].get("make")})


def _presence(gated: bool, market: str, state: dict[str, Any], flags: set[str]) -> dict[str, Any]:
    if not gated:
        return {"state": "ungated", "since": None}
    gate = state.get("gate")
    if gate is not None and gate["inside"] and gate["market"] == market:
        return {"state": "inside", "since": gate["time"]}
    if "car_not_present" in flags:
        return {"state": "missing", "since": None if gate is None else gate["time"]}
    return {"state": "outside", "since": None if gate is None else gate["time"]}


def listing_rows(
    ledger: Ledger,
    market: dict[str, Any],
    t: Translator,
    *,
    make: str | None,
    min_man: int | None,
    max_man: int | None,
    after: str,
) -> tuple[list[dict[str, Any]], str | None]:
    """``(rows, next cursor)`` of the open listings of ``market`` matching the filters."""
    page = listings_view(
        ledger,
        market=market["id"],
        make=make or None,
        min_price=None if min_man is None else min_man * MAN,
        max_price=None if max_man is None else max_man * MAN,
        after=after,
        limit=PAGE,
    )
    today = local_date(ledger.head.time)
    rows = []
    for entry in page["listings"]:
        summary = entry.get("summary") or {}
        flags = list(summary.get("flags", []))
        codes = {f["code"] for f in flags}
        state = vehicle_view(ledger, entry["vin"])["state"]
        inspection = summary.get("inspection")
        valid = (
            inspection is not None
            and "listing_inspection_expired" not in codes
            and today <= inspection["valid_until"]
        )
        latest = (summary.get("odometer") or {}).get("latest")
        rows.append(
            {
                "vin": entry["vin"],
                "listing_no": entry["listing_no"],
                "price": t.price(int(entry["price"])),
                "dealer": entry.get("dealer"),
                "opened": entry.get("opened"),
                "vehicle": entry["vehicle"],
                "km": None if latest is None else t.km(int(latest["km"])),
                "inspection": inspection,
                "inspection_valid": valid,
                "presence": _presence(bool(market["gated"]), market["id"], state, codes),
                "critical": sum(1 for f in flags if f["severity"] == "critical"),
                "warnings": sum(1 for f in flags if f["severity"] == "warning"),
            }
        )
    return rows, page["next"]
