"""SVG drawings for the fractions course: bars, pies, number lines, groups of dots.

Drawings carry numbers only, never words, so the English and Spanish courses share the same files
(and the blob store keeps each once); the lesson's alt text says what the picture shows in the
learner's language. Coordinates are rounded to two decimals so the bytes are identical on every run
and platform (the bundle's hashes depend on it).
"""
from __future__ import annotations

import math
from fractions import Fraction

SHADE = "#2b6cb0"       # blue: strong contrast with white, and readable in greyscale
SHADE_2 = "#dd6b20"     # orange: a second quantity (the part being added)
INK = "#1a202c"
PAPER = "#ffffff"
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def _n(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _doc(width: float, height: float, body: list[str]) -> bytes:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(width)} {_n(height)}" '
            f'width="{_n(width)}" height="{_n(height)}" role="img">')
    return ("\n".join([head, *body, "</svg>"]) + "\n").encode("utf-8")


def frac_label(x: float, y: float, n: int | str, d: int | str, size: int = 20) -> list[str]:
    """A stacked fraction (numerator over a bar over denominator), centred at ``x``; ``y`` is its top."""
    w = size * 0.7 * max(len(str(n)), len(str(d))) + 6
    return [
        f'<text x="{_n(x)}" y="{_n(y + size)}" text-anchor="middle" font-size="{size}" {FONT} fill="{INK}">{n}</text>',
        (f'<line x1="{_n(x - w / 2)}" y1="{_n(y + size + 5)}" x2="{_n(x + w / 2)}" y2="{_n(y + size + 5)}" '
         f'stroke="{INK}" stroke-width="2"/>'),
        f'<text x="{_n(x)}" y="{_n(y + 2 * size + 8)}" text-anchor="middle" font-size="{size}" {FONT} fill="{INK}">{d}</text>',
    ]


def _bar(x: float, y: float, width: float, height: float, n: int, d: int, colour: str = SHADE) -> list[str]:
    out = []
    part = width / d
    for i in range(d):
        fill = colour if i < n else PAPER
        out.append(f'<rect x="{_n(x + i * part)}" y="{_n(y)}" width="{_n(part)}" height="{_n(height)}" '
                   f'fill="{fill}" stroke="{INK}" stroke-width="2"/>')
    return out


def fraction_bar(n: int, d: int) -> bytes:
    """One bar split into ``d`` equal parts with ``n`` shaded, and its fraction beside it."""
    return _doc(420, 80, _bar(10, 16, 320, 48, n, d) + frac_label(380, 4, n, d))


def bars(fracs: list[tuple[int, int]]) -> bytes:
    """Bars of the same length stacked, to compare or to show equivalent fractions."""
    body: list[str] = []
    for row, (n, d) in enumerate(fracs):
        y = 10 + row * 72
        body += _bar(10, y + 8, 320, 44, n, d) + frac_label(380, y - 4, n, d)
    return _doc(420, 20 + 72 * len(fracs), body)


def _sector(cx: float, cy: float, r: float, a0: float, a1: float, fill: str) -> str:
    # Angles in turns from 12 o'clock, clockwise, like a clock face children know.
    x0, y0 = cx + r * math.sin(2 * math.pi * a0), cy - r * math.cos(2 * math.pi * a0)
    x1, y1 = cx + r * math.sin(2 * math.pi * a1), cy - r * math.cos(2 * math.pi * a1)
    large = 1 if a1 - a0 > 0.5 else 0
    return (f'<path d="M{_n(cx)} {_n(cy)} L{_n(x0)} {_n(y0)} A{_n(r)} {_n(r)} 0 {large} 1 {_n(x1)} {_n(y1)} Z" '
            f'fill="{fill}" stroke="{INK}" stroke-width="2"/>')


def _pie(cx: float, cy: float, r: float, n: int, d: int) -> list[str]:
    if d == 1:
        return [f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}" fill="{SHADE if n else PAPER}" stroke="{INK}" stroke-width="2"/>']
    return [_sector(cx, cy, r, i / d, (i + 1) / d, SHADE if i < n else PAPER) for i in range(d)]


def pie(n: int, d: int) -> bytes:
    """A circle cut into ``d`` equal slices with ``n`` shaded, and its fraction."""
    return _doc(260, 180, _pie(90, 90, 78, n, d) + frac_label(215, 58, n, d))


def pies(fracs: list[tuple[int, int]]) -> bytes:
    """Several pies side by side, each labelled (comparing fractions with different slices)."""
    body: list[str] = []
    for i, (n, d) in enumerate(fracs):
        cx = 80 + i * 170
        body += _pie(cx, 80, 68, n, d) + frac_label(cx, 158, n, d)
    return _doc(170 * len(fracs) - 10, 230, body)


