"""The official performance and condition inspection form (성능·상태점검기록부).

The payload of ``inspection.record`` carries the form's full content; this module
is its schema and the rule that derives ``accident`` and ``simple_repair`` from the
panel map (they are never typed in, so a form cannot say "no accident" while its own
panels show a welded pillar).

Panel codes: ``X`` replaced (교환), ``W`` sheet metal or welded (판금/용접), ``A``
scratch, ``U`` dent, ``C`` corrosion, ``T`` damage. A panel absent from the map had
no finding.

Derivation (DOMAIN.md):

- ``accident`` (사고이력): any frame panel (rank A, B or C) replaced or welded
  (``X``/``W``), or a roof, quarter panel or side sill (outer rank 2) cut and
  welded. Those rank-2 panels are welded to the body, so replacing one (``X``) is
  itself cutting and welding and counts as well.
- ``simple_repair`` (단순수리): no accident, and an outer rank-1 panel replaced (``X``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carledger.errors import InvalidInput
from carledger.vehicle.fields import DATE, FUELS, HASH, ID, KM, KRW, PLATE, PREV, TEXT, VIN
from carledger.vehicle.schema import Bool, Enum, Int, List, Map, Obj, Str, opt

__all__ = [
    "FRAME_A",
    "FRAME_B",
    "FRAME_C",
    "INSPECTION",
    "OUTER_1",
    "OUTER_2",
    "PANEL_CODES",
    "TRANSMISSIONS",
    "derive",
]

OUTER_1 = (
    "hood",
    "front_fender_left",
    "front_fender_right",
    "door_front_left",
    "door_front_right",
    "door_rear_left",
    "door_rear_right",
    "trunk_lid",
    "radiator_support",
)
OUTER_2 = (
    "roof",
    "quarter_panel_left",
    "quarter_panel_right",
    "side_sill_left",
    "side_sill_right",
)
FRAME_A = (
    "front_panel",
    "cross_member",
    "inside_panel_left",
    "inside_panel_right",
    "rear_panel",
    "trunk_floor",
)
FRAME_B = (
    "front_side_member_left",
    "front_side_member_right",
    "rear_side_member_left",
    "rear_side_member_right",
    "front_wheel_house_left",
    "front_wheel_house_right",
    "rear_wheel_house_left",
    "rear_wheel_house_right",
    "pillar_a_left",
    "pillar_a_right",
    "pillar_b_left",
    "pillar_b_right",
    "pillar_c_left",
    "pillar_c_right",
    "package_tray",
)
FRAME_C = ("dash_panel", "floor_panel")
PANELS = OUTER_1 + OUTER_2 + FRAME_A + FRAME_B + FRAME_C
PANEL_CODES = ("X", "W", "A", "U", "C", "T")

_FRAME = frozenset(FRAME_A + FRAME_B + FRAME_C)
_OUTER_2 = frozenset(OUTER_2)
_OUTER_1 = frozenset(OUTER_1)
_REPAIR = frozenset({"X", "W"})

ELECTRIFIED = frozenset({"hybrid", "plugin_hybrid", "ev", "hydrogen"})


def derive(panels: Mapping[str, list[str]]) -> dict[str, Any]:
    """``accident``, ``simple_repair`` and the repaired panels (``X``/``W`` codes only).

    Precondition: ``panels`` passed the schema (known panel names and codes).
    """
    repairs = {p: "".join(c for c in PANEL_CODES if c in codes) for p, codes in panels.items()}
    repairs = {p: c for p, c in sorted(repairs.items()) if _REPAIR.intersection(c)}
    accident = any(p in _FRAME or p in _OUTER_2 for p in repairs)
    simple = not accident and any(p in _OUTER_1 and "X" in c for p, c in repairs.items())
    return {
        "accident": accident,
        "simple_repair": simple,
        "frame": any(p in _FRAME for p in repairs),
        "repairs": repairs,
    }


TRANSMISSIONS = Enum("automatic", "manual", "cvt", "dct", "single_speed", "other")
GOOD_BAD = Enum("good", "bad")
LEAK = Enum("none", "seep", "leak")
LEVEL = Enum("ok", "low")


def _valid_range(header: Mapping[str, Any], path: str) -> None:
    if header["valid_until"] < header["valid_from"]:
        raise InvalidInput(
            "out_of_range",
            "payload.header.valid_until is on or after valid_from.",
            field=f"{path}.valid_until",
        )


_HEADER = Obj(
    {
        "issue_no": Str(1, 32, r"[A-Za-z0-9][A-Za-z0-9-]{0,31}", "letters, digits and '-'"),
        "listing_no": opt(Str(1, 32)),
        "plate": opt(PLATE),
        "model_year": Int(1950, 2100),
        "first_registered_on": opt(DATE),
        "valid_from": DATE,
        "valid_until": DATE,
        "transmission": TRANSMISSIONS,
        "fuel": FUELS,
        "engine_type": Str(1, 32),
        "warranty_type": Enum("self", "insurer"),
        "base_price": KRW,
    },
    rule=_valid_range,
)


_OVERALL = Obj(
    {
        "odometer_km": KM,
        "gauge_ok": Bool(),
        "mileage_grade": Enum("high", "normal", "low"),
        "vin_marking": Enum("good", "corroded", "damaged", "mismatched", "altered", "painted"),
        "emissions": Obj(
            {
                "co_permille": opt(Int(0, 1000)),
                "hc_ppm": opt(Int(0, 100_000)),
                "smoke_percent": opt(Int(0, 100)),
            }
        ),
        "tuning": Obj(
            {
                "status": Enum("none", "legal", "illegal"),
                "structural": Bool(),
                "equipment": Bool(),
            }
        ),
        "special_history": List(Enum("flood", "fire"), 2, unique=True),
        "use_change": List(Enum("rental", "lease", "commercial"), 3, unique=True),
        "repaint": List(Enum("full", "color_change"), 2, unique=True),
        "recall": Enum("none", "applies_done", "applies_open"),
    }
)

_CONDITION = Obj(
    {
        "self_diagnosis": Obj({"engine": opt(GOOD_BAD), "transmission": opt(GOOD_BAD)}),
        "engine": Obj(
            {
                "idle": opt(GOOD_BAD),
                "oil_leak_rocker_cover": opt(LEAK),
                "oil_leak_cylinder_head": opt(LEAK),
                "oil_leak_block": opt(LEAK),
                "oil_level": opt(LEVEL),
                "coolant_leak_cylinder_head": opt(LEAK),
                "coolant_leak_water_pump": opt(LEAK),
                "coolant_leak_radiator": opt(LEAK),
                "coolant_level": opt(LEVEL),
                "common_rail": opt(GOOD_BAD),
            }
        ),
        "transmission": Obj(
            {
                "oil_leak": opt(LEAK),
                "oil_level": opt(LEVEL),
                "idle": opt(GOOD_BAD),
                "gear_shift": opt(GOOD_BAD),
            }
        ),
        "drivetrain": Obj(
            {
                "clutch": opt(GOOD_BAD),
                "cv_joint": opt(GOOD_BAD),
                "drive_shaft_bearing": opt(GOOD_BAD),
                "differential": opt(GOOD_BAD),
            }
        ),
        "steering": Obj(
            {
                "oil_leak": opt(LEAK),
                "pump": opt(GOOD_BAD),
                "gear": opt(GOOD_BAD),
                "joint": opt(GOOD_BAD),
                "hose": opt(GOOD_BAD),
                "tie_rod_ball_joint": opt(GOOD_BAD),
            }
        ),
        "brakes": Obj(
            {
                "master_cylinder_leak": opt(LEAK),
                "fluid_leak": opt(LEAK),
                "booster": opt(GOOD_BAD),
            }
        ),
        "electrical": Obj(
            {
                "generator": opt(GOOD_BAD),
                "starter_motor": opt(GOOD_BAD),
                "wiper_motor": opt(GOOD_BAD),
                "blower_motor": opt(GOOD_BAD),
                "radiator_fan_motor": opt(GOOD_BAD),
                "window_motor": opt(GOOD_BAD),
            }
        ),
        "high_voltage": opt(
            Obj(
                {
                    "charging_port_insulation": GOOD_BAD,
                    "battery_isolation": GOOD_BAD,
                    "wiring": GOOD_BAD,
                }
            )
        ),
        "fuel": Obj({"leak": LEAK}),
    }
)

PANEL_MAP = Map(Enum(*PANELS), List(Enum(*PANEL_CODES), 6, min_len=1, unique=True), len(PANELS))


def _form_rule(p: Mapping[str, Any], path: str) -> None:
    del path
    if p["header"]["fuel"] in ELECTRIFIED and "high_voltage" not in p["condition"]:
        raise InvalidInput(
            "missing_field",
            "payload.condition.high_voltage is required for hybrid, electric and hydrogen cars.",
            field="condition.high_voltage",
        )


INSPECTION = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "date": DATE,
        "header": _HEADER,
        "overall": _OVERALL,
        "panels": PANEL_MAP,
        "condition": _CONDITION,
        "repair_needed": List(
            Enum("exterior", "interior", "polish", "cabin_cleaning", "wheel", "tire", "glass"),
            7,
            unique=True,
        ),
        "kit": List(Enum("owner_manual", "warning_triangle", "jack", "spanner"), 4, unique=True),
        "price_assessment": opt(Obj({"amount": KRW, "basis": opt(Str(1, 200))})),
        "opinion": opt(TEXT),
        "inspector_id": ID,
        "assessor_id": opt(ID),
        "photos": List(HASH, 16, unique=True),
    },
    rule=_form_rule,
)
