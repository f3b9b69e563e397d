"""Helpers for the report tests: a generated demo chain, committing extra records, the CLI."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from carledger.errors import VerificationFailure
from carledger.ledger.block import Proposal, RawTx, format_time, parse_time
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger
from carledger.ledger.tx import build_body, sign
from carledger.node.demo import DEMO_START
from carledger.node.home import Home
from carledger.report.build import build_report
from carledger.vehicle import demo
from carledger.vehicle.clock import local_date
from carledger.verifier import verify_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "report"
SEED = 11
VEHICLES = 40
#: A well-formed VIN (a non-North-American WMI, so no check digit) no demo car has.
ABSENT_VIN = "KMHZZ81CPZU999999"


@dataclass
class DemoChain:
    """The generated chain: its data directory (pristine copy kept) and an open ledger."""

    path: Path
    pristine: Path
    genesis: Genesis
    ledger: Ledger
    network: demo.DemoNetwork
    vins: list[str]
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def report(self, vin: str) -> dict[str, Any]:
        """A fresh deep copy of the VIN's report (tests mutate what they get)."""
        if vin not in self.reports:
            self.reports[vin] = build_report(self.ledger, vin)
        return copy.deepcopy(self.reports[vin])

    def longest(self) -> str:
        return max(self.vins, key=lambda v: len(self.reports[v]["records"]))

    def copy_to(self, target: Path) -> Path:
        """A copy of the chain as generated (before any test touched it)."""
        shutil.copytree(self.pristine, target)
        return target


def failure(report: Any, genesis: Genesis, **kwargs: Any) -> VerificationFailure:
    """The VerificationFailure verifying ``report`` raises (fails the test if none)."""
    with pytest.raises(VerificationFailure) as info:
        verify_report(report, genesis, **kwargs)
    return info.value


def commit(
    ledger: Ledger,
    network: demo.DemoNetwork,
    records: list[tuple[str, dict[str, Any], str]],
    *,
    after_s: int = 60,
) -> str:
    """Commit ``(type, payload, member)`` records as the next block; return the block time.

    ``payload`` gets ``vin``'s current ``prev`` filled in when it names a ``vin``.
    """
    when = format_time(parse_time(ledger.head.time) + after_s * 1000)
    heads: dict[str, str | None] = {}
    raws = []
    for i, (type_, payload, member) in enumerate(records):
        body = dict(payload)
        vin = body.get("vin")
        if isinstance(vin, str) and "prev" not in body:
            if vin not in heads:
                state = ledger.state(f"vehicle/{vin}")
                heads[vin] = None if state is None else state["head"]
            body["prev"] = heads[vin]
        key = network.key(member)
        tx = sign(
            build_body(
                chain=network.chain,
                type=type_,
                payload=body,
                signers=[key.public_hex],
                created=when[:19] + "Z",
                nonce=f"report-test-{ledger.height}-{i}",
            ),
            [key],
        )
        if isinstance(vin, str):
            heads[vin] = tx.id
        raws.append(RawTx(tx.body, tx.signatures))
    block = ledger.apply(Proposal(ledger.height + 1, when, "node-1", tuple(raws)))
    assert all(r.code == "ok" for r in block.results), [r.code for r in block.results]
    return when


def reading(ledger: Ledger, vin: str, km: int) -> tuple[str, dict[str, Any], str]:
    """An odometer reading of ``vin`` dated the next block's local date."""
    on = local_date(format_time(parse_time(ledger.head.time) + 60_000))
    return (
        "odometer.reading",
        {"vin": vin, "km": km, "observed_on": on, "source": "service"},
        "repair-1",
    )


def network() -> demo.DemoNetwork:
    return demo.build_network(str(SEED), DEMO_START)


def open_copy(path: Path) -> Ledger:
    return Home(path).open_ledger(None)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carledger", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path
