"""A newer report must be consistent with an older one, or the ledger is caught lying.

Two ledgers are grown from one copy of the demo chain (the same genesis, the same
validator key) and then fed different records: the equivocation a faulty or
malicious node operator could show to two buyers. Each fork's reports verify on
their own; checked against each other with a consistency proof, they do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from report_support import DemoChain, cli, commit, failure, open_copy, reading, write_json

from carledger.errors import InvalidInput
from carledger.ledger.ledger import Ledger
from carledger.report.build import build_report
from carledger.verifier import verify_report

Report = dict[str, Any]


@dataclass
class Forks:
    vin: str
    base: Report  # before the fork, the same on both sides
    a1: Report  # fork A after one block (reading of 200,000 km)
    a2: Report  # fork A after two blocks
    b1: Report  # fork B after one block (reading of 100 km: a rollback)
    b2_since_a1: Report  # fork B after two blocks, with a proof from a1's log size
    a2_since_base: Report
    a2_since_a1: Report
    b1_since_base: Report
    ledger_a: Ledger


@pytest.fixture(scope="module")
def forks(chain: DemoChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forks]:
    root = tmp_path_factory.mktemp("forks")
    a = open_copy(chain.copy_to(root / "a"))
    b = open_copy(chain.copy_to(root / "b"))
    vin = chain.vins[5]
    try:
        base = build_report(a, vin)
        size = base["header"]["log_size"]
        km = base["summary"]["odometer"]["latest"]["km"]
        commit(a, chain.network, [reading(a, vin, km + 2_000)])
        a1 = build_report(a, vin)
        commit(b, chain.network, [reading(b, vin, km + 1_000)])
        b1 = build_report(b, vin)
        b1_since_base = build_report(b, vin, since=size)
        commit(a, chain.network, [reading(a, vin, km + 3_000)])
        commit(b, chain.network, [reading(b, vin, km + 4_000)])
        yield Forks(
            vin=vin,
            base=base,
            a1=a1,
            a2=build_report(a, vin),
            b1=b1,
            b2_since_a1=build_report(b, vin, since=a1["header"]["log_size"]),
            a2_since_base=build_report(a, vin, since=size),
            a2_since_a1=build_report(a, vin, since=a1["header"]["log_size"]),
            b1_since_base=b1_since_base,
            ledger_a=a,
        )
    finally:
        a.store.close()
        b.store.close()


def test_each_fork_verifies_alone(chain: DemoChain, forks: Forks) -> None:
    for report in (forks.base, forks.a1, forks.a2, forks.b1, forks.b2_since_a1):
        verify_report(report, chain.genesis)
    assert forks.a1["header"]["log_size"] == forks.b1["header"]["log_size"]
    assert forks.a1["header"]["log_root"] != forks.b1["header"]["log_root"]


def test_newer_report_is_consistent_with_older(chain: DemoChain, forks: Forks) -> None:
    result = verify_report(forks.a2_since_base, chain.genesis, previous=forks.base)
    assert result.records == len(forks.base["records"]) + 2
    verify_report(forks.a2_since_a1, chain.genesis, previous=forks.a1)
    # Both forks extend the common past: each is consistent with the base report.
    verify_report(forks.b1_since_base, chain.genesis, previous=forks.base)
    # A report is consistent with itself (no proof needed at equal size).
    verify_report(forks.a1, chain.genesis, previous=forks.a1)
    assert forks.a2_since_base["consistency"]["size"] == forks.base["header"]["log_size"]


def test_two_histories_of_one_size_are_caught(chain: DemoChain, forks: Forks) -> None:
    error = failure(forks.b1, chain.genesis, previous=forks.a1)
    assert error.code == "report_inconsistent"
    assert "Both reports are of log size" in error.message
    assert "two different histories" in error.message


def test_a_forked_newer_report_is_caught(chain: DemoChain, forks: Forks) -> None:
    # Buyer 1 got a1 from fork A; later a node of fork B answers with a proof from
    # a1's size, computed over its own log: the old root is not its prefix.
    error = failure(forks.b2_since_a1, chain.genesis, previous=forks.a1)
    assert error.code == "report_inconsistent"
    size = forks.a1["header"]["log_size"]
    assert f"The previous report's log (size {size}, height" in error.message
    assert "is not a prefix of this report's log" in error.message


def test_a_newer_report_without_proof_is_refused(chain: DemoChain, forks: Forks) -> None:
    error = failure(forks.a2, chain.genesis, previous=forks.base)
    assert error.code == "consistency_proof_missing"
    assert f"?since={forks.base['header']['log_size']}" in error.message
    # A proof from another size does not do either.
    error = failure(forks.a2_since_a1, chain.genesis, previous=forks.base)
    assert error.code == "consistency_proof_missing"


def test_tampered_consistency_proof_is_refused(chain: DemoChain, forks: Forks) -> None:
    report = {**forks.a2_since_base, "consistency": dict(forks.a2_since_base["consistency"])}
    proof = list(report["consistency"]["proof"])
    proof[0] = proof[-1] if proof[0] != proof[-1] else "00" * 32
    report["consistency"]["proof"] = proof
    error = failure(report, chain.genesis, previous=forks.base)
    assert error.code == "report_inconsistent"


def test_reports_passed_the_wrong_way_round(chain: DemoChain, forks: Forks) -> None:
    error = failure(forks.base, chain.genesis, previous=forks.a2_since_base)
    assert error.code == "report_not_newer"
    assert "pass them the other way round" in error.message


def test_previous_report_of_another_vin(chain: DemoChain, forks: Forks) -> None:
    other = chain.report(chain.vins[6])
    error = failure(forks.a2_since_base, chain.genesis, previous=other)
    assert error.code == "vin_mismatch"
    assert f"about {chain.vins[6]}, this one about {forks.vin}" in error.message


def test_a_tampered_previous_report_is_named(chain: DemoChain, forks: Forks) -> None:
    older = {**forks.base, "summary": {**forks.base["summary"], "owners": 99}}
    error = failure(forks.a2_since_base, chain.genesis, previous=older)
    assert error.code == "summary_mismatch"
    assert error.message.startswith("The previous report does not verify: ")
    assert error.detail["report"] == "previous"


@pytest.mark.parametrize("since", [0, -1, 10**9])
def test_since_out_of_range(forks: Forks, since: int) -> None:
    with pytest.raises(InvalidInput) as info:
        build_report(forks.ledger_a, forks.vin, since=since)
    assert info.value.code == "invalid_proof_request"


def test_cli_verify_report_previous(chain: DemoChain, forks: Forks, tmp_path: Path) -> None:
    genesis = chain.path / "genesis.json"
    old = write_json(tmp_path / "old.json", forks.base)
    new = write_json(tmp_path / "new.json", forks.a2_since_base)
    done = cli("verify-report", str(new), "--genesis", str(genesis), "--previous", str(old))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "consistent with" in done.stdout
    forked = write_json(tmp_path / "forked.json", forks.b2_since_a1)
    older = write_json(tmp_path / "a1.json", forks.a1)
    done = cli("verify-report", str(forked), "--genesis", str(genesis), "--previous", str(older))
    assert done.returncode != 0
    assert "[report_inconsistent]" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
