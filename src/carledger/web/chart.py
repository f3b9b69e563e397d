"""The odometer chart: readings over time as SVG geometry (the template draws it).

Pure: :func:`odometer_chart` takes the proven state's readings (each ``{id, on, km,
flags}``, already in time order) and returns points in a fixed view box, the line
through the good readings, and axis ticks. Rolled-back and implausible readings are
points of their own kind, so the template can mark them; an implausible reading far
above the rest would flatten the chart, so the y axis is scaled to the plausible
readings and such a point is pinned to the top edge.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WIDTH", "Chart", "Point", "odometer_chart"]

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 26, 36
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    km: int
    on: str
    kind: str  # good | rollback | implausible
    id: str
    clipped: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    points: list[Point]
    line: str  # SVG path data through the readings in time order
    y_ticks: list[tuple[float, int]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.points

    #: Edges of the plot area in the view box (for the template's grid lines).
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM


def _ordinal(date: str) -> int:
    return _dt.date.fromisoformat(date).toordinal()


def _nice_step(span: int) -> int:
    """A round tick step giving about four to eight ticks over ``span``."""
    step = 1
    while span / step > 8:
        for mult in (2, 5, 10):
            if span / (step * mult) <= 8:
                return step * mult
        step *= 10
    return step


def _kind(flags: list[str]) -> str:
    if "rollback" in flags:
        return "rollback"
    if "implausible" in flags:
        return "implausible"
    return "good"


def odometer_chart(readings: list[dict[str, Any]]) -> Chart:
    """Geometry of the non-void ``readings`` (``on`` dates, ``km``, ``flags``)."""
    live = [r for r in readings if not r.get("void")]
    if not live:
        return Chart([], "")
    days = [_ordinal(r["on"]) for r in live]
    d0, d1 = min(days), max(days)
    d1 = max(d1, d0 + 30)
    plausible = [r["km"] for r in live if _kind(r["flags"]) != "implausible"] or [0]
    top = max(*plausible, 1000)
    step = _nice_step(top)
    top = -(-top // step) * step

    def x_of(day: int) -> float:
        return round(LEFT + (day - d0) / (d1 - d0) * PLOT_W, 1)

    def y_of(km: int) -> tuple[float, bool]:
        clipped = km > top
        value = min(km, top)
        return round(TOP + PLOT_H - value / top * PLOT_H, 1), clipped

    points = []
    for r, day in zip(live, days, strict=True):
        y, clipped = y_of(r["km"])
        points.append(Point(x_of(day), y, r["km"], r["on"], _kind(r["flags"]), r["id"], clipped))
    line = " ".join(f"{'M' if i == 0 else 'L'}{p.x},{p.y}" for i, p in enumerate(points))
    y_ticks = [(y_of(v)[0], v) for v in range(0, top + 1, step)]
    first_year = _dt.date.fromordinal(d0).year + 1
    last_year = _dt.date.fromordinal(d1).year
    years = list(range(first_year, last_year + 1))
    stride = max(1, -(-len(years) // 8))
    x_ticks = [(x_of(_dt.date(y, 1, 1).toordinal()), str(y)) for y in years[::stride]] or [
        (x_of(d0), _dt.date.fromordinal(d0).isoformat())
    ]
    return Chart(points, line, y_ticks, x_ticks)
