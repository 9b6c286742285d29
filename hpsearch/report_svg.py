"""Static SVG figures for the HTML report: plain strings, no JavaScript, no plotting library.

Every function returns one ``<svg>`` element that is inlined in the page, so the report
works offline and from a file. Every label that can come from a study (param names,
choices, group names) goes through :func:`esc`; numbers are formatted here. Each figure
carries its n in its caption, which the caller writes (see ``report_html.py``).
"""

from __future__ import annotations

import html
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
# Viridis at 5 stops, for "worse -> better" colouring of parallel coordinates.
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
WIDTH = 720
FONT = 12
# Axis labels drawn over many lines stay readable with a white outline.
HALO = ' font-size="10" paint-order="stroke" stroke="#fff" stroke-width="3"'


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too: the result may go into an attribute)."""
    return html.escape(str(value), quote=True)


def short(label: Any, limit: int = 24) -> str:
    """A label cut to fit beside a figure (the full text goes into a ``<title>``)."""
    text = str(label)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}g}"


class Scale:
    """Map data [lo, hi] to pixels [a, b] (linear or log)."""

    def __init__(self, lo: float, hi: float, a: float, b: float, *, log: bool = False,
                 pad: float = 0.0) -> None:
        if log:
            lo, hi = math.log10(max(lo, 1e-300)), math.log10(max(hi, 1e-300))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        lo, hi = lo - pad * (hi - lo), hi + pad * (hi - lo)
        self.lo, self.hi, self.a, self.b, self.log = lo, hi, a, b, log

    def __call__(self, v: float) -> float:
        x = math.log10(max(v, 1e-300)) if self.log else v
        return self.a + (x - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list[float]:
        if self.log:
            return [10.0 ** e for e in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
        raw = (self.hi - self.lo) / max(n, 1)
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step) * step
        count = int((self.hi - first) / step + 1e-9) + 1
        return [round(first + i * step, 12) for i in range(count)]


def _svg(width: float, height: float, label: str, body: Sequence[str]) -> str:
    return (f'<svg class="fig" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'height="{height:.0f}" role="img" aria-label="{esc(label)}" '
            f'font-size="{FONT}">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: Any, anchor: str = "start", extra: str = "",
          limit: int = 0) -> str:
    """A label; with ``limit``, cut to that many characters, the full text as a tooltip."""
    shown = short(text, limit) if limit else str(text)
    tip = f"<title>{esc(text)}</title>" if shown != str(text) else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{tip}{esc(shown)}'
            "</text>")


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = "#888",
          extra: str = "") -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{stroke}"{extra}/>')


def tick(value: float) -> str:
    """An axis tick: ``1000``, ``0.25``, ``1e-05`` (no trailing zeros, no rounding noise)."""
    return f"{value:.6g}"


def _x_axis(sx: Scale, y: float, label: str) -> list[str]:
    out = [_line(sx.a, y, sx.b, y)]
    for t in sx.ticks():
        x = sx(t)
        out += [_line(x, y, x, y + 4), _text(x, y + 16, tick(t), "middle")]
    out.append(_text((sx.a + sx.b) / 2, y + 32, label, "middle"))
    return out


def _y_axis(sy: Scale, x: float, label: str, right: float) -> list[str]:
    out = [_line(x, sy.a, x, sy.b)]
    for t in sy.ticks():
        y = sy(t)
        out += [_line(x - 4, y, x, y), _text(x - 6, y + 4, tick(t), "end"),
                _line(x, y, right, y, "#eee")]
    mid = (sy.a + sy.b) / 2
    out.append(f'<text transform="translate(14 {mid:.1f}) rotate(-90)" '
               f'text-anchor="middle">{esc(label)}</text>')
    return out


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (label, colour) in enumerate(items):
        yy = y + i * 16
        out += [f'<rect x="{x:.1f}" y="{yy - 9:.1f}" width="10" height="10" '
                f'fill="{colour}"/>', _text(x + 14, yy, label, limit=22)]
    return out


def _viridis(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1], strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# ---------------------------------------------------------------------------- figures


def bars_with_ci(rows: Sequence[tuple[str, float, float | None, float | None]],
                 label: str) -> str:
    """Horizontal bars (param, value, ci_low, ci_high), largest first, with error bars."""
    left, row_h = 150, 22
    height = 50 + row_h * len(rows)
    top = max([max(v, hi if hi is not None else v) for _, v, _, hi in rows] + [1e-9])
    sx = Scale(0.0, top * 1.1, left, WIDTH - 30)
    body = _x_axis(sx, 10 + row_h * len(rows), label)
    for i, (name, value, lo, hi) in enumerate(rows):
        y = 10 + i * row_h
        body += [_text(left - 6, y + 15, name, "end", limit=20),
                 f'<rect x="{left}" y="{y + 4}" width="{max(sx(value) - left, 0.5):.1f}" '
                 f'height="{row_h - 8}" fill="{PALETTE[0]}"><title>{esc(name)}: '
                 f'{fmt(value)} [{fmt(lo)}, {fmt(hi)}]</title></rect>']
        if lo is None or hi is None:  # no interval: print the value at the end of the bar
            body.append(_text(max(sx(value), left) + 4, y + 15, fmt(value, 3), extra=HALO))
        else:
            yc = y + row_h / 2
            body += [_line(sx(lo), yc, sx(hi), yc, "#000"),
                     _line(sx(lo), yc - 5, sx(lo), yc + 5, "#000"),
                     _line(sx(hi), yc - 5, sx(hi), yc + 5, "#000")]
    return _svg(WIDTH, height, label, body)


def history(points: Sequence[tuple[int, float, str]], label: str = "objective value", *,
            maximize: bool = True) -> str:
    """Value per trial (complete: filled, pruned: hollow) and the best-so-far step line."""
    height, left = 300, 60
    xs = [p[0] for p in points] or [0]
    ys = [p[1] for p in points] or [0.0]
    sx = Scale(min(xs), max(xs), left, WIDTH - 160, pad=0.01)
    sy = Scale(min(ys), max(ys), height - 50, 15, pad=0.03)
    body = _y_axis(sy, left, label, sx.b) + _x_axis(sx, height - 45, "trial number")
    best: float | None = None
    step: list[str] = []
    dots: dict[bool, list[str]] = {True: [], False: []}
    sign = 1 if maximize else -1
    for number, value, state in points:
        x, y = sx(number), sy(value)
        dots[state == "COMPLETE"].append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>trial {number} '
            f"({esc(state.lower())}): {fmt(value)}</title></circle>")
        if state == "COMPLETE" and (best is None or sign * (value - best) > 0):
            if best is not None:
                step.append(f"{x:.1f},{sy(best):.1f}")
            best = value
            step.append(f"{x:.1f},{y:.1f}")
    body += ['<g fill="none" stroke="#999">', *dots[False], "</g>",
             f'<g fill="{PALETTE[0]}" fill-opacity="0.6">', *dots[True], "</g>"]
    if step:
        step.append(f"{sx.b:.1f},{step[-1].split(',')[1]}")
        body.append(f'<polyline points="{" ".join(step)}" fill="none" '
                    f'stroke="{PALETTE[3]}" stroke-width="2"/>')
    body += _legend(WIDTH - 145, 24, [("complete", PALETTE[0]), ("pruned", "#999"),
                                      ("best so far", PALETTE[3])])
    return _svg(WIDTH, height, "optimization history", body)


def bands(groups: Mapping[str, Mapping[str, Sequence[float]]], label: str) -> str:
    """Median line and IQR band per group, over epochs: {group: {epochs, median, q25, q75}}."""
    height, left = 280, 60
    epochs = [e for g in groups.values() for e in g["epochs"]] or [1]
    ys = [v for g in groups.values() for k in ("q25", "q75", "median") for v in g[k]] or [0.0]
    sx = Scale(min(epochs), max(epochs), left, WIDTH - 150)
    sy = Scale(min(ys), max(ys), height - 50, 15, pad=0.03)
    body = _y_axis(sy, left, label, sx.b) + _x_axis(sx, height - 45, "epoch")
    legend = []
    for i, (name, g) in enumerate(groups.items()):
        colour = PALETTE[i % len(PALETTE)]
        upper = [f"{sx(e):.1f},{sy(v):.1f}" for e, v in zip(g["epochs"], g["q75"], strict=True)]
        lower = [f"{sx(e):.1f},{sy(v):.1f}" for e, v in zip(g["epochs"], g["q25"], strict=True)]
        body.append(f'<polygon points="{" ".join(upper + lower[::-1])}" fill="{colour}" '
                    'fill-opacity="0.15" stroke="none"/>')
        mid = [f"{sx(e):.1f},{sy(v):.1f}" for e, v in zip(g["epochs"], g["median"], strict=True)]
        body.append(f'<polyline points="{" ".join(mid)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"><title>{esc(name)}</title></polyline>')
        n = g.get("n")
        n_text = f"n={n[0] if isinstance(n, list | tuple) and n else n}" if n else ""
        legend.append((f"{short(name, 16)} {n_text}".strip(), colour))
    body += _legend(WIDTH - 140, 24, legend)
    return _svg(WIDTH, height, label, body)


def box_strip(groups: Sequence[tuple[str, Sequence[float]]], label: str,
              max_points: int = 150, seed: int = 0, width: int = WIDTH) -> str:
    """One horizontal box (quartiles, 1.5 IQR whiskers) per choice, jittered points on top.

    At most ``max_points`` points per choice are drawn (a seeded sample); the box uses all.
    """
    left, row_h = 160, 30
    height = 50 + row_h * len(groups)
    values = [v for _, vs in groups for v in vs] or [0.0]
    sx = Scale(min(values), max(values), left, width - 20, pad=0.02)
    rng = random.Random(seed)
    body = _x_axis(sx, 10 + row_h * len(groups), label)
    for i, (name, vs) in enumerate(groups):
        y = 10 + i * row_h
        yc = y + row_h / 2
        body.append(_text(left - 6, yc + 4, f"{short(name, 14)} (n={len(vs)})", "end"))
        if not vs:
            continue
        s = sorted(vs)
        q1, med, q3 = (_quantile(s, q) for q in (0.25, 0.5, 0.75))
        lo = min(v for v in s if v >= q1 - 1.5 * (q3 - q1))
        hi = max(v for v in s if v <= q3 + 1.5 * (q3 - q1))
        colour = PALETTE[i % len(PALETTE)]
        body += [_line(sx(lo), yc, sx(q1), yc, "#555"), _line(sx(q3), yc, sx(hi), yc, "#555"),
                 f'<rect x="{sx(q1):.1f}" y="{y + 6}" width="{max(sx(q3) - sx(q1), 1):.1f}" '
                 f'height="{row_h - 12}" fill="{colour}" fill-opacity="0.25" stroke="{colour}">'
                 f'<title>{esc(name)}: median {fmt(med)}, IQR [{fmt(q1)}, {fmt(q3)}], '
                 f'n={len(vs)}</title></rect>',
                 _line(sx(med), y + 6, sx(med), y + row_h - 6, "#000",
                       ' stroke-width="2"')]
        shown = list(vs) if len(vs) <= max_points else rng.sample(list(vs), max_points)
        body += [f'<g fill="{colour}" fill-opacity="0.5">',
                 *(f'<circle cx="{sx(v):.1f}" cy="{yc + rng.uniform(-7, 7):.1f}" r="1.8"/>'
                   for v in shown), "</g>"]
    return _svg(width, height, label, body)


def parallel(axes: Sequence[tuple[str, Sequence[Any] | None, bool]],
             rows: Sequence[tuple[Sequence[Any], float]], label: str) -> str:
    """Parallel coordinates: one polyline per trial, coloured by its value (dark = worse).

    ``axes`` are (name, choices, log): ``choices`` for a categorical axis, ``None`` for a
    numeric one. A value of ``None`` (the param is inactive for that trial) sits on the
    axis's "n/a" slot at the bottom. The objective is the last axis, added here.
    """
    height, top, bottom = 340, 20, 290
    n_axes = len(axes) + 1
    xs = [60 + i * (WIDTH - 120) / max(n_axes - 1, 1) for i in range(n_axes)]
    vals = [v for _, v in rows] or [0.0]
    v_lo, v_hi = min(vals), max(vals)
    place: list[Any] = []
    body: list[str] = []
    for i, (name, choices, log) in enumerate(axes):
        if choices is not None:
            step = (bottom - top - 20) / max(len(choices) - 1, 1)
            pos = {repr(c): bottom - 20 - j * step for j, c in enumerate(choices)}
            place.append(lambda v, pos=pos: pos.get(repr(v)))
            body += [_text(xs[i] + 4, p + 4, c, "start", HALO, 14)
                     for c, p in zip(choices, pos.values(), strict=True)]
        else:
            nums = [float(r[i]) for r, _ in rows if r[i] is not None] or [0.0]
            s = Scale(min(nums), max(nums), bottom - 20, top, log=log and min(nums) > 0)
            place.append(lambda v, s=s: s(float(v)))
            body += [_text(xs[i] + 4, s(t) + 4, tick(t), "start", HALO)
                     for t in (s.ticks(3) if not s.log else s.ticks())]
        body += [_line(xs[i], top, xs[i], bottom, "#333"),
                 _text(xs[i] + 4, bottom + 2, "n/a", "start", ' font-size="9" fill="#999"'),
                 # names alternate between two rows so that long ones do not overlap
                 _text(xs[i], bottom + 20 + 14 * (i % 2), name, "middle",
                       ' font-weight="bold"', 18)]
    sv = Scale(v_lo, v_hi, bottom - 20, top)
    body += [_line(xs[-1], top, xs[-1], bottom, "#333"),
             _text(xs[-1], bottom + 20 + 14 * (len(axes) % 2), "value", "middle",
                   ' font-weight="bold"')]
    body += [_text(xs[-1] + 4, sv(t) + 4, tick(t), "start", HALO) for t in sv.ticks(4)]
    lines = []
    for values, value in sorted(rows, key=lambda r: r[1]):
        pts = []
        for i, v in enumerate(values):
            y = place[i](v) if v is not None else None
            pts.append(f"{xs[i]:.1f},{(y if y is not None else bottom):.1f}")
        pts.append(f"{xs[-1]:.1f},{sv(value):.1f}")
        colour = _viridis((value - v_lo) / (v_hi - v_lo) if v_hi > v_lo else 1.0)
        lines.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{colour}" '
                     'stroke-opacity="0.45"/>')
    return _svg(WIDTH, height + 20, label, lines + body)


def heatmap(matrix: Sequence[Sequence[float]], labels: Sequence[Any], label: str) -> str:
    """A confusion matrix: rows = true class, columns = predicted, counts in the cells."""
    n = len(matrix)
    cell = max(16, min(40, 560 // max(n, 1)))
    left, top = 60, 30
    peak = max([max(r) for r in matrix if r] + [1])
    body = [_text(left + n * cell / 2, 14, "predicted", "middle"),
            f'<text transform="translate(14 {top + n * cell / 2:.1f}) rotate(-90)" '
            'text-anchor="middle">true</text>']
    for i, row in enumerate(matrix):
        body.append(_text(left - 4, top + i * cell + cell / 2 + 4, labels[i], "end", limit=8))
        for j, v in enumerate(row):
            shade = 1 - (v / peak) ** 0.5
            grey = round(255 * shade)
            ink = "#000" if shade > 0.5 else "#fff"
            body.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" '
                        f'height="{cell}" fill="rgb({grey},{grey},255)"><title>true '
                        f'{esc(labels[i])}, predicted {esc(labels[j])}: {fmt(v)}</title></rect>')
            if cell >= 28:
                body.append(_text(left + j * cell + cell / 2, top + i * cell + cell / 2 + 4,
                                  fmt(v, 3), "middle", f' font-size="9" fill="{ink}"'))
    for j in range(n):
        body.append(_text(left + j * cell + cell / 2, top + n * cell + 14, labels[j],
                          "middle", limit=4))
    return _svg(left + n * cell + 20, top + n * cell + 24, label, body)
