"""The printable report: a PDF of a ``carledger.report.v1`` document (Korean, English labels).

:func:`render_pdf` is a pure function of the report, the public base URL and the
fonts: the same inputs give the same bytes (the PDF's creation date is the
checkpoint's time, never the clock). It shows what the report proves, never more:
the summary (owners as counts, never references), the flags explained, the record
timeline with the signing organisations, the checkpoint and the validators that
signed it, and a QR code naming the verification page of this exact report::

    {base_url}/vehicles/{VIN}?h={checkpoint height}&c={content hash}

where the content hash is :func:`carledger.verifier.content_hash` of the report.
The PDF is a convenience for people; the JSON report is the evidence. Fonts are
NanumGothic (Debian ``fonts-nanum``); ``docs/adr/0007-report-format.md`` says why
fpdf2 draws it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from carledger.errors import StorageError
from carledger.report import labels
from carledger.verifier import content_hash

__all__ = [
    "FONT_DIRS",
    "Fonts",
    "find_fonts",
    "record_id",
    "render_pdf",
    "summary_rows",
    "timeline_rows",
    "verification_url",
]

#: Where NanumGothic is looked for; ``CARLEDGER_FONT_DIR`` comes first when set.
FONT_DIRS: Final = ("/usr/share/fonts/truetype/nanum",)
_REGULAR, _BOLD = "NanumGothic.ttf", "NanumGothicBold.ttf"

_FONT = "nanum"
_WIDTH = 182.0  # A4 less 14 mm margins
_GREY = (110, 110, 110)
_INK = (20, 20, 20)
_SEVERITY_COLOURS: Final = {
    "critical": (190, 30, 45),
    "warning": (200, 120, 0),
    "info": (90, 110, 140),
}
_KST = dt.timezone(dt.timedelta(hours=9))


class _DroppedHinting(logging.Filter):
    """fontTools warns once per hinting table it cannot subset (NanumGothic's TSI*)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "NOT subset" not in record.getMessage()


logging.getLogger("fontTools.subset").addFilter(_DroppedHinting())


@dataclass(frozen=True, slots=True)
class Fonts:
    """The TTF files of the regular and the bold face."""

    regular: Path
    bold: Path


def find_fonts(dirs: Iterable[str] | None = None) -> Fonts:
    """NanumGothic regular and bold from ``dirs`` (default: ``$CARLEDGER_FONT_DIR``, FONT_DIRS).

    Raises :class:`StorageError` (``pdf_font_missing``) when no directory has both.
    """
    if dirs is None:
        env = os.environ.get("CARLEDGER_FONT_DIR")
        dirs = ((env,) if env else ()) + FONT_DIRS
    searched = list(dirs)
    for d in searched:
        regular, bold = Path(d) / _REGULAR, Path(d) / _BOLD
        if regular.is_file() and bold.is_file():
            return Fonts(regular, bold)
    raise StorageError(
        "pdf_font_missing",
        f"The Korean font for printed reports ({_REGULAR}) is not installed (looked in "
        f"{', '.join(searched)}). Install the Debian package fonts-nanum or set "
        "CARLEDGER_FONT_DIR.",
    )


def verification_url(report: Mapping[str, Any], base_url: str) -> str:
    """The web page that verifies this report: what the QR code holds."""
    vin = quote(str(report["vin"]), safe="")
    height = int(report["header"]["height"])
    return f"{base_url.rstrip('/')}/vehicles/{vin}?h={height}&c={content_hash(report)}"


def render_pdf(report: Mapping[str, Any], *, base_url: str, fonts: Fonts | None = None) -> bytes:
    """The printable PDF of ``report`` whose QR code leads to ``base_url``'s page for it.

    ``report`` is a report as built by :func:`carledger.report.build.build_report`
    (this function does not verify it: verify first when it came from elsewhere).
    Raises :class:`StorageError` (``pdf_font_missing``) without the fonts.
    """
    fonts = fonts or find_fonts()
    url = verification_url(report, base_url)
    page = _Page(str(report["vin"]), content_hash(report))
    page.add_font(_FONT, "", str(fonts.regular))
    page.add_font(_FONT, "B", str(fonts.bold))
    checkpoint_time = _utc(str(report["header"]["time"]))
    page.set_creation_date(checkpoint_time)
    page.set_title(f"차량 이력 검증 보고서 {report['vin']}")
    page.set_subject("carledger verified vehicle history report")
    page.set_creator("carledger")
    page.set_lang("ko")
    page.set_auto_page_break(auto=True, margin=16)
    page.set_margins(14, 14, 14)
    page.add_page()
    state = _state(report)
    _heading(page, report, state, url)
    _summary_section(page, report["summary"])
    _flags_section(page, report["summary"].get("flags", []))
    _timeline_section(page, report, state)
    _verification_section(page, report, url)
    return bytes(page.output())


# --- the page ------------------------------------------------------------------------


class _Page(FPDF):
    def __init__(self, vin: str, digest: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._vin = vin
        self._digest = digest

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(_FONT, size=7)
        self.set_text_color(*_GREY)
        self.cell(
            _WIDTH,
            4,
            f"carledger · {self._vin} · content hash {self._digest[:16]}… · "
            f"{self.page_no()}/{{nb}}",
            align="C",
        )


def _utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)


def _kst(text: str) -> str:
    """A block time as Korean local time, ``2026-06-21 13:50 KST``."""
    return _utc(text).astimezone(_KST).strftime("%Y-%m-%d %H:%M KST")


def _state(report: Mapping[str, Any]) -> dict[str, Any] | None:
    value = report["state"]["value"]
    return None if value is None else dict(json.loads(base64.b64decode(value)))


def _section(pdf: FPDF, korean: str, english: str) -> None:
    pdf.ln(3)
    if pdf.get_y() > 255:
        pdf.add_page()
    pdf.set_font(_FONT, "B", 12)
    pdf.set_text_color(*_INK)
    pdf.cell(0, 7, korean, new_x=XPos.END)
    pdf.set_font(_FONT, size=9)
    pdf.set_text_color(*_GREY)
    pdf.cell(0, 7, f"  {english}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_draw_color(180, 180, 180)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + _WIDTH, pdf.get_y())
    pdf.ln(1.5)
    pdf.set_text_color(*_INK)


def _heading(
    pdf: FPDF, report: Mapping[str, Any], state: Mapping[str, Any] | None, url: str
) -> None:
    qr_size = 38.0
    top = pdf.get_y()
    _draw_qr(pdf, url, pdf.l_margin + _WIDTH - qr_size, top, qr_size)
    text_w = _WIDTH - qr_size - 4
    pdf.set_font(_FONT, "B", 17)
    pdf.cell(text_w, 9, "차량 이력 검증 보고서", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, size=10)
    pdf.set_text_color(*_GREY)
    pdf.cell(text_w, 5, "Verified vehicle history report", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    pdf.set_text_color(*_INK)
    pdf.set_font(_FONT, size=8)
    pdf.cell(text_w, 4, "차대번호 (VIN)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, "B", 15)
    pdf.cell(text_w, 8, str(report["vin"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, size=10)
    pdf.multi_cell(text_w, 5, _vehicle_line(state), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    header = report["header"]
    pdf.set_font(_FONT, size=8)
    pdf.set_text_color(*_GREY)
    pdf.multi_cell(
        text_w,
        4,
        f"기준 시점 (As of): 블록 높이 (height) {header['height']}, {_kst(header['time'])} "
        f"({header['time']})\n체인 (chain): {report['chain']}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    end = pdf.get_y()
    pdf.set_font(_FONT, size=7)
    pdf.set_text_color(*_GREY)
    pdf.set_xy(pdf.l_margin + _WIDTH - qr_size, top + qr_size)
    pdf.cell(qr_size, 3.5, "스캔하여 검증 (scan to verify)", align="C")
    pdf.set_text_color(*_INK)
    pdf.set_xy(pdf.l_margin, max(end, top + qr_size + 4))


def _vehicle_line(state: Mapping[str, Any] | None) -> str:
    birth = None if state is None else state.get("birth")
    if not birth:
        return "차량 정보 없음 (no vehicle registration on record)"
    parts = [birth.get("make"), birth.get("model"), birth.get("trim")]
    line = " ".join(str(p) for p in parts if p)
    extras = [
        f"{birth['model_year']}년식 (model year)" if birth.get("model_year") else None,
        birth.get("fuel"),
        birth.get("color"),
    ]
    return line + " · " + " · ".join(str(e) for e in extras if e)


def _draw_qr(pdf: FPDF, payload: str, x: float, y: float, size: float) -> None:
    """A QR code drawn as vector squares (crisp at any print resolution), quiet zone included."""
    qr = segno.make(payload, error="m", micro=False)
    matrix = qr.matrix
    border = 4
    module = size / (len(matrix) + 2 * border)
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(x, y, size, size, style="F")
    pdf.set_fill_color(0, 0, 0)
    for row, cells in enumerate(matrix):
        col = 0
        while col < len(cells):
            if not cells[col]:
                col += 1
                continue
            start = col
            while col < len(cells) and cells[col]:
                col += 1
            pdf.rect(
                x + (border + start) * module,
                y + (border + row) * module,
                (col - start) * module,
                module,
                style="F",
            )
    pdf.link(x, y, size, size, payload)


# --- the summary ---------------------------------------------------------------------


def _krw(amount: int) -> str:
    return f"{amount:,}원"


def _yes_no(value: bool) -> str:
    return "있음 (yes)" if value else "없음 (no)"


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The summary table as ``(label, value)`` rows, labels Korean with English."""
    if not summary.get("records"):
        return [
            ("기록 (Records)", "이 차대번호로 기록된 것이 없습니다 (no record of this VIN)"),
            ("상태 (Status)", labels.status("unknown")),
        ]
    rows = [
        ("상태 (Status)", labels.status(summary["status"])),
        ("기록 수 (Records)", f"{summary['records']}건 (records)"),
    ]
    if summary.get("plate"):
        rows.append(("번호판 (Plate)", str(summary["plate"])))
    owner = summary.get("owner")
    current = {None: "없음 (none)", "dealer stock": "매매업체 보유 (dealer stock)"}.get(
        owner, f"{owner}"
    )
    rows.append(
        (
            "소유자 (Owners)",
            f"{summary['owners']}명 (owners), 소유 변동 {summary['ownership_changes']}회 "
            f"(changes) · 현재 (current): {current}",
        )
    )
    for period in summary.get("stock_periods", []):
        until = period["to"] or "현재 (now)"
        rows.append(
            (
                "매매업체 보유 (Dealer stock)",
                f"{period['dealer']} @ {period.get('market') or '-'}: {period['from']} ~ {until}",
            )
        )
    uses = [f"{u['use']} ({u['from']}~)" for u in summary.get("uses", [])]
    uses += [
        f"{u['kind']} · {u['firm']} ({u['from']} ~ {u['to'] or ''})"
        for u in summary.get("usage", [])
    ]
    if uses:
        rows.append(("용도 (Use)", ", ".join(uses)))
    odo = summary["odometer"]
    latest = odo.get("latest")
    rows.append(
        (
            "주행거리 (Odometer)",
            ("기록 없음 (none)" if latest is None else f"{latest['km']:,} km ({latest['on']})")
            + f" · {odo['readings']}회 기록 (readings) · 역행 (rollbacks) {odo['rollbacks']}, "
            f"비정상 (implausible) {odo['implausible']}, 공백 (gaps) {odo['gaps']}",
        )
    )
    acc = summary["accidents"]
    rows.append(
        (
            "사고 (Accidents)",
            f"보고 {acc['reported']}건 (reported) · 자차 손해 (own damage) "
            f"{_krw(acc['own_damage_krw'])} · 상대 손해 (other party) "
            f"{_krw(acc['other_party_krw'])} · 골격 손상 (frame) {_yes_no(acc['frame_damage'])}",
        )
    )
    insp = summary.get("inspection")
    rows.append(
        (
            "성능점검 (Inspection)",
            "기록 없음 (none)"
            if insp is None
            else f"{insp['on']} · 유효 (valid until) {insp['valid_until']} · 사고 이력 "
            f"(accident) {_yes_no(insp['accident'])} · 단순 수리 (simple repair) "
            f"{_yes_no(insp['simple_repair'])}",
        )
    )
    warranty = summary.get("warranty")
    if warranty:
        rows.append(
            (
                "점검 보증 (Warranty)",
                f"{warranty['until']}까지 또는 {warranty['until_km']:,} km까지 "
                f"(until {warranty['until']} or {warranty['until_km']:,} km)",
            )
        )
    liens = summary.get("liens", [])
    rows.append(("저당·압류 (Liens)", ", ".join(liens) if liens else "없음 (none)"))
    recalls = summary["recalls"]
    rows.append(
        (
            "리콜 (Recalls)",
            f"미조치 (open): {', '.join(recalls['open']) or '없음 (none)'} · 조치 완료 (done): "
            f"{', '.join(recalls['done']) or '없음 (none)'}",
        )
    )
    rows.append(
        ("도난 (Theft)", "도난 상태 (reported stolen)" if summary["stolen"] else "없음 (no)")
    )
    rows.append(("폐차 (Scrapped)", _yes_no(summary["scrapped"])))
    disputes = summary["disputes"]
    rows.append(
        (
            "이의 제기 (Disputes)",
            f"진행 중 (open) {disputes['open']} · 인용 (upheld) {disputes['upheld']} · "
            f"기각 (rejected) {disputes['rejected']}",
        )
    )
    battery = summary.get("battery")
    if battery:
        rows.append(
            (
                "배터리 (Battery)",
                f"잔존 수명 (state of health) {battery['soh'] / 10:.1f}% ({battery['on']})",
            )
        )
    if summary.get("parts"):
        rows.append(("등록 부품 (Registered parts)", ", ".join(summary["parts"])))
    return rows


def _summary_section(pdf: FPDF, summary: Mapping[str, Any]) -> None:
    _section(pdf, "요약", "Summary")
    pdf.set_font(_FONT, size=8.5)
    with pdf.table(
        col_widths=(45, _WIDTH - 45),
        width=_WIDTH,
        first_row_as_headings=False,
        borders_layout="HORIZONTAL_LINES",
        text_align="LEFT",
        line_height=4.6,
        padding=(1, 1.5),
    ) as table:
        for label, value in summary_rows(summary):
            row = table.row()
            row.cell(label, style=FontFace(emphasis="BOLD"))
            row.cell(value)


def _flags_section(pdf: FPDF, flags: Sequence[Mapping[str, Any]]) -> None:
    _section(pdf, "확인 사항", "Flags and inconsistencies")
    pdf.set_font(_FONT, size=8.5)
    if not flags:
        pdf.cell(0, 5, "특이 사항 없음 (no flags)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        return
    rank = {"critical": 0, "warning": 1, "info": 2}
    for flag in sorted(flags, key=lambda f: rank.get(f["severity"], 3)):
        korean, english = labels.SEVERITIES.get(flag["severity"], (flag["severity"],) * 2)
        title_ko, title_en = labels.FACTS.get(flag["code"], (flag["code"], flag["code"]))
        colour = _SEVERITY_COLOURS.get(flag["severity"], _GREY)
        if pdf.get_y() > 270:
            pdf.add_page()
        y = pdf.get_y()
        pdf.set_fill_color(*colour)
        pdf.set_text_color(255, 255, 255)
        pdf.set_font(_FONT, "B", 7.5)
        pdf.cell(20, 4.6, f"{korean} {english}", align="C", fill=True)
        pdf.set_fill_color(255, 255, 255)
        pdf.set_text_color(*_INK)
        pdf.set_xy(pdf.l_margin + 22, y)
        pdf.set_font(_FONT, "B", 8.5)
        pdf.multi_cell(
            _WIDTH - 22, 4.6, f"{title_ko} ({title_en})", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.set_x(pdf.l_margin + 22)
        pdf.set_font(_FONT, size=8)
        pdf.multi_cell(
            _WIDTH - 22, 4, str(flag["message"]), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.ln(1)


# --- the timeline --------------------------------------------------------------------

_KM_FIELDS: Final = ("km", "odometer_km")


def _signed_by(signers: Iterable[Mapping[str, Any]]) -> str:
    names = []
    for s in signers:
        if s.get("org"):
            names.append(f"{s['org']} ({s.get('member')})")
        else:
            names.append("개인 서명 (individual key)")
    return ", ".join(names)


def timeline_rows(
    report: Mapping[str, Any], state: Mapping[str, Any] | None
) -> list[tuple[str, str, str, str, str, str]]:
    """``(#, date, record, signed by, recorded at, id)`` for every record, oldest first."""
    log = {} if state is None else state.get("log", {})
    rows = []
    for i, rec in enumerate(report["records"], 1):
        envelope = json.loads(base64.b64decode(rec["tx"]["body"]))
        payload = envelope["payload"]
        tx_id = record_id(rec)
        what = labels.record_type(rec["type"])
        km = next((payload[f] for f in _KM_FIELDS if isinstance(payload.get(f), int)), None)
        if km is None and isinstance(payload.get("overall"), dict):
            km = payload["overall"].get("odometer_km")
        if isinstance(km, int):
            what += f" · {km:,} km"
        status = log.get(tx_id, {}).get("status", "valid")
        if status != "valid":
            what += f" · {labels.status(status)}"
        date = (
            payload.get("date") or payload.get("observed_on") or str(payload.get("time", ""))[:10]
        )
        rows.append(
            (
                str(i),
                str(date or _kst(rec["time"])[:10]),
                what,
                _signed_by(rec["signers"]),
                _kst(rec["time"])[:16],
                tx_id[:10],
            )
        )
    return rows


def record_id(rec: Mapping[str, Any]) -> str:
    """The record's id (sha256 of its signed bytes)."""
    return hashlib.sha256(base64.b64decode(rec["tx"]["body"])).hexdigest()


def _timeline_section(
    pdf: FPDF, report: Mapping[str, Any], state: Mapping[str, Any] | None
) -> None:
    _section(pdf, "기록 내역", "Record timeline, oldest first")
    rows = timeline_rows(report, state)
    pdf.set_font(_FONT, size=7.5)
    if not rows:
        pdf.cell(0, 5, "기록 없음 (no records)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        return
    heading = FontFace(emphasis="BOLD", fill_color=(235, 238, 242))
    with pdf.table(
        col_widths=(7, 18, 59, 52, 25, 21),
        width=_WIDTH,
        borders_layout="HORIZONTAL_LINES",
        text_align="LEFT",
        line_height=3.8,
        padding=(0.8, 1),
        headings_style=heading,
    ) as table:
        head = table.row()
        for title in (
            "#",
            "일자 Date",
            "기록 Record",
            "서명 기관 Signed by",
            "기록 시점 (KST)",
            "ID",
        ):
            head.cell(title)
        for values in rows:
            row = table.row()
            for value in values:
                row.cell(value)


# --- the evidence --------------------------------------------------------------------


def _verification_section(pdf: FPDF, report: Mapping[str, Any], url: str) -> None:
    _section(pdf, "검증 정보", "Verification")
    cp = report["checkpoint"]["checkpoint"]
    validators = sorted(s["validator"] for s in report["checkpoint"]["signatures"])
    rows = [
        ("체인 (Chain)", f"{report['chain']} (genesis {report['genesis_hash'][:16]}…)"),
        ("블록 높이 (Height)", f"{cp['height']} · {_kst(report['header']['time'])}"),
        ("블록 해시 (Block hash)", cp["block_hash"]),
        ("상태 루트 (State root)", cp["state_root"]),
        ("로그 (Log)", f"{cp['log_size']:,} entries · root {cp['log_root']}"),
        ("서명 검증자 (Validators)", ", ".join(validators)),
        ("보고서 해시 (Content hash)", content_hash(report)),
        ("검증 주소 (Verify at)", url),
    ]
    pdf.set_font(_FONT, size=7.5)
    with pdf.table(
        col_widths=(45, _WIDTH - 45),
        width=_WIDTH,
        first_row_as_headings=False,
        borders_layout="HORIZONTAL_LINES",
        text_align="LEFT",
        line_height=3.8,
        padding=(0.8, 1.5),
        wrapmode="CHAR",
    ) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=FontFace(emphasis="BOLD"))
            row.cell(value)
    pdf.ln(2)
    pdf.set_font(_FONT, size=7.5)
    pdf.set_text_color(*_GREY)
    pdf.multi_cell(
        _WIDTH,
        3.8,
        "이 문서는 JSON 보고서를 사람이 읽도록 옮긴 것입니다. 증거는 JSON 보고서이며, 체인의 "
        "genesis만으로 오프라인 검증할 수 있습니다. (This page renders the JSON report for "
        "people; the JSON report is the evidence. Verify it offline with only the chain's "
        "genesis: carledger verify-report report.json --genesis genesis.json, or scan the QR "
        "code.)",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(*_INK)
