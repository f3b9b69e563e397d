"""What the vehicle page shows, built from the VIN's verifiable report.

The page is rendered from the very report (``carledger.report.v1``) that the browser
then fetches and re-checks: the timeline comes from the report's signed records,
the chart and the inspection diagram from the proven vehicle state, the summary from
the report's summary. So "verified" on the page means: what you read here is what
the verifier checked (the script compares the report it verified with the content
hash this page was rendered from).

A printed report's QR code names ``?h=<checkpoint height>&c=<content hash>``;
:func:`printed_status` says whether the current report is that one, a newer one, or
contradicts it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import segno
from markupsafe import Markup

from carledger.ledger.ledger import Ledger
from carledger.verifier import content_hash
from carledger.web import directory
from carledger.web.chart import odometer_chart
from carledger.web.flags import SEVERITY_ORDER, TOPICS, flag_view
from carledger.web.i18n import Translator
from carledger.web.panels import FRAME_LAYOUT, OUTER_LAYOUT, diagram

__all__ = ["printed_status", "qr_svg", "record_facts", "vehicle_page"]

State = dict[str, Any]
_HEX64 = re.compile(r"[0-9a-f]{64}")

# payload field -> how to show it; fields not named here are not shown in the timeline
# (references to owners are pseudonyms a reader should not see; hashes are in the JSON).
_FIELDS: dict[str, str] = {
    "date": "text",
    "odometer_km": "km",
    "km": "km",
    "price": "price",
    "amount": "price",
    "dealer": "text",
    "market": "market",
    "listing_no": "text",
    "reason": "enum",
    "plate": "text",
    "use": "use",
    "first_registered_on": "text",
    "kind": "enum",
    "firm": "text",
    "gate": "text",
    "time": "time",
    "campaign": "text",
    "title": "text",
    "lien_id": "text",
    "creditor": "text",
    "outcome": "enum",
    "serial": "text",
    "part_no": "text",
    "position": "text",
    "soh_permille": "permille",
    "cycles": "int",
    "make": "text",
    "model": "text",
    "model_year": "text",
    "trim": "text",
    "color": "text",
    "fuel": "fuel",
    "old_km": "km",
    "new_km": "km",
    "total_loss": "bool",
    "flood": "bool",
    "fire": "bool",
    "frame_damage": "bool",
    "target": "record",
    "dispute": "record",
}


def _value(kind: str, value: Any, t: Translator, markets: dict[str, str]) -> str:
    if kind == "km":
        return t.km(int(value))
    if kind == "price":
        return t.price(int(value))
    if kind == "bool":
        return t("common.yes") if value else t("common.no")
    if kind == "market":
        return markets.get(str(value), str(value))
    if kind == "time":
        return t.time(str(value))
    if kind == "use":
        return t.maybe(f"use.{value}", str(value))
    if kind == "fuel":
        return t.maybe(f"fuel.{value}", str(value))
    if kind == "enum":
        return t.maybe(f"enum.{value}", str(value))
    if kind == "permille":
        return f"{int(value) / 10:.1f}%"
    if kind == "int":
        return t.number(int(value))
    if kind == "record":
        return str(value)[:12] + "…"
    return str(value)


def record_facts(
    payload: dict[str, Any], t: Translator, markets: dict[str, str]
) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of a record's payload a reader cares about."""
    out: list[tuple[str, str]] = []
    own = payload.get("own_damage")
    if isinstance(own, dict):
        total = sum(int(own.get(k, 0)) for k in ("parts", "labour", "paint"))
        out.append((t("field.own_damage"), t.price(total)))
    for name, kind in _FIELDS.items():
        if name in payload and payload[name] is not None and not isinstance(payload[name], dict):
            out.append((t(f"field.{name}"), _value(kind, payload[name], t, markets)))
    fields = payload.get("fields")
    if isinstance(fields, dict):
        changed = ", ".join(f"{t.maybe(f'field.{k}', k)} → {v}" for k, v in fields.items())
        out.append((t("field.fields"), changed))
    vehicles = payload.get("vehicles")
    if isinstance(vehicles, list):
        out.append((t("field.vehicles"), t.number(len(vehicles))))
    return out


