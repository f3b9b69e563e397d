"""The inspection form's panel diagram: where each panel sits, seen from above.

Two drawings as on the official form (성능·상태점검기록부): the outer panels (외판,
rank 1 and 2) and the frame (주요골격, rank A, B and C), each a 200 x 380 view box
with the car's front at the top and its left side on the left. A panel is a
rectangle; :func:`diagram` marks each with the codes the inspector recorded, so the
template colours replaced (``X``) and welded (``W``) panels and labels every finding.
Every panel name of :mod:`carledger.vehicle.inspection_form` has a place (a test
checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from carledger.vehicle.inspection_form import FRAME_A, FRAME_B, FRAME_C, OUTER_1, OUTER_2

__all__ = ["FRAME_LAYOUT", "OUTER_LAYOUT", "Shape", "diagram"]

Box = tuple[int, int, int, int]

OUTER_LAYOUT: dict[str, Box] = {
    "radiator_support": (66, 6, 68, 12),
    "hood": (50, 22, 100, 68),
    "front_fender_left": (20, 22, 28, 68),
    "front_fender_right": (152, 22, 28, 68),
    "door_front_left": (20, 94, 28, 70),
    "door_front_right": (152, 94, 28, 70),
    "door_rear_left": (20, 168, 28, 70),
    "door_rear_right": (152, 168, 28, 70),
    "side_sill_left": (6, 94, 12, 144),
    "side_sill_right": (182, 94, 12, 144),
    "roof": (52, 112, 96, 112),
    "quarter_panel_left": (20, 242, 28, 82),
    "quarter_panel_right": (152, 242, 28, 82),
    "trunk_lid": (50, 262, 100, 62),
}

FRAME_LAYOUT: dict[str, Box] = {
    "front_panel": (50, 6, 100, 14),
    "cross_member": (50, 22, 100, 12),
    "front_side_member_left": (28, 22, 18, 84),
    "front_side_member_right": (154, 22, 18, 84),
    "front_wheel_house_left": (50, 38, 26, 40),
    "front_wheel_house_right": (124, 38, 26, 40),
    "inside_panel_left": (50, 80, 26, 26),
    "inside_panel_right": (124, 80, 26, 26),
    "dash_panel": (50, 110, 100, 14),
    "pillar_a_left": (28, 110, 18, 24),
    "pillar_a_right": (154, 110, 18, 24),
    "floor_panel": (50, 128, 100, 112),
    "pillar_b_left": (28, 170, 18, 24),
    "pillar_b_right": (154, 170, 18, 24),
    "pillar_c_left": (28, 228, 18, 24),
    "pillar_c_right": (154, 228, 18, 24),
    "package_tray": (50, 244, 100, 14),
    "rear_wheel_house_left": (50, 262, 26, 40),
    "rear_wheel_house_right": (124, 262, 26, 40),
    "rear_side_member_left": (28, 258, 18, 88),
    "rear_side_member_right": (154, 258, 18, 88),
    "trunk_floor": (80, 262, 40, 66),
    "rear_panel": (50, 350, 100, 14),
}

#: Rank of each panel, as the form groups them.
RANK = (
    dict.fromkeys(OUTER_1, "outer1")
    | dict.fromkeys(OUTER_2, "outer2")
    | dict.fromkeys(FRAME_A, "frame_a")
    | dict.fromkeys(FRAME_B, "frame_b")
    | dict.fromkeys(FRAME_C, "frame_c")
)


@dataclass(frozen=True, slots=True)
class Shape:
    panel: str
    rank: str
    x: int
    y: int
    w: int
    h: int
    codes: tuple[str, ...]

    @property
    def mark(self) -> str:
        """``replaced``, ``welded``, ``other`` (a scratch, dent...) or ``none``."""
        if "X" in self.codes:
            return "replaced"
        if "W" in self.codes:
            return "welded"
        return "other" if self.codes else "none"

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def diagram(panels: Mapping[str, list[str]], layout: Mapping[str, Box]) -> list[Shape]:
    """The shapes of ``layout`` with the codes ``panels`` (the form's map) gives each."""
    return [
        Shape(name, RANK[name], *box, tuple(panels.get(name, ()))) for name, box in layout.items()
    ]