def mixed_number(whole: int, n: int, d: int) -> bytes:
    """``whole`` full pies and one pie with ``n`` of ``d`` slices: whole n/d = (whole*d + n)/d."""
    body: list[str] = []
    for i in range(whole + 1):
        cx = 70 + i * 140
        body += _pie(cx, 70, 60, d if i < whole else n, d)
    x = 70 + (whole + 1) * 140 - 40
    body.append(f'<text x="{_n(x)}" y="86" font-size="34" {FONT} fill="{INK}">{whole}</text>')
    body += frac_label(x + 50, 40, n, d, size=22)
    body.append(f'<text x="{_n(x + 90)}" y="86" font-size="30" {FONT} fill="{INK}">=</text>')
    body += frac_label(x + 150, 40, whole * d + n, d, size=22)
    return _doc(x + 200, 150, body)


def number_line(d: int, *, upto: int = 1, points: list[Fraction] = (), jumps: list[tuple[Fraction, Fraction]] = (),
                decimals: bool = False) -> bytes:
    """0 to ``upto`` split in steps of 1/d; ``points`` are marked, ``jumps`` drawn as arcs (start, length).

    With ``decimals`` the ticks are labelled 0.1, 0.2... instead of fractions (d must be 10)."""
    left, width, y = 40, 640, 120
    steps = d * upto
    body = [f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="{INK}" stroke-width="3"/>']
    for i in range(steps + 1):
        x = left + width * i / steps
        whole = i % d == 0
        h = 16 if whole else 10
        body.append(f'<line x1="{_n(x)}" y1="{y - h}" x2="{_n(x)}" y2="{y + h}" stroke="{INK}" stroke-width="{3 if whole else 2}"/>')
        if whole:
            body.append(f'<text x="{_n(x)}" y="{y + 44}" text-anchor="middle" font-size="22" {FONT} fill="{INK}">{i // d}</text>')
        elif decimals:
            label = f"{i / d:.1f}"
            body.append(f'<text x="{_n(x)}" y="{y + 40}" text-anchor="middle" font-size="15" {FONT} fill="{INK}">{label}</text>')
        else:
            body += frac_label(x, y + 18, i % d if upto == 1 else i, d, size=14)
    for j, (start, length) in enumerate(jumps):
        x0 = left + width * float(start) / upto
        x1 = left + width * float(start + length) / upto
        colour = SHADE if j == 0 else SHADE_2
        rise = 30 + 12 * j
        body.append(f'<path d="M{_n(x0)} {y - 6} Q{_n((x0 + x1) / 2)} {_n(y - 6 - 2 * rise)} {_n(x1)} {y - 6}" '
                    f'fill="none" stroke="{colour}" stroke-width="3"/>')
        s = 1 if x1 >= x0 else -1  # arrowhead points the way of the jump (backwards for taking away)
        body.append(f'<polygon points="{_n(x1)},{y - 6} {_n(x1 - 9 * s)},{y - 16} {_n(x1 + 3 * s)},{y - 18}" fill="{colour}"/>')
    for p in points:
        x = left + width * float(p) / upto
        body.append(f'<circle cx="{_n(x)}" cy="{y}" r="8" fill="{SHADE_2}" stroke="{INK}" stroke-width="2"/>')
    return _doc(left * 2 + width, 190, body)


def dot_groups(total: int, groups: int, shaded_groups: int) -> bytes:
    """``total`` dots in ``groups`` equal boxes, ``shaded_groups`` boxes coloured: n/d of a number."""
    per = total // groups
    cols = min(per, 4)
    rows = math.ceil(per / cols)
    bw, bh = cols * 26 + 14, rows * 26 + 14
    body: list[str] = []
    for g in range(groups):
        x0 = 10 + g * (bw + 12)
        fill = SHADE if g < shaded_groups else PAPER
        body.append(f'<rect x="{_n(x0)}" y="10" width="{_n(bw)}" height="{_n(bh)}" rx="8" fill="none" '
                    f'stroke="{INK}" stroke-width="2"/>')
        for k in range(per):
            cx = x0 + 20 + (k % cols) * 26
            cy = 30 + (k // cols) * 26
            body.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="9" fill="{fill}" stroke="{INK}" stroke-width="2"/>')
    return _doc(groups * (bw + 12) + 8, bh + 20, body)


def pizza(slices: int, eaten: int) -> bytes:
    """A pizza for word problems: eaten slices are gone (white), the rest are cheese and tomato."""
    body = [f'<circle cx="110" cy="110" r="100" fill="#c05621" stroke="{INK}" stroke-width="2"/>']
    for i in range(slices):
        fill = PAPER if i < eaten else "#f6e05e"
        body.append(_sector(110, 110, 88, i / slices, (i + 1) / slices, fill))
    for i in range(eaten, slices):
        a = (i + 0.5) / slices
        cx, cy = 110 + 55 * math.sin(2 * math.pi * a), 110 - 55 * math.cos(2 * math.pi * a)
        body.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="10" fill="#c53030"/>')
    return _doc(220, 220, body)
