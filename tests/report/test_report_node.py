"""Reports fetched from a real node process, verified here and by `carledger verify-report`.

The node runs in its own process over a copy of the generated chain; the verifier
runs in the test process (or as another CLI process) and trusts only genesis.json.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from report_support import ARTIFACTS, DemoChain, cli, reading

from carledger.ledger.block import format_time
from carledger.ledger.tx import build_body, sign
from carledger.report.pdf import verification_url
from carledger.verifier import content_hash, verify_report
from tests_support import NodeProcess, start_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(chain: DemoChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data = chain.copy_to(tmp_path_factory.mktemp("report-node") / "node")
    process = start_node(data, "--block-interval-ms", "20")
    try:
        yield process
    finally:
        process.stop()


def get_report(node: NodeProcess, vin: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{node.url}/v1/vehicles/{vin}/report", params=params, timeout=60)


def test_reports_from_the_node_verify_here(chain: DemoChain, node: NodeProcess) -> None:
    for vin in chain.vins[:8]:
        r = get_report(node, vin.lower())  # a person may type it in lower case
        assert r.status_code == 200, r.text
        report = r.json()
        result = verify_report(report, chain.genesis)
        assert result.vin == vin
        # The node and this process built the report from the same chain at the
        # same head: byte for byte the same evidence.
        assert content_hash(report) == content_hash(chain.report(vin))


def test_api_errors(node: NodeProcess, chain: DemoChain) -> None:
    vin = chain.vins[0]
    assert get_report(node, "NOT-A-VIN").json()["code"].startswith("invalid_vin")
    for params in ({"format": "xml"}, {"since": 0}):
        r = get_report(node, vin, **params)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
    r = get_report(node, vin, since=10**9)
    assert r.status_code == 400 and r.json()["code"] == "invalid_proof_request"


def _submit_reading(chain: DemoChain, node: NodeProcess, vin: str, km: int) -> None:
    type_, payload, member = reading(chain.ledger, vin, km)
    head = httpx.get(f"{node.url}/v1/vehicles/{vin}", timeout=30).json()["head"]
    # A live block is cut at the clock's time: date the reading today (UTC+9).
    payload["observed_on"] = format_time(int(time.time() * 1000) + 9 * 3600 * 1000)[:10]
    key = chain.network.key(member)
    tx = sign(
        build_body(
            chain=chain.network.chain,
            type=type_,
            payload={**payload, "prev": head},
            signers=[key.public_hex],
            created=format_time(int(time.time() * 1000))[:19] + "Z",
            nonce=f"node-test-{km}",
        ),
        [key],
    )
    r = httpx.post(
        f"{node.url}/v1/transactions", json=tx.to_wire(), params={"wait": "true"}, timeout=60
    )
    assert r.status_code == 200, r.text


def test_newer_report_from_the_node_is_consistent(chain: DemoChain, node: NodeProcess) -> None:
    vin = chain.vins[1]
    old = chain.report(vin)  # built in this process, before the node moved on
    km = old["summary"]["odometer"]["latest"]["km"]
    _submit_reading(chain, node, vin, km + 500)
    new = get_report(node, vin, since=old["header"]["log_size"]).json()
    result = verify_report(new, chain.genesis, previous=old)
    assert result.records == len(old["records"]) + 1
    assert result.height > old["header"]["height"]


def test_cli_report_and_verify_report(chain: DemoChain, node: NodeProcess, tmp_path: Path) -> None:
    vin = chain.vins[2]
    genesis = str(chain.path / "genesis.json")
    _submit_reading(chain, node, vin, chain.report(vin)["summary"]["odometer"]["latest"]["km"] + 9)
    out, pdf = tmp_path / "r.json", tmp_path / "r.pdf"
    done = cli(
        "report",
        vin,
        "--node",
        node.url,
        "--out",
        str(out),
        "--pdf",
        str(pdf),
        "--genesis",
        genesis,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified" in done.stdout and pdf.read_bytes().startswith(b"%PDF-")
    done = cli("verify-report", str(out), "--genesis", genesis, "--max-age", "600", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["vin"] == vin
    assert result["content_hash"] == content_hash(json.loads(out.read_text()))
    # The pristine chain's checkpoint is months old: refused with --max-age.
    old = tmp_path / "old.json"
    old.write_text(json.dumps(chain.report(vin)))
    done = cli("verify-report", str(old), "--genesis", genesis, "--max-age", "3600")
    assert done.returncode != 0
    assert "[checkpoint_too_old]" in done.stdout + done.stderr
    # A newer report fetched against the old one, then checked against it.
    newer = tmp_path / "newer.json"
    done = cli("report", vin, "--node", node.url, "--out", str(newer), "--previous", str(old))
    assert done.returncode == 0, done.stdout + done.stderr
    fetched = json.loads(newer.read_text())
    assert fetched["consistency"]["size"] == chain.report(vin)["header"]["log_size"]
    verify_report(fetched, chain.genesis, previous=chain.report(vin))
    # A tampered file: the CLI says what failed, with the code, without a traceback.
    doc = json.loads(out.read_text())
    doc["records"].pop()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    done = cli("verify-report", str(bad), "--genesis", genesis)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "Records were left out. [report_incomplete]" in " ".join(text.split())
    assert "Traceback" not in text


def test_pdf_from_the_api(chain: DemoChain, node: NodeProcess, tmp_path: Path) -> None:
    vin = chain.vins[3]
    r = get_report(node, vin, format="pdf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert vin in r.headers["content-disposition"]
    report = get_report(node, vin).json()  # the same head: the JSON the PDF prints
    pdf = tmp_path / "api.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert vin in text and "차량 이력 검증 보고서" in text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / "api-report"
    subprocess.run(
        ["pdftoppm", "-r", "110", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(png)],
        check=True,
    )
    decoded = subprocess.run(
        ["zbarimg", "--quiet", "--raw", f"{png}.png"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert decoded == verification_url(report, node.url + "/")
    assert decoded == f"{node.url}/vehicles/{vin}?h={report['header']['height']}&c=" + content_hash(
        report
    )
