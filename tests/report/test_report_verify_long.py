"""Verification of long reports: signatures checked on two threads beside the rest.

From ``verifier._PARALLEL_FROM`` records on, the verifier starts the records'
signature checks on two threads before it checks the checkpoint, and reads each
answer back at its record's turn. These reports are long enough for that path; the
faults must still be the ones the record order gives.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_support import DemoChain, commit, failure, open_copy, reading

from carledger import verifier
from carledger.crypto.keys import SigningKey
from carledger.ledger.block import Checkpoint
from carledger.report.build import build_report

LONG = 70


@pytest.fixture(scope="module")
def long_report(chain: DemoChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A report of ``LONG`` records or more: the chain's longest history, extended."""
    path = chain.copy_to(tmp_path_factory.mktemp("long") / "node")
    ledger = open_copy(Path(path))
    try:
        vin = chain.longest()
        have = len(chain.reports[vin]["records"]) if vin in chain.reports else 0
        state = ledger.state(f"vehicle/{vin}")
        km = max(r["km"] for r in state["odometer"]["readings"]) if state else 0
        while have < LONG:
            batch = [reading(ledger, vin, km + 100 * (i + 1)) for i in range(10)]
            commit(ledger, chain.network, batch)
            km += 1000
            have = len(build_report(ledger, vin)["records"])
        yield build_report(ledger, vin), chain.genesis
    finally:
        ledger.store.close()


def _bad_signature(report: dict[str, Any], i: int) -> None:
    sig = report["records"][i]["tx"]["signatures"][0]
    report["records"][i]["tx"]["signatures"][0] = ("0" if sig[0] != "0" else "1") + sig[1:]


def _bad_inclusion(report: dict[str, Any], i: int) -> None:
    path = report["records"][i]["inclusion"]
    path[0], path[1] = path[1], path[0]


def test_a_long_report_verifies(long_report: Any) -> None:
    report, genesis = long_report
    assert len(report["records"]) >= max(LONG, verifier._PARALLEL_FROM)
    result = verifier.verify_report(report, genesis)
    assert result.records == len(report["records"])


@pytest.mark.parametrize("index", [0, 7, 8, 40, -1])
def test_a_bad_signature_anywhere_is_found_at_its_record(long_report: Any, index: int) -> None:
    report, genesis = long_report
    forged = copy.deepcopy(report)
    _bad_signature(forged, index)
    where = index % len(report["records"])
    error = failure(forged, genesis)
    assert error.code == "record_signature_invalid"
    assert error.message.startswith(f"records[{where}]"), error.message


@pytest.mark.parametrize(
    ("signature_at", "inclusion_at", "code", "where"),
    [
        (45, 10, "inclusion_proof_invalid", 10),
        (10, 45, "record_signature_invalid", 10),
        (20, 20, "record_signature_invalid", 20),  # within a record, signatures first
    ],
)
def test_the_first_fault_in_record_order_is_the_one_reported(
    long_report: Any, signature_at: int, inclusion_at: int, code: str, where: int
) -> None:
    report, genesis = long_report
    forged = copy.deepcopy(report)
    _bad_signature(forged, signature_at)
    _bad_inclusion(forged, inclusion_at)
    error = failure(forged, genesis)
    assert (error.code, error.message.split(" ", 1)[0]) == (code, f"records[{where}]")


def test_a_bad_checkpoint_comes_before_the_records_signatures(long_report: Any) -> None:
    report, genesis = long_report
    forged = copy.deepcopy(report)
    _bad_signature(forged, 3)
    checkpoint = Checkpoint.from_dict(forged["checkpoint"]["checkpoint"])
    forged["checkpoint"]["signatures"] = [
        checkpoint.sign("node-1", SigningKey.generate()).to_dict()
    ]
    assert failure(forged, genesis).code == "checkpoint_not_certified"


def test_records_that_are_not_a_list_are_malformed_after_the_checkpoint(long_report: Any) -> None:
    report, genesis = long_report
    forged = copy.deepcopy(report)
    forged["records"] = {"0": forged["records"][0]}
    assert failure(forged, genesis).code == "report_malformed"
