"""The printable report: rendered to PNG, read back with pdftotext, its QR code decoded.

Page images are kept under ``artifacts/report/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from report_support import ABSENT_VIN, ARTIFACTS, ROOT, DemoChain

from carledger.errors import StorageError
from carledger.report import labels
from carledger.report.pdf import (
    find_fonts,
    record_id,
    render_pdf,
    summary_rows,
    verification_url,
)
from carledger.verifier import content_hash

BASE = "https://cars.seoul.example/"


def _text(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def _pages(pdf: Path, name: str) -> list[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "110", "-png", str(pdf), str(ARTIFACTS / name)], check=True)
    return sorted(ARTIFACTS.glob(f"{name}-*.png"))


def _qr(png: Path) -> str:
    done = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _most_flagged(chain: DemoChain) -> str:
    return max(chain.vins, key=lambda v: len(chain.reports[v]["summary"]["flags"]))


def test_pdf_shows_the_report_and_its_qr_code(chain: DemoChain, tmp_path: Path) -> None:
    vin = _most_flagged(chain)
    report = chain.report(vin)
    data = render_pdf(report, base_url=BASE)
    assert data.startswith(b"%PDF-")
    assert render_pdf(report, base_url=BASE) == data  # a function of the report alone
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(data)
    text = _text(pdf)
    assert vin in text
    for label in ("차량 이력 검증 보고서", "소유자 (Owners)", "주행거리 (Odometer)", "확인 사항"):
        assert label in text, label
    assert f"블록 높이 (height) {report['header']['height']}" in text
    assert content_hash(report) in text.replace("\n", "")
    for flag in report["summary"]["flags"]:
        assert labels.FACTS[flag["code"]][1] in text
    # Every record is a row of the timeline (its id prefix is printed).
    flat = " ".join(text.split())
    for rec in report["records"]:
        assert record_id(rec)[:10] in flat
    pages = _pages(pdf, "flagged")
    assert pages
    expected = f"https://cars.seoul.example/vehicles/{vin}?h={report['header']['height']}"
    assert _qr(pages[0]) == f"{expected}&c={content_hash(report)}"
    assert _qr(pages[0]) == verification_url(report, BASE)


def test_pdf_of_a_vin_without_records(chain: DemoChain, tmp_path: Path) -> None:
    report = chain.report(ABSENT_VIN)
    pdf = tmp_path / "absent.pdf"
    pdf.write_bytes(render_pdf(report, base_url="http://127.0.0.1:8000"))
    text = _text(pdf)
    assert ABSENT_VIN in text and "no record of this VIN" in text
    pages = _pages(pdf, "absent")
    assert _qr(pages[0]) == verification_url(report, "http://127.0.0.1:8000")


def test_missing_font_is_an_operator_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        find_fonts([str(tmp_path)])
    assert info.value.code == "pdf_font_missing"
    assert "fonts-nanum" in info.value.message


def test_every_record_type_and_fact_has_a_name() -> None:
    registry_types = set()
    records_dir = ROOT / "src" / "carledger" / "vehicle" / "records"
    for path in records_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "VinRecord"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                registry_types.add(node.args[0].value)
    assert "vehicle.register" in registry_types
    assert registry_types <= set(labels.RECORD_TYPES), registry_types - set(labels.RECORD_TYPES)
    facts_src = (ROOT / "src" / "carledger" / "vehicle" / "facts.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'_fact\(\s*"([a-z_]+)"', facts_src))
    assert len(codes) > 15
    assert codes <= set(labels.FACTS), codes - set(labels.FACTS)


def test_summary_rows_never_show_owner_references(chain: DemoChain) -> None:
    for vin in chain.vins:
        rows = summary_rows(chain.reports[vin]["summary"])
        text = " ".join(v for _, v in rows)
        assert not re.search(r"\b(key|ref|org):", text), text