def printed_status(
    height: int, current_hash: str, records_heights: list[int], h: int | None, c: str | None
) -> dict[str, Any] | None:
    """What a QR code's ``h``/``c`` mean against the current report (None without them).

    ``state``: ``same`` (this is the printed report), ``newer`` (``new_records`` about
    this car were added since; 0 means only the checkpoint moved on), ``ahead`` (the
    printed checkpoint is beyond this node's head), ``mismatch`` (same height, other
    content: the printed document is not what the ledger says), ``invalid``.
    """
    if h is None and c is None:
        return None
    if h is None or c is None or h < 0 or not _HEX64.fullmatch(c):
        return {"state": "invalid", "h": h, "c": c}
    if c == current_hash:
        return {"state": "same", "h": h, "c": c}
    if h > height:
        return {"state": "ahead", "h": h, "c": c}
    if h == height:
        return {"state": "mismatch", "h": h, "c": c}
    newer = sum(1 for rh in records_heights if rh > h)
    return {"state": "newer", "h": h, "c": c, "new_records": newer}


def qr_svg(url: str, title: str) -> Markup:
    svg = segno.make(url, error="m").svg_inline(
        scale=3, border=2, title=title, svgclass="qr", lineclass=None
    )
    return Markup(svg)  # noqa: S704 (segno's own SVG; the title is escaped by segno)


def _org_names(ledger: Ledger) -> Callable[[str | None], str]:
    cache: dict[str, str] = {}

    def name(org_id: str | None) -> str:
        if org_id is None:
            return ""
        if org_id not in cache:
            entry = directory.org(ledger, org_id)
            cache[org_id] = entry["name"] if entry else org_id
        return cache[org_id]

    return name


def _topics(summary: dict[str, Any], flags: list[dict[str, Any]], t: Translator) -> list[Any]:
    """The buyer's summary: one plain sentence per topic, coloured by its worst flag."""
    acc = summary.get("accidents") or {}
    odo = summary.get("odometer") or {}
    disputes = summary.get("disputes") or {}
    latest = odo.get("latest")
    inconsistent = [f for f in flags if f["topic"] == "inconsistencies"]
    sentences = {
        "accidents": t(
            "sum.accidents.some",
            n=acc.get("reported", 0),
            own=t.price(int(acc.get("own_damage_krw", 0))),
            verdict=t("sum.accident_verdict.yes")
            if acc.get("inspection_accident")
            else t("sum.accident_verdict.simple")
            if acc.get("inspection_simple_repair")
            else t("sum.accident_verdict.no"),
        )
        if acc.get("reported") or acc.get("inspection_accident")
        else t("sum.accidents.none")
        if not acc.get("inspection_simple_repair")
        else t("sum.accidents.simple"),
        "odometer": t(
            "sum.odometer.latest",
            km=t.km(int(latest["km"])),
            on=latest["on"],
            rollbacks=odo.get("rollbacks", 0),
            implausible=odo.get("implausible", 0),
        )
        if latest
        else t("sum.odometer.none"),
        "owners": t(
            "sum.owners",
            n=summary.get("owners", 0),
            current=t("sum.owner.stock")
            if summary.get("owner") == "dealer stock"
            else t("sum.owner.none")
            if summary.get("owner") is None
            else t("sum.owner.n", n=summary.get("owners", 0)),
        ),
        "liens": t("sum.liens.some", n=len(summary.get("liens") or []))
        if summary.get("liens")
        else t("sum.liens.none"),
        "recalls": t("sum.recalls.some", n=len((summary.get("recalls") or {}).get("open", [])))
        if (summary.get("recalls") or {}).get("open")
        else t("sum.recalls.none"),
        "theft": t("sum.theft.stolen")
        if summary.get("stolen")
        else t("sum.theft.scrapped")
        if summary.get("scrapped")
        else t("sum.theft.none"),
        "disputes": t(
            "sum.disputes.some", open=disputes.get("open", 0), upheld=disputes.get("upheld", 0)
        )
        if disputes.get("open") or disputes.get("upheld")
        else t("sum.disputes.none"),
        "inconsistencies": t("sum.inconsistencies.some", n=len(inconsistent))
        if inconsistent
        else t("sum.inconsistencies.none"),
    }
    out = []
    for topic in TOPICS:
        mine = [f for f in flags if f["topic"] == topic]
        worst = min((SEVERITY_ORDER.get(f["severity"], 2) for f in mine), default=3)
        level = ("critical", "warning", "info", "ok")[worst]
        out.append(
            {
                "topic": topic,
                "label": t(f"topic.{topic}"),
                "level": level,
                "sentence": sentences[topic],
                "flags": mine,
            }
        )
    return out


