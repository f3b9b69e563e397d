"""The report's flags in the reader's language.

A flag of the report (``carledger.vehicle.facts``) is ``{code, severity, message,
records}``; its ``message`` is English data. Here each code gets a title and a
sentence from the catalogue (``flag.<code>`` and ``flag.<code>.detail``), whose
parameters are read from the proven vehicle state by the record ids the flag names.
When a parameter cannot be found (a state shape this page does not know), the title
stays translated and the report's own sentence is shown as the detail.

The buyer's summary groups flags into topics (accidents, odometer, owners, liens,
recalls, theft, disputes, inconsistencies), each with the colour of its worst flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from carledger.vehicle.clock import days_between
from carledger.web.i18n import Translator

__all__ = ["SEVERITY_ORDER", "TOPICS", "flag_view", "topic_of"]

State = dict[str, Any]
Flag = dict[str, Any]
Params = Callable[[State, Flag, Translator], dict[str, Any]]

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

#: The summary's topics, in reading order, and the flag codes that belong to each.
TOPICS: dict[str, tuple[str, ...]] = {
    "accidents": (
        "inspection_accident",
        "inspection_simple_repair",
        "accident_record",
        "total_loss",
        "flood",
        "fire",
    ),
    "odometer": ("odometer_rollback", "odometer_implausible", "odometer_gap", "odometer_exception"),
    "owners": ("commercial_use",),
    "liens": ("active_lien",),
    "recalls": ("open_recall",),
    "theft": ("stolen", "scrapped"),
    "disputes": ("open_dispute", "void_record"),
    "inconsistencies": (
        "inspection_odometer_below_earlier",
        "inspection_missed_frame_damage",
        "car_not_present",
        "listing_inspection_expired",
        "vin_marking_suspect",
        "illegal_tuning",
    ),
}
_TOPIC_OF = {code: topic for topic, codes in TOPICS.items() for code in codes}


def topic_of(code: str) -> str:
    return _TOPIC_OF.get(code, "inconsistencies")


def _by_id(items: list[dict[str, Any]], rid: str) -> dict[str, Any]:
    for item in items:
        if item.get("id") == rid:
            return item
    raise KeyError(rid)


def _reading(state: State, rid: str) -> dict[str, Any]:
    return _by_id(state["odometer"]["readings"], rid)


def _source(state: State, rid: str, t: Translator) -> str:
    return t(f"type.{state['log'][rid]['type']}")


def _rollback(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    low, good = (_reading(state, r) for r in flag["records"][:2])
    return {
        "km": t.km(low["km"]),
        "on": low["on"],
        "source": _source(state, low["id"], t),
        "good_km": t.km(good["km"]),
        "good_on": good["on"],
    }


def _implausible(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    item = _reading(state, flag["records"][0])
    return {"km": t.km(item["km"]), "on": item["on"], "source": _source(state, item["id"], t)}


def _gap(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del t
    first = _reading(state, flag["records"][0])
    if len(flag["records"]) > 1:
        last = _reading(state, flag["records"][1])
        return {
            "from": first["on"],
            "to": last["on"],
            "days": days_between(first["on"], last["on"]),
        }
    as_of = str(state.get("_as_of", ""))[:10] or first["on"]
    return {"from": first["on"], "to": as_of, "days": days_between(first["on"], as_of)}


def _exception(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    exc = _by_id(state["odometer"]["exceptions"], flag["records"][0])
    return {"on": exc["on"], "old": t.km(exc["old"]), "new": t.km(exc["new"])}


def _inspection(state: State, rid: str) -> dict[str, Any]:
    return _by_id(state["inspections"], rid)


def _insp_accident(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    insp = _inspection(state, flag["records"][0])
    panels = ", ".join(
        f"{t(f'panel.{p}')} ({', '.join(t(f'panelcode.{c}') for c in codes)})"
        for p, codes in insp["repairs"].items()
    )
    return {"on": insp["on"], "panels": panels}


def _insp_on(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    insp = _inspection(state, flag["records"][0])
    return {"on": insp["on"], "marking": t(f"marking.{insp['vin_marking']}")}


def _missed_frame(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del t
    insp = _inspection(state, flag["records"][0])
    acc = _by_id(state["accidents"], flag["records"][1])
    return {"on": insp["on"], "accident_on": acc["on"]}


def _accident(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    acc = _by_id(state["accidents"], flag["records"][0])
    own = acc["parts"] + acc["labour"] + acc["paint"]
    return {
        "on": acc["on"],
        "own": t.price(own),
        "other": t.price(acc["other"]),
        "frame": t("flag.frame_damage") if acc["frame"] else "",
    }


def _count(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del state, t
    return {"n": len(flag["records"])}


def _not_present(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del t
    rid = flag["records"][0]
    for absence in state["absences"]:
        if absence["listing"] == rid and absence["exit"] in flag["records"]:
            back = absence["back"] or ""
            return {"market": absence["market"], "left": absence["left"], "back": back}
    gate = _by_id([state["gate"]] if state["gate"] else [], flag["records"][1])
    return {"market": gate["market"], "left": gate["time"], "back": ""}


def _expired(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del t
    if len(flag["records"]) < 2:
        return {"until": "-"}
    return {"until": _inspection(state, flag["records"][1])["valid_until"]}


def _dated(collection: str) -> Params:
    def params(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
        del t
        entry = state[collection]
        if isinstance(entry, list):
            entry = _by_id(entry, flag["records"][0])
        return {"on": entry["on"]}

    return params


def _lien(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    for lien_id, lien in state["liens"].items():
        if lien["id"] == flag["records"][0]:
            return {
                "lien": lien_id,
                "kind": t(f"lien.{lien['kind']}")
                if t.has(f"lien.{lien['kind']}")
                else lien["kind"],
                "creditor": lien["creditor"],
                "amount": t.price(lien["amount"]),
                "on": lien["on"],
            }
    raise KeyError(flag["records"][0])


def _recall(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del t
    for campaign, recall in state["recalls"].items():
        if recall["id"] == flag["records"][0]:
            return {"campaign": campaign, "title": recall["title"]}
    raise KeyError(flag["records"][0])


def _uses(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del flag
    kinds = {u["use"] for u in state["uses"] if not u.get("void") and u["use"] != "private"}
    kinds |= {u["kind"] for u in state["usage"] if not u.get("void")}
    return {"kinds": ", ".join(t(f"use.{k}") for k in sorted(kinds))}


def _none(state: State, flag: Flag, t: Translator) -> dict[str, Any]:
    del state, flag, t
    return {}


PARAMS: dict[str, Params] = {
    "odometer_rollback": _rollback,
    "inspection_odometer_below_earlier": _rollback,
    "odometer_implausible": _implausible,
    "odometer_gap": _gap,
    "odometer_exception": _exception,
    "car_not_present": _not_present,
    "listing_inspection_expired": _expired,
    "inspection_accident": _insp_accident,
    "inspection_simple_repair": _insp_on,
    "inspection_missed_frame_damage": _missed_frame,
    "vin_marking_suspect": _insp_on,
    "illegal_tuning": _insp_on,
    "accident_record": _accident,
    "total_loss": _count,
    "flood": _count,
    "fire": _count,
    "scrapped": _dated("scrapped"),
    "stolen": _dated("thefts"),
    "active_lien": _lien,
    "open_recall": _recall,
    "open_dispute": _none,
    "void_record": _none,
    "commercial_use": _uses,
}


def flag_view(flag: Flag, state: State, t: Translator) -> dict[str, Any]:
    """``{code, severity, topic, title, detail, records}`` of one report flag."""
    code = str(flag["code"])
    title_key, detail_key = f"flag.{code}", f"flag.{code}.detail"
    title = t(title_key) if t.has(title_key) else code.replace("_", " ")
    detail = str(flag.get("message", ""))
    params_of = PARAMS.get(code)
    if params_of is not None and t.has(detail_key):
        # On an unknown state shape keep the report's own sentence: it is data, and correct.
        with contextlib.suppress(KeyError, IndexError, TypeError):
            detail = t(detail_key, **params_of(state, flag, t))
    return {
        "code": code,
        "severity": flag.get("severity", "info"),
        "topic": topic_of(code),
        "title": title,
        "detail": detail,
        "records": list(flag.get("records", [])),
    }
