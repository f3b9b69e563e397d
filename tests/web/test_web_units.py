"""Unit tests of the web layer's pure parts: language choice, formats, chart, panels, QR."""

from __future__ import annotations

import pytest

from carledger.vehicle.inspection_form import FRAME_A, FRAME_B, FRAME_C, OUTER_1, OUTER_2
from carledger.web.chart import HEIGHT, WIDTH, odometer_chart
from carledger.web.flags import flag_view, topic_of
from carledger.web.i18n import Translator, choose
from carledger.web.panels import FRAME_LAYOUT, OUTER_LAYOUT, diagram
from carledger.web.render import json_script
from carledger.web.vehicle_page import printed_status

H = "ab" * 32


@pytest.mark.parametrize(
    ("query", "cookie", "expected"),
    [
        (None, None, ("ko", False)),
        ("en", None, ("en", True)),
        ("ko", "en", ("ko", True)),
        (None, "en", ("en", False)),
        ("fr", "en", ("en", False)),
        ("xx", None, ("ko", False)),
    ],
)
def test_language_choice(query: str | None, cookie: str | None, expected: tuple[str, bool]) -> None:
    assert choose(query, cookie) == expected


def test_formats_and_missing_keys() -> None:
    ko, en = Translator("ko"), Translator("en")
    assert ko.price(18_500_000) == "1,850만원"
    assert ko.price(18_500_123) == "18,500,123원"
    assert en.price(18_500_000) == "KRW 18,500,000"
    assert ko.km(84_854) == en.km(84_854) == "84,854 km"
    assert ko.time("2026-06-14T22:06:26.000Z") == "2026-06-15 07:06 KST"
    assert ko("no.such.key") == "⟦no.such.key⟧"
    assert ko.missing == {"no.such.key"}
    assert ko("fmt.km") == "{n} km"  # no parameters: the template as is
    assert ko("fmt.km", wrong=1) == "⟦fmt.km⟧"
    assert "fmt.km (parameters)" in ko.missing


def test_json_script_cannot_close_its_element() -> None:
    text = str(json_script({"x": "</script><script>alert(1)</script>&"}))
    assert "</" not in text and "<script" not in text and "&" not in text


def test_every_panel_has_a_place_in_a_drawing() -> None:
    assert set(OUTER_LAYOUT) == set(OUTER_1 + OUTER_2)
    assert set(FRAME_LAYOUT) == set(FRAME_A + FRAME_B + FRAME_C)
    for layout in (OUTER_LAYOUT, FRAME_LAYOUT):
        for x, y, w, h in layout.values():
            assert x >= 0 and x + w <= 200 and y >= 0 and y + h <= 370


def test_diagram_marks_replaced_welded_and_other_findings() -> None:
    shapes = {
        s.panel: s
        for s in diagram(
            {"hood": ["X"], "roof": ["W", "A"], "door_front_left": ["U"]}, OUTER_LAYOUT
        )
    }
    assert shapes["hood"].mark == "replaced"
    assert shapes["roof"].mark == "welded"
    assert shapes["door_front_left"].mark == "other"
    assert shapes["trunk_lid"].mark == "none"
    assert shapes["roof"].rank == "outer2"


def test_chart_marks_rollbacks_and_pins_implausible_readings() -> None:
    readings = [
        {"id": "a", "on": "2020-01-01", "km": 0, "flags": []},
        {"id": "b", "on": "2022-01-01", "km": 50_000, "flags": []},
        {"id": "c", "on": "2023-01-01", "km": 20_000, "flags": ["rollback"]},
        {"id": "d", "on": "2023-06-01", "km": 9_000_000, "flags": ["implausible"]},
        {"id": "e", "on": "2023-07-01", "km": 1, "flags": [], "void": True},
    ]
    chart = odometer_chart(readings)
    kinds = {p.id: p.kind for p in chart.points}
    assert kinds == {"a": "good", "b": "good", "c": "rollback", "d": "implausible"}
    assert all(0 <= p.x <= WIDTH and 0 <= p.y <= HEIGHT for p in chart.points)
    pinned = next(p for p in chart.points if p.id == "d")
    assert pinned.clipped and pinned.y == chart.top
    assert chart.y_ticks[-1][1] >= 50_000
    assert [label for _, label in chart.x_ticks][:1] == ["2021"]
    assert chart.line.startswith("M")
    assert odometer_chart([]).empty


@pytest.mark.parametrize(
    ("h", "c", "state"),
    [
        (None, None, None),
        (10, H, "same"),
        (5, "cd" * 32, "newer"),
        (10, "cd" * 32, "mismatch"),
        (11, "cd" * 32, "ahead"),
        (10, "XYZ", "invalid"),
        (None, H, "invalid"),
    ],
)
def test_printed_report_status(h: int | None, c: str | None, state: str | None) -> None:
    result = printed_status(10, H, [1, 4, 6, 9], h, c)
    assert (None if result is None else result["state"]) == state
    if state == "newer":
        assert result is not None and result["new_records"] == 2


def test_flag_view_translates_with_state_parameters() -> None:
    state = {
        "log": {"r1": {"type": "trade.purchase"}, "r0": {"type": "service.record"}},
        "odometer": {
            "readings": [
                {"id": "r0", "on": "2025-11-02", "km": 147_616, "flags": []},
                {"id": "r1", "on": "2026-03-02", "km": 84_854, "flags": ["rollback"]},
            ],
            "exceptions": [],
        },
    }
    flag = {
        "code": "odometer_rollback",
        "severity": "critical",
        "message": "m",
        "records": ["r1", "r0"],
    }
    view = flag_view(flag, state, Translator("ko"))
    assert view["title"] == "주행거리 되돌림 의심"
    assert "84,854 km" in view["detail"] and "147,616 km" in view["detail"]
    assert "매입" in view["detail"]
    # An unknown state shape keeps the report's own sentence.
    broken = flag_view({**flag, "records": ["zz"]}, state, Translator("en"))
    assert broken["detail"] == "m"
    assert topic_of("car_not_present") == "inconsistencies"
    assert topic_of("odometer_rollback") == "odometer"
