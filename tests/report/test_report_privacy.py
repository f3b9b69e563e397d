"""A report never carries personal data (docs/records.md: no personal data on chain).

- Owners appear to a reader only as "owner 1, 2, 3" (or "dealer stock"); their
  pseudonymous references stay in the signed records, never in the summary or PDF.
- Every party reference in a record is a pseudonym (``key:``, ``org:`` or ``ref:``).
- Off-chain documents (claim details, contracts, invoices) appear only as hashes.
- No key material beyond public keys.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from report_support import DemoChain

from carledger.report.pdf import render_pdf

PARTY_FIELDS = ("from", "to", "seller_ref", "buyer_ref", "disputant")
REF = re.compile(r"key:[0-9a-f]{64}|org:[a-z0-9][a-z0-9-]{0,63}|ref:[0-9a-f]{16,64}")
HASH = re.compile(r"[0-9a-f]{64}")
#: What an insurance claim may carry on chain: amounts, flags and the details' hash.
CLAIM_FIELDS = {
    "vin",
    "prev",
    "date",
    "own_damage",
    "other_party_damage",
    "total_loss",
    "flood",
    "fire",
    "frame_damage",
    "claim_hash",
    "accident",
    "odometer_km",
}
PERSONAL = {
    "phone number": re.compile(r"\b01[016789]-?\d{3,4}-?\d{4}\b"),
    "resident registration number": re.compile(r"\b\d{6}-[1-4]\d{6}\b"),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
}


def _payloads(report: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for rec in report["records"]:
        envelope = json.loads(base64.b64decode(rec["tx"]["body"]))
        yield envelope["type"], envelope["payload"]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _owner_refs(report: dict[str, Any]) -> set[str]:
    refs = set()
    for _, payload in _payloads(report):
        refs.update(str(payload[f]) for f in PARTY_FIELDS if payload.get(f))
    return refs


def test_summary_shows_owners_as_counts_only(chain: DemoChain) -> None:
    seen_owner = False
    for vin in chain.vins:
        report = chain.reports[vin]
        summary = report["summary"]
        owner = summary["owner"]
        assert owner in (None, "dealer stock") or re.fullmatch(r"owner \d+", owner), owner
        seen_owner |= owner is not None and owner.startswith("owner ")
        text = json.dumps(summary, ensure_ascii=False)
        for ref in _owner_refs(report):
            if not ref.startswith("org:"):  # dealers are organisations, named on purpose
                assert ref not in text and ref[4:] not in text
        assert not any(REF.fullmatch(s) and not s.startswith("org:") for s in _strings(summary))
    assert seen_owner


def test_party_references_are_pseudonyms(chain: DemoChain) -> None:
    kinds = set()
    for vin in chain.vins:
        for _, payload in _payloads(chain.reports[vin]):
            for field in PARTY_FIELDS:
                ref = payload.get(field)
                if ref is not None:
                    assert REF.fullmatch(ref), (field, ref)
                    kinds.add(ref[:4])
    assert {"key:", "org:"} <= kinds  # citizens by their key, dealers by their org


def test_off_chain_details_only_as_hashes(chain: DemoChain) -> None:
    claims = hashes = 0
    for vin in chain.vins:
        for type_, payload in _payloads(chain.reports[vin]):
            for field, value in payload.items():
                if field.endswith("_hash"):
                    assert isinstance(value, str) and HASH.fullmatch(value), (field, value)
                    hashes += 1
            if type_ == "insurance.claim":
                claims += 1
                assert set(payload) <= CLAIM_FIELDS, set(payload) - CLAIM_FIELDS
                assert HASH.fullmatch(payload["claim_hash"])
            for text in _strings(payload):
                for what, pattern in PERSONAL.items():
                    assert not pattern.search(text), (what, text)
    assert claims > 0 and hashes > claims


def test_no_key_material_but_public_keys(chain: DemoChain) -> None:
    network = chain.network
    keys = [*network.admins.values(), *network.validators.values()]
    keys += [m.key for m in network.members.values()]
    secrets = set()
    for key in keys:
        seed = key.seed()
        secrets |= {seed.hex(), base64.b64encode(seed).decode()}
    node_key = (chain.path / "node.key").read_text()
    for vin in chain.vins:
        text = json.dumps(chain.reports[vin])
        assert "PRIVATE" not in text and "BEGIN" not in text
        assert node_key.strip() not in text
        found = {s for s in secrets if s in text}
        assert not found
        report = chain.reports[vin]
        signers = {
            s
            for rec in report["records"]
            for s in json.loads(base64.b64decode(rec["tx"]["body"]))["signers"]
        }
        assert set(report["members"]) == signers


def test_printed_report_has_no_references(chain: DemoChain, tmp_path: Path) -> None:
    vin = max(chain.vins, key=lambda v: len(_owner_refs(chain.reports[v])))
    report = chain.reports[vin]
    pdf = tmp_path / "p.pdf"
    pdf.write_bytes(render_pdf(report, base_url="http://127.0.0.1:8000"))
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = "".join(text.split())
    for ref in _owner_refs(report):
        if not ref.startswith("org:"):
            assert ref[4:20] not in flat
    assert "key:" not in flat and "ref:" not in flat
