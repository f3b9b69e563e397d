"""Reports built on a generated ledger verify; each tampered part is refused precisely.

The table of mutations is the heart: every way a dealer or a node could bend a
report (drop, reorder, insert, alter a byte, swap a proof node, forge or strip a
checkpoint signature, present an old checkpoint, hide the latest record, dress up
the summary...) must fail with its own code and a message naming what is wrong.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from report_support import ABSENT_VIN, DemoChain, failure

from carledger.crypto.keys import SigningKey
from carledger.errors import OrderingError
from carledger.ledger.block import Checkpoint, Proposal, RawTx, parse_time
from carledger.ledger.genesis import Genesis
from carledger.ledger.tx import build_body, sign
from carledger.node.demo import DEMO_START, create_demo
from carledger.node.home import Home
from carledger.report.build import build_report
from carledger.vehicle import demo
from carledger.verifier import REPORT_FORMAT, content_hash, verify_report

Report = dict[str, Any]


def test_every_report_of_the_chain_verifies(chain: DemoChain) -> None:
    ids: set[str] = set()
    for vin in chain.vins:
        report = chain.report(vin)
        result = verify_report(report, chain.genesis)
        assert result.vin == vin
        assert result.records == len(report["records"]) == report["summary"]["records"] > 0
        assert result.height == chain.ledger.height
        assert result.checkpoint_time == chain.ledger.head.time
        assert result.validators == {"node-1"}
        assert result.content_hash == content_hash(report)
        assert result.organisations  # every record names who signed it
        ids.update(result.record_ids)
    # The demo chain holds vehicle records only, all accepted: together the reports
    # show every one of them (a recall, about several VINs, in each of their reports).
    assert len(ids) == chain.ledger.head.log_size


def test_report_shape(chain: DemoChain) -> None:
    report = chain.report(chain.longest())
    assert report["format"] == REPORT_FORMAT
    assert set(report) == {
        "format",
        "vin",
        "chain",
        "genesis_hash",
        "summary",
        "checkpoint",
        "header",
        "state",
        "members",
        "records",
    }
    assert report["header"]["height"] == report["checkpoint"]["checkpoint"]["height"]
    signers = {s["key"] for rec in report["records"] for s in rec["signers"]}
    assert signers == set(report["members"])
    seqs = [rec["seq"] for rec in report["records"]]
    assert seqs == sorted(seqs)


# --- the mutation table ----------------------------------------------------------------


def _body(report: Report, i: int) -> bytes:
    return base64.b64decode(report["records"][i]["tx"]["body"])


def _set_body(report: Report, i: int, body: bytes) -> None:
    report["records"][i]["tx"]["body"] = base64.b64encode(body).decode()


def _with_km(report: Report) -> int:
    return next(i for i in range(len(report["records"])) if b'"odometer_km":' in _body(report, i))


def _alter_digit(report: Report, chain: DemoChain) -> Report:
    i = _with_km(report)
    body = _body(report, i)
    at = body.index(b'"odometer_km":') + len(b'"odometer_km":')
    digit = body[at : at + 1]
    _set_body(report, i, body[:at] + (b"1" if digit != b"1" else b"2") + body[at + 1 :])
    return report


def _alter_structure(report: Report, chain: DemoChain) -> Report:
    body = _body(report, 2)
    _set_body(report, 2, b"[" + body[1:])
    return report


def _alter_signature(report: Report, chain: DemoChain) -> Report:
    sig = report["records"][3]["tx"]["signatures"][0]
    report["records"][3]["tx"]["signatures"][0] = ("0" if sig[0] != "0" else "1") + sig[1:]
    return report


def _drop(i: int) -> Callable[[Report, DemoChain], Report]:
    def mutate(report: Report, chain: DemoChain) -> Report:
        del report["records"][i]
        return report

    return mutate


def _swap(i: int, j: int) -> Callable[[Report, DemoChain], Report]:
    def mutate(report: Report, chain: DemoChain) -> Report:
        recs = report["records"]
        recs[i], recs[j] = recs[j], recs[i]
        return report

    return mutate


def _other_vin(chain: DemoChain, vin: str) -> str:
    return next(v for v in chain.vins if v != vin)


def _insert_other(at: int, which: int) -> Callable[[Report, DemoChain], Report]:
    def mutate(report: Report, chain: DemoChain) -> Report:
        other = chain.report(_other_vin(chain, report["vin"]))
        report["records"].insert(at, other["records"][which])
        report["members"].update(other["members"])
        return report

    return mutate


def _swap_proof_nodes(report: Report, chain: DemoChain) -> Report:
    path = report["records"][4]["inclusion"]
    path[0], path[1] = path[1], path[0]
    return report


def _truncate_proof(report: Report, chain: DemoChain) -> Report:
    report["records"][4]["inclusion"].pop()
    return report


def _other_proof(report: Report, chain: DemoChain) -> Report:
    report["records"][4]["inclusion"] = report["records"][5]["inclusion"]
    return report


def _shift_seq(report: Report, chain: DemoChain) -> Report:
    report["records"][4]["seq"] += 1
    return report


def _shift_time(report: Report, chain: DemoChain) -> Report:
    rec = report["records"][4]
    rec["time"] = rec["time"][:20] + ("001" if rec["time"][20:23] != "001" else "002") + "Z"
    return report


def _forge_checkpoint_signature(report: Report, chain: DemoChain) -> Report:
    checkpoint = Checkpoint.from_dict(report["checkpoint"]["checkpoint"])
    forged = checkpoint.sign("node-1", SigningKey.generate())
    report["checkpoint"]["signatures"] = [forged.to_dict()]
    return report


def _strip_signatures(report: Report, chain: DemoChain) -> Report:
    report["checkpoint"]["signatures"] = []
    return report


def _tamper_checkpoint(report: Report, chain: DemoChain) -> Report:
    report["checkpoint"]["checkpoint"]["log_size"] += 1
    return report


def _tamper_header(report: Report, chain: DemoChain) -> Report:
    report["header"]["tx_count"] += 1
    return report


def _tamper_summary(report: Report, chain: DemoChain) -> Report:
    report["summary"]["owners"] += 1
    return report


def _hide_flag(report: Report, chain: DemoChain) -> Report:
    report["summary"]["flags"] = []
    report["summary"]["odometer"]["gaps"] = 0
    return report


def _tamper_state_value(report: Report, chain: DemoChain) -> Report:
    value = base64.b64decode(report["state"]["value"])
    count = f'"records":{report["summary"]["records"]}'.encode()
    assert count in value
    value = value.replace(count, f'"records":{report["summary"]["records"] - 1}'.encode())
    report["state"]["value"] = base64.b64encode(value).decode()
    return report


def _other_state(report: Report, chain: DemoChain) -> Report:
    report["state"] = chain.report(_other_vin(chain, report["vin"]))["state"]
    return report


def _other_state_value(report: Report, chain: DemoChain) -> Report:
    report["state"]["value"] = chain.report(_other_vin(chain, report["vin"]))["state"]["value"]
    return report


def _absent_state(report: Report, chain: DemoChain) -> Report:
    absent = chain.report(ABSENT_VIN)["state"]
    report["state"]["value"] = None
    report["state"]["proof"] = absent["proof"]
    return report


def _claim_signer_org(report: Report, chain: DemoChain) -> Report:
    report["records"][0]["signers"][0]["org"] = "hyundai-motor-genuine"
    return report


def _tamper_member_entry(report: Report, chain: DemoChain) -> Report:
    key = report["records"][0]["signers"][0]["key"]
    report["members"][key]["value"] = base64.b64encode(b'{"org":"x"}').decode()
    return report


def _drop_member(report: Report, chain: DemoChain) -> Report:
    del report["members"][report["records"][0]["signers"][0]["key"]]
    return report


def _record_type(report: Report, chain: DemoChain) -> Report:
    report["records"][1]["type"] = "vehicle.register"
    return report


def _other_chain_field(report: Report, chain: DemoChain) -> Report:
    report["chain"] = "another-market"
    return report


def _other_genesis_hash(report: Report, chain: DemoChain) -> Report:
    report["genesis_hash"] = "0" * 64
    return report


def _not_a_report(report: Report, chain: DemoChain) -> Report:
    report["format"] = "carledger.report.v0"
    return report


def _height_type(report: Report, chain: DemoChain) -> Report:
    report["records"][0]["height"] = True
    return report


MUTATIONS: list[tuple[str, Callable[[Report, DemoChain], Report], str, str]] = [
    ("drop_middle", _drop(5), "chain_broken", r"records\[5\] \(\w+\.\.\.\) names \w+\.\.\. as"),
    ("drop_first", _drop(0), "chain_broken", r"records\[0\] .* previous record is none"),
    ("reorder", _swap(3, 4), "chain_broken", r"records\[3\] .*reordered, dropped or inserted"),
    ("insert_other_vin", _insert_other(2, 3), "vin_mismatch", r"records\[2\] .* not [A-Z0-9]{17}"),
    ("insert_other_first", _insert_other(0, 0), "vin_mismatch", r"records\[0\] .*vehicle.register"),
    ("alter_body_byte", _alter_digit, "record_signature_invalid", r"does not verify over its"),
    ("alter_body_structure", _alter_structure, "report_malformed", r"records\[2\] is not a trans"),
    ("alter_signature", _alter_signature, "record_signature_invalid", r"records\[3\] .*altered"),
    ("swap_proof_nodes", _swap_proof_nodes, "inclusion_proof_invalid", r"records\[4\] .* log"),
    ("truncate_proof", _truncate_proof, "inclusion_proof_invalid", r"has \d+ hashes; this one"),
    ("other_proof", _other_proof, "inclusion_proof_invalid", r"records\[4\] .* at height \d+"),
    ("shift_seq", _shift_seq, "inclusion_proof_invalid", r"records\[4\]"),
    ("shift_time", _shift_time, "inclusion_proof_invalid", r"records\[4\]"),
    ("forge_checkpoint_sig", _forge_checkpoint_signature, "checkpoint_not_certified", r"0 valid"),
    ("no_checkpoint_sigs", _strip_signatures, "checkpoint_not_certified", r"1 are needed"),
    ("tamper_checkpoint", _tamper_checkpoint, "checkpoint_not_certified", r"0 valid validator"),
    ("tamper_header", _tamper_header, "header_mismatch", r"does not hash to the certified"),
    ("hide_latest", _drop(-1), "report_incomplete", r"commits to (\d+) records .* has \d+"),
    ("tamper_summary", _tamper_summary, "summary_mismatch", r"first at summary\.owners"),
    ("hide_flags", _hide_flag, "summary_mismatch", r"first at summary\.flags"),
    ("tamper_state_value", _tamper_state_value, "state_proof_invalid", r"different value"),
    ("state_of_other_vin", _other_state, "vin_mismatch", r"proven state entry is 'vehicle/"),
    ("value_of_other_vin", _other_state_value, "state_proof_invalid", r"proof of state"),
    ("claims_absence", _absent_state, "state_proof_invalid", r"proof of state"),
    ("claim_signer_org", _claim_signer_org, "signer_mismatch", r"records\[0\] .* organisations"),
    ("tamper_member_entry", _tamper_member_entry, "state_proof_invalid", r"members\["),
    ("drop_member_proof", _drop_member, "report_malformed", r"records\[0\] is signed by"),
    ("record_type_label", _record_type, "report_malformed", r"records\[1\]\.type"),
    ("other_chain", _other_chain_field, "report_chain_mismatch", r"'another-market'"),
    ("other_genesis", _other_genesis_hash, "report_chain_mismatch", r"another genesis"),
    ("not_a_report", _not_a_report, "report_malformed", r"carledger\.report\.v1"),
    ("bool_height", _height_type, "report_malformed", r"records\[0\]\.height"),
]


@pytest.mark.parametrize(
    ("mutate", "code", "pattern"),
    [pytest.param(m, c, p, id=name) for name, m, c, p in MUTATIONS],
)
def test_tampered_report_is_refused(
    chain: DemoChain,
    mutate: Callable[[Report, DemoChain], Report],
    code: str,
    pattern: str,
) -> None:
    vin = chain.longest()
    report = mutate(chain.report(vin), chain)
    error = failure(report, chain.genesis)
    assert error.code == code, error.message
    assert re.search(pattern, error.message), error.message
    assert error.category == "verification_failure"
    assert error.diagnostics().endswith(f"[{code}]")


def test_hidden_latest_record_names_the_counts(chain: DemoChain) -> None:
    report = chain.report(chain.longest())
    n = len(report["records"])
    report["records"].pop()
    error = failure(report, chain.genesis)
    assert error.code == "report_incomplete"
    assert error.detail == {"committed": n, "shown": n - 1}


# --- freshness ---------------------------------------------------------------------------


def test_max_age(chain: DemoChain) -> None:
    report = chain.report(chain.longest())
    made = parse_time(report["header"]["time"])
    hour = 3600 * 1000
    ok = verify_report(report, chain.genesis, now_ms=made + hour - 1, max_age_ms=hour)
    assert ok.height == report["header"]["height"]
    error = failure(report, chain.genesis, now_ms=made + 2 * hour, max_age_ms=hour)
    assert error.code == "checkpoint_too_old"
    assert f"(height {report['header']['height']}, {report['header']['time']})" in error.message
    assert "is 7200 s old; at most 3600 s" in error.message
    with pytest.raises(ValueError, match="go together"):
        verify_report(report, chain.genesis, max_age_ms=hour)


# --- absence -----------------------------------------------------------------------------


def test_absent_vin_verifies_as_proof_of_absence(chain: DemoChain) -> None:
    report = chain.report(ABSENT_VIN)
    assert report["state"]["value"] is None and report["records"] == []
    result = verify_report(report, chain.genesis)
    assert result.records == 0
    assert report["summary"] == {
        "records": 0,
        "status": "unknown",
        "as_of": report["header"]["time"],
        "flags": [],
    }


def test_fake_record_added_to_an_absent_vin_is_refused(chain: DemoChain) -> None:
    # A manufacturer's real key signs a birth record for a VIN the chain never saw,
    # with the key's real membership proof and a real record's log position.
    donor = chain.report(chain.longest())
    birth = donor["records"][0]
    assert birth["type"] == "vehicle.register"
    key_hex = birth["signers"][0]["key"]
    maker = next(m.key for m in chain.network.members.values() if m.key.public_hex == key_hex)
    payload = json.loads(_body(donor, 0))["payload"] | {"vin": ABSENT_VIN, "prev": None}
    body = build_body(
        chain=chain.network.chain,
        type="vehicle.register",
        payload=payload,
        signers=[key_hex],
        created="2026-03-02T00:00:00Z",
        nonce="fake-birth",
    )
    fake = sign(body, [maker])
    report = chain.report(ABSENT_VIN)
    report["members"] = {key_hex: donor["members"][key_hex]}
    report["records"] = [{**birth, "tx": fake.to_wire()}]
    error = failure(report, chain.genesis)
    assert error.code == "inclusion_proof_invalid", error.message
    assert "records[0]" in error.message
    assert f"as an accepted record at height {birth['height']}" in error.message


def test_real_record_of_another_vin_added_to_an_absent_vin_is_refused(chain: DemoChain) -> None:
    other = chain.report(chain.longest())
    report = chain.report(ABSENT_VIN)
    report["records"] = other["records"][:1]
    report["members"] = other["members"]
    error = failure(report, chain.genesis)
    assert error.code == "vin_mismatch"
    assert f"not {ABSENT_VIN}" in error.message


# --- another chain -----------------------------------------------------------------------


def test_report_of_another_chain_with_the_same_id_is_refused(
    chain: DemoChain, tmp_path: Path
) -> None:
    # Another demo seed: the same chain id "seoul-market", another genesis and keys.
    create_demo(Home(tmp_path / "other"), vehicles=1, seed=chain_seed_other())
    other_genesis = Home(tmp_path / "other").genesis()
    assert other_genesis.chain_id == chain.genesis.chain_id
    error = failure(chain.report(chain.longest()), other_genesis)
    assert error.code == "report_chain_mismatch"
    assert "another genesis" in error.message


def chain_seed_other() -> int:
    return 12345


# --- the checkpoint quorum with four validators -----------------------------------------


@pytest.fixture(scope="module")
def quorum_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Genesis]:
    """A chain whose genesis has four validators (quorum 3), and one report of it."""
    network = demo.build_network("quorum", DEMO_START)
    genesis = Genesis.from_dict(network.genesis)
    home = Home(tmp_path_factory.mktemp("quorum") / "node")
    home.initialise(genesis, "node-1", network.validators["node-1"], None)
    ledger = home.open_ledger(None)
    try:
        items = demo.transactions(network, random.Random(1), vehicles=2)
        for when, txs in demo.plan_blocks(items):
            raws = tuple(RawTx(t.body, t.signatures) for t in txs)
            ledger.apply(Proposal(ledger.height + 1, when, "node-1", raws))
        vin = ledger.store.state_prefix("vehicle/", limit=1)[0][0].split("/", 1)[1]  # type: ignore[attr-defined]
        with pytest.raises(OrderingError) as info:
            build_report(ledger, vin)
        assert info.value.code == "report_not_certified"
        report = build_report(ledger, vin, require_certified=False)
    finally:
        ledger.store.close()
    checkpoint = Checkpoint.from_dict(report["checkpoint"]["checkpoint"])
    report["checkpoint"]["signatures"] += [
        checkpoint.sign(v, network.validators[v]).to_dict() for v in ("node-2", "node-3")
    ]
    shutil.rmtree(home.path)
    return report, genesis


def test_quorum_of_three_of_four_verifies(quorum_chain: tuple[Report, Genesis]) -> None:
    report, genesis = quorum_chain
    assert verify_report(report, genesis).validators == {"node-1", "node-2", "node-3"}


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        pytest.param(lambda sigs: sigs[:2], 2, id="two_of_four"),
        pytest.param(lambda sigs: [sigs[0], sigs[1], sigs[1]], 2, id="one_validator_twice"),
        pytest.param(
            lambda sigs: [*sigs[:2], {**sigs[2], "signature": sigs[0]["signature"]}],
            2,
            id="signature_copied_to_another_validator",
        ),
        pytest.param(
            lambda sigs: [*sigs[:2], {**sigs[2], "validator": "node-9"}],
            2,
            id="unknown_validator",
        ),
    ],
)
def test_too_few_checkpoint_signatures(
    quorum_chain: tuple[Report, Genesis],
    change: Callable[[list[dict[str, str]]], list[dict[str, str]]],
    valid: int,
) -> None:
    report, genesis = quorum_chain
    forged = {**report, "checkpoint": {**report["checkpoint"]}}
    forged["checkpoint"]["signatures"] = change(report["checkpoint"]["signatures"])
    error = failure(forged, genesis)
    assert error.code == "checkpoint_not_certified"
    assert f"has {valid} valid validator signatures; 3 are needed" in error.message


def test_forged_signature_by_a_wrong_key(quorum_chain: tuple[Report, Genesis]) -> None:
    report, genesis = quorum_chain
    checkpoint = Checkpoint.from_dict(report["checkpoint"]["checkpoint"])
    sigs = report["checkpoint"]["signatures"]
    forged = {**report, "checkpoint": {**report["checkpoint"]}}
    forged["checkpoint"]["signatures"] = [
        *sigs[:2],
        checkpoint.sign("node-3", SigningKey.generate()).to_dict(),
    ]
    error = failure(forged, genesis)
    assert error.code == "checkpoint_not_certified"
    assert "2 valid validator signatures; 3 are needed" in error.message


# --- properties --------------------------------------------------------------------------


@st.composite
def _subsets(draw: st.DrawFn, n: int) -> list[int]:
    return draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@example(data=None)
def test_only_the_exact_full_record_list_verifies(chain: DemoChain, data: Any) -> None:
    report = chain.reports[chain.vins[3]]
    n = len(report["records"])
    order = list(range(n)) if data is None else data.draw(_subsets(n))
    candidate = {**report, "records": [report["records"][i] for i in order]}
    if order == list(range(n)):
        verify_report(candidate, chain.genesis)
    else:
        error = failure(candidate, chain.genesis)
        assert error.code in {"chain_broken", "report_incomplete", "vin_mismatch"}, error.message


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), value=st.integers(1, 255), record=st.integers(0))
def test_any_byte_changed_in_a_record_is_refused(
    chain: DemoChain, position: int, value: int, record: int
) -> None:
    report = chain.reports[chain.vins[3]]
    i = record % len(report["records"])
    body = bytearray(_body(report, i))
    at = position % len(body)
    body[at] ^= value
    rec = {**report["records"][i], "tx": {**report["records"][i]["tx"]}}
    rec["tx"]["body"] = base64.b64encode(bytes(body)).decode()
    records = list(report["records"])
    records[i] = rec
    error = failure({**report, "records": records}, chain.genesis)
    assert error.code in {"report_malformed", "record_signature_invalid"}, error.message


@pytest.mark.parametrize(
    ("first", "second", "code", "pattern"),
    [
        (_alter_structure, _alter_signature, "report_malformed", r"records\[2\] is not a trans"),
        (_alter_signature, _drop(6), "record_signature_invalid", r"records\[3\] .*altered"),
    ],
    ids=["malformed_before_bad_signature", "bad_signature_before_broken_chain"],
)
def test_the_first_fault_in_record_order_is_reported(
    chain: DemoChain,
    first: Callable[[Report, DemoChain], Report],
    second: Callable[[Report, DemoChain], Report],
    code: str,
    pattern: str,
) -> None:
    """Signatures are verified for all records at once, yet the fault reported is the one
    a record-by-record check meets first (a malformed record 2 before a bad signature on
    record 3; a bad signature on record 3 before a gap at record 6)."""
    report = second(first(chain.report(chain.longest()), chain), chain)
    error = failure(report, chain.genesis)
    assert error.code == code, error.message
    assert re.search(pattern, error.message), error.message