def _inspections(
    records: list[dict[str, Any]], state: State, t: Translator
) -> list[dict[str, Any]]:
    derived = {i["id"]: i for i in state.get("inspections", [])}
    out = []
    for rec in records:
        if rec["type"] != "inspection.record":
            continue
        p = rec["payload"]
        entry = derived.get(rec["id"], {})
        condition = []
        for system, items in sorted(p.get("condition", {}).items()):
            for item, rating in sorted(items.items()):
                condition.append(
                    {
                        "system": t.maybe(f"system.{system}", system),
                        "item": t.maybe(f"item.{item}", item.replace("_", " ")),
                        "rating": t.maybe(f"rating.{rating}", rating),
                        "bad": rating in ("bad", "seep", "leak", "low"),
                    }
                )
        panels = p.get("panels", {})
        out.append(
            {
                "id": rec["id"],
                "on": p.get("date"),
                "header": p.get("header", {}),
                "overall": p.get("overall", {}),
                "accident": bool(entry.get("accident")),
                "simple_repair": bool(entry.get("simple_repair")),
                "void": bool(entry.get("void")),
                "outer": diagram(panels, OUTER_LAYOUT),
                "frame": diagram(panels, FRAME_LAYOUT),
                "findings": [
                    (t(f"panel.{name}"), [t(f"panelcode.{c}") for c in codes])
                    for name, codes in sorted(panels.items())
                ],
                "condition": condition,
                "repair_needed": [t.maybe(f"repair.{r}", r) for r in p.get("repair_needed", [])],
                "opinion": p.get("opinion"),
                "signers": rec["signers"],
            }
        )
    return out


def vehicle_page(
    ledger: Ledger,
    report: dict[str, Any],
    t: Translator,
    *,
    printed: tuple[int | None, str | None] = (None, None),
) -> dict[str, Any]:
    """The template context of ``/vehicles/{vin}`` for ``report`` (from ``report_view``)."""
    org_name = _org_names(ledger)
    markets = {m["id"]: m["name"] for m in directory.markets(ledger)}
    value = report["state"]["value"]
    state: State = json.loads(base64.b64decode(value)) if value is not None else {}
    summary = report["summary"]
    log = state.get("log", {})
    records = []
    for rec in report["records"]:
        envelope = json.loads(base64.b64decode(rec["tx"]["body"]))
        tx_id = _tx_id(rec["tx"]["body"])
        entry = log.get(tx_id, {})
        payload = envelope.get("payload", {})
        records.append(
            {
                "id": tx_id,
                "seq": rec["seq"],
                "height": rec["height"],
                "time": rec["time"],
                "type": rec["type"],
                "type_label": t.maybe(f"type.{rec['type']}", rec["type"]),
                "payload": payload,
                "facts": record_facts(payload, t, markets),
                "signers": [
                    {**s, "org_name": org_name(s.get("org"))} for s in rec.get("signers", [])
                ],
                "status": entry.get("status", "valid"),
                "target": entry.get("target") or payload.get("target"),
                "corrected_by": entry.get("corrected_by", []),
            }
        )
    flags = [flag_view(f, {**state, "_as_of": summary.get("as_of")}, t) for f in summary["flags"]]
    flags.sort(key=lambda f: SEVERITY_ORDER.get(f["severity"], 2))
    checkpoint = report["checkpoint"]["checkpoint"]
    keys = ledger.validator_keys()
    by_id = {v["id"]: v for v in directory.validators(ledger)}
    signed = []
    for sig in report["checkpoint"]["signatures"]:
        node = by_id.get(sig["validator"], {})
        if sig["validator"] in keys:
            signed.append(
                {
                    "id": sig["validator"],
                    "org": node.get("org"),
                    "org_name": org_name(node.get("org")),
                }
            )
    chash = content_hash(report)
    h, c = printed
    return {
        "vin": report["vin"],
        "birth": state.get("birth") or {},
        "summary": summary,
        "state": state,
        "status": summary.get("status", "unknown"),
        "plate": summary.get("plate"),
        "topics": _topics(summary, flags, t),
        "flags": flags,
        "chart": odometer_chart(state.get("odometer", {}).get("readings", [])),
        "records": records,
        "inspections": _inspections(records, state, t),
        "checkpoint": {
            "height": checkpoint["height"],
            "time": report["header"]["time"],
            "signed": signed,
            "validators": len(keys),
            "quorum": ledger.quorum(),
        },
        "content_hash": chash,
        "printed": printed_status(
            checkpoint["height"], chash, [r["height"] for r in records], h, c
        ),
        "listing": state.get("listing"),
        "gate": state.get("gate"),
        "markets": markets,
    }


def _tx_id(body_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(body_b64)).hexdigest()
