"""A VIN's history: every record in order, who signed it, its status and its links.

Pure: the caller (API, report, CLI) reads the VIN's records from its store and the
signers' membership entries, and passes them in. Statuses follow the same rules as
the vehicle state's ``log`` (the tests check both agree):

- ``void``: the target of an upheld dispute;
- ``disputed``: the target of an open dispute;
- ``corrected``: the target of a correction that is not itself void;
- ``valid``: anything else.

Links: ``corrected_by``/``corrects`` join corrections and their targets,
``disputed_by``/``disputes`` join disputes and targets, ``resolved_by``/``resolves``
join disputes and resolutions, ``voided_by`` names the resolution that voided a
record. A corrected record also shows ``effective``: its payload with the corrected
fields of its non-void corrections applied in order (the original stays in
``payload``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Attribution", "HistoryRecord", "history"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who signed: the key, and the organisation, member and roles it had at the time."""

    key: str
    org: str | None
    member: str | None
    roles: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "org": self.org, "member": self.member, "roles": list(self.roles)}


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    id: str
    type: str
    payload: Mapping[str, Any]
    signers: Sequence[Attribution]
    height: int
    time: str


def history(records: Sequence[HistoryRecord]) -> list[dict[str, Any]]:
    """The history entries of one VIN, in the order of ``records`` (commit order)."""
    by_id = {r.id: r for r in records}
    # Pass 1: disputes, their resolutions, and what is void.
    resolution: dict[str, HistoryRecord] = {}
    for r in records:
        if r.type == "dispute.resolve" and r.payload.get("dispute") in by_id:
            resolution.setdefault(str(r.payload["dispute"]), r)
    voided_by: dict[str, str] = {}
    for dispute_id, res in resolution.items():
        if res.payload.get("outcome") == "upheld":
            voided_by.setdefault(str(by_id[dispute_id].payload["target"]), res.id)
    # Pass 2: links.
    corrected_by: dict[str, list[str]] = {}
    disputed_by: dict[str, list[str]] = {}
    for r in records:
        target = r.payload.get("target")
        if r.type == "record.correct" and target in by_id:
            corrected_by.setdefault(str(target), []).append(r.id)
        elif r.type == "record.dispute" and target in by_id:
            disputed_by.setdefault(str(target), []).append(r.id)
    out: list[dict[str, Any]] = []
    for r in records:
        live_corrections = [c for c in corrected_by.get(r.id, []) if c not in voided_by]
        open_disputes = [d for d in disputed_by.get(r.id, []) if d not in resolution]
        if r.id in voided_by:
            status = "void"
        elif open_disputes:
            status = "disputed"
        elif live_corrections:
            status = "corrected"
        else:
            status = "valid"
        entry: dict[str, Any] = {
            "id": r.id,
            "type": r.type,
            "height": r.height,
            "time": r.time,
            "signers": [s.to_dict() for s in r.signers],
            "payload": dict(r.payload),
            "status": status,
            "corrected_by": corrected_by.get(r.id, []),
            "disputed_by": disputed_by.get(r.id, []),
            "voided_by": voided_by.get(r.id),
        }
        if live_corrections:
            effective = dict(r.payload)
            for c in live_corrections:
                effective.update(by_id[c].payload["fields"])
            entry["effective"] = effective
        if r.type == "record.correct":
            entry["corrects"] = r.payload.get("target")
        elif r.type == "record.dispute":
            entry["disputes"] = r.payload.get("target")
            resolved = resolution.get(r.id)
            entry["resolved_by"] = None if resolved is None else resolved.id
            entry["outcome"] = "open" if resolved is None else resolved.payload.get("outcome")
        elif r.type == "dispute.resolve":
            entry["resolves"] = r.payload.get("dispute")
        out.append(entry)
    return out
