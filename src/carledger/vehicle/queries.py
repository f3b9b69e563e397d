"""Read-only questions about a vehicle state (the dict :mod:`carledger.vehicle.fold` builds).

Shared by the fold (to derive ``status``), the contract rules, the facts and the
report, so each question has one answer. Every function is pure and tolerates void
entries by skipping them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "active_liens",
    "current_inspection",
    "current_owner",
    "current_plate",
    "derive_status",
    "is_scrapped",
    "is_stolen",
    "live",
    "open_disputes",
    "open_recalls",
    "open_usage",
    "owner_count",
    "stock",
]

State = dict[str, Any]


def live(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that are not void."""
    return [e for e in entries if not e.get("void")]


def current_owner(state: State | None) -> str | None:
    """The reference of the current owner (a dealer holding stock is ``org:<dealer>``)."""
    if state is None:
        return None
    owners = live(state["owners"])
    return owners[-1]["ref"] if owners else None


def stock(state: State | None) -> dict[str, Any] | None:
    """The purchase entry when a dealer holds the car as stock (상품용), else None."""
    if state is None:
        return None
    owners = live(state["owners"])
    return owners[-1] if owners and owners[-1]["stock"] else None


def owner_count(state: State) -> int:
    """Owners other than dealers' stock (소유자 수)."""
    return sum(1 for o in live(state["owners"]) if not o["stock"])


def current_plate(state: State | None) -> str | None:
    if state is None:
        return None
    plates = live(state["plates"])
    return plates[-1]["plate"] if plates else None


def current_inspection(state: State | None) -> dict[str, Any] | None:
    """The latest (by date, then by acceptance) inspection that is not void."""
    if state is None:
        return None
    best: dict[str, Any] | None = None
    for entry in live(state["inspections"]):
        if best is None or entry["on"] >= best["on"]:
            best = entry
    return best


def is_scrapped(state: State | None) -> bool:
    return state is not None and state["scrapped"] is not None and not state["scrapped"].get("void")


def is_stolen(state: State | None) -> bool:
    if state is None:
        return False
    thefts = live(state["thefts"])
    return bool(thefts) and thefts[-1]["recovered"] is None


def active_liens(state: State | None) -> dict[str, dict[str, Any]]:
    if state is None:
        return {}
    return {k: v for k, v in state["liens"].items() if v["released"] is None and not v.get("void")}


def open_recalls(state: State | None) -> dict[str, dict[str, Any]]:
    if state is None:
        return {}
    return {k: v for k, v in state["recalls"].items() if v["done"] is None and not v.get("void")}


def open_usage(state: State | None) -> dict[str, Any] | None:
    if state is None:
        return None
    usage = live(state["usage"])
    return usage[-1] if usage and usage[-1]["end"] is None else None


def open_disputes(state: State | None) -> dict[str, dict[str, Any]]:
    if state is None:
        return {}
    return {k: v for k, v in state["disputes"].items() if v["status"] == "open"}


def derive_status(state: State) -> str:
    """``scrapped`` > ``stolen`` > ``listed`` > ``active``."""
    if is_scrapped(state):
        return "scrapped"
    if is_stolen(state):
        return "stolen"
    if state["listing"] is not None:
        return "listed"
    return "active"
