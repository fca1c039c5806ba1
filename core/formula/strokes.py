"""Formula symbols as pen strokes, the way a mouse or a pen draws them.

Each symbol is one or more strokes in a unit box (x right, y down, both 0…1) with a width
relative to its height; `strokes_for` jitters the control points so no two are alike.
"""

from __future__ import annotations

import math
import random

Point = tuple[float, float]
Stroke = list[Point]


def _arc(
    cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 14
) -> Stroke:
    """Points on an ellipse from angle `start` to `end` (degrees, 0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in (start + (end - start) * i / (n - 1) for i in range(n))
    ]


def _variants(rng: random.Random, symbol: str) -> list[Stroke]:
    """The strokes of one way of writing `symbol`."""
    r = rng.random()
    if symbol == "0":
        return [_arc(0.5, 0.5, 0.42, 0.48, -100, 265 + 20 * r)]
    if symbol == "1":
        strokes = [[(0.55, 0.0), (0.55, 1.0)]]
        if r < 0.6:
            strokes[0].insert(0, (0.25, 0.25))
        if r < 0.25:
            strokes.append([(0.25, 1.0), (0.85, 1.0)])
        return strokes
    if symbol == "2":
        top = _arc(0.5, 0.3, 0.38, 0.3, 200, 380)
        return [top + [(0.1, 1.0), (0.95, 1.0)]]
    if symbol == "3":
        if r < 0.7:
            return [_arc(0.45, 0.26, 0.38, 0.26, 210, 450) + _arc(0.45, 0.74, 0.42, 0.26, 270, 510)]
        return [[(0.1, 0.0), (0.85, 0.0), (0.4, 0.42)] + _arc(0.45, 0.71, 0.42, 0.29, 270, 510)]
    if symbol == "4":
        if r < 0.6:
            return [[(0.65, 0.0), (0.05, 0.68), (0.95, 0.68)], [(0.65, 0.25), (0.65, 1.0)]]
        return [[(0.2, 0.0), (0.12, 0.6), (0.9, 0.6)], [(0.68, 0.05), (0.68, 1.0)]]
    if symbol == "5":
        return [[(0.85, 0.0), (0.2, 0.0), (0.15, 0.45)] + _arc(0.48, 0.68, 0.4, 0.32, 225, 500)]
    if symbol == "6":
        return [_arc(0.55, 0.55, 0.45, 0.55, 290, 180) + _arc(0.5, 0.72, 0.38, 0.28, 180, 540)]
    if symbol == "7":
        strokes = [[(0.05, 0.0), (0.95, 0.0), (0.35, 1.0)]]
        if r < 0.2:
            strokes.append([(0.3, 0.5), (0.8, 0.5)])
        return strokes
    if symbol == "8":
        return [_arc(0.5, 0.25, 0.33, 0.25, 90, 450) + _arc(0.5, 0.74, 0.4, 0.26, -90, 270)]
    if symbol == "9":
        return [_arc(0.5, 0.3, 0.4, 0.3, 0, 360) + [(0.9, 0.3), (0.8, 1.0)]]
    if symbol == "+":
        return [[(0.0, 0.5), (1.0, 0.5)], [(0.5, 0.05), (0.5, 0.95)]]
    if symbol == "-":
        return [[(0.0, 0.5), (1.0, 0.5)]]
    if symbol == "*":
        if r < 0.5:  # an asterisk of three strokes
            return [
                [(0.5, 0.1), (0.5, 0.9)],
                [(0.12, 0.3), (0.88, 0.7)],
                [(0.12, 0.7), (0.88, 0.3)],
            ]
        return [[(0.1, 0.15), (0.9, 0.85)], [(0.9, 0.15), (0.1, 0.85)]]  # a cross
    if symbol == "(":
        return [_arc(1.1, 0.5, 0.9, 0.52, 240, 120)]
    if symbol == ")":
        return [_arc(-0.1, 0.5, 0.9, 0.52, -60, 60)]
    if symbol == "=":
        return [[(0.0, 0.32), (1.0, 0.32)], [(0.0, 0.68), (1.0, 0.68)]]
    raise ValueError(f"no strokes for {symbol!r}")


#: (width relative to height, vertical extent: top, bottom in the line's unit box)
SHAPES: dict[str, tuple[float, float, float]] = {
    **{d: (0.58, 0.12, 0.88) for d in "0123456789"},
    "+": (0.55, 0.3, 0.72),
    "-": (0.5, 0.48, 0.52),
    "*": (0.5, 0.28, 0.68),
    "=": (0.55, 0.36, 0.64),
    "(": (0.32, 0.06, 0.96),
    ")": (0.32, 0.06, 0.96),
}


def strokes_for(rng: random.Random, symbol: str, jitter: float = 0.035) -> list[Stroke]:
    """Jittered strokes of `symbol` in its unit box."""
    result = []
    for stroke in _variants(rng, symbol):
        result.append([(x + rng.gauss(0, jitter), y + rng.gauss(0, jitter)) for x, y in stroke])
    return result
