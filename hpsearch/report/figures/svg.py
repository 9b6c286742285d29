"""The report's figures: matplotlib, written as inline SVG strings (``figures_trials`` and
``figures_params`` draw them; this module writes them and decides what their axes show).

Static, not interactive: an SVG drawn here is part of the one HTML file, needs no
JavaScript, so the page keeps a Content-Security-Policy that forbids every script (a study
name or param value holding markup can never run), stays a few hundred kB instead of the
3-4 MB of an inlined plotly.js, opens offline, prints, and reads the same as an Optuna
artifact or an attachment. The cost is no hover: the tables beside each figure hold the
numbers a tooltip would.

The figures are Optuna's (optimization history, hyperparameter importances, intermediate
values, slice, parallel coordinate: the names and axes of ``optuna.visualization``), drawn
here rather than by ``optuna.visualization.matplotlib`` because a person must read them at
a glance: the value axis covers the region that holds the good trials, and trials below it
(chance-level configs at 0.1 next to good ones at 0.98) are counted in a margin note and
marked at the axis edge instead of squeezing everything else into a sliver. Dense figures
draw at most ``MAX_POINTS`` trials (the best always among them) and say so.

Every string from a study (param names, choices) reaches matplotlib as plain text (math
parsing off) and the SVG backend writes it escaped into ``<text>`` elements. matplotlib is
imported on first use, so only the HTML format pays for it.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.text import plain_lines

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
COMPLETE, PRUNED, BEST = "#0072B2", "#9a9a9a", "#D55E00"
# matplotlib's "Glyph 27 (\x1b) missing from font(s) ..." for a C0 or C1 control character
_CONTROL_GLYPH = r"Glyph ([0-9]|[12][0-9]|3[01]|12[7-9]|1[3-5][0-9]) \("
MAX_POINTS = 250      # trials drawn in the dense figures (all of them when fewer)
WIDTH = 7.2           # inches; the page scales SVGs to its column
_RC = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 8,
       "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
       "legend.fontsize": 7, "axes.spines.top": False, "axes.spines.right": False,
       "axes.grid": True, "grid.color": "#e6e6e6", "grid.linewidth": 0.6,
       "axes.axisbelow": True, "font.family": "sans-serif",
       "font.sans-serif": ["DejaVu Sans"]}


def _mpl() -> Any:
    import matplotlib

    return matplotlib


def draw(plot: Callable[..., Figure | None], *args: Any, name: str = "fig", **kwargs: Any) -> str:
    """Call ``plot(*args, **kwargs)`` -> a Figure, and return it as an inline ``<svg>``.

    ``name`` salts the SVG's element ids (clip paths, markers), so two figures in one page
    never share an id. An empty string when ``plot`` returns None (nothing to show).
    """
    mpl = _mpl()
    with mpl.rc_context({**_RC, "svg.hashsalt": f"hpsearch-{name}"}):
        fig = plot(*args, **kwargs)
        if fig is None:
            return ""
        buf = io.StringIO()
        with warnings.catch_warnings():
            # A study's names may hold control characters (escape codes): the font has no
            # glyph for them, and matplotlib's warning would print them raw to the terminal.
            warnings.filterwarnings("ignore", message=_CONTROL_GLYPH)
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None,
                                                     "Format": None, "Type": None})
    # ... and in the SVG they would be raw bytes (not even XML): shown as spaces instead.
    text = plain_lines(buf.getvalue())
    text = text[text.index("<svg"):]
    # Inline SVG in HTML needs no namespace declarations or metadata (they hold URLs, and
    # the page promises none); the width/height in pt give way to the page's CSS.
    text = re.sub(r'\s(xmlns(:\w+)?|version)="[^"]*"', "", text, count=0)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # matplotlib names every group (figure_1, axes_1, line2d_3, ...): the same names in
    # each figure, so one page would repeat them. Only the referenced ids (clip paths,
    # markers, salted above) are kept.
    refs = set(re.findall(r'#([^")\s]+)', text))
    text = re.sub(r' id="([^"]+)"', lambda m: m.group(0) if m.group(1) in refs else "", text)
    text = re.sub(r'<svg([^>]*?) width="[\d.]+pt" height="[\d.]+pt"',
                  rf'<svg\1 class="fig" role="img" aria-label="{name}"', text, count=1)
    return text


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def thin(idx: Sequence[int], values: Sequence[float], keep_best: int, maximize: bool,
            limit: int = MAX_POINTS) -> list[int]:
    """At most ``limit`` of ``idx``: the ``keep_best`` best always, the rest evenly spaced."""
    if len(idx) <= limit:
        return list(idx)
    order = sorted(idx, key=lambda i: -values[i] if maximize else values[i])
    best, rest = order[:keep_best], sorted(order[keep_best:])
    step = len(rest) / (limit - keep_best)
    return sorted(best + [rest[int(k * step)] for k in range(limit - keep_best)])


# ---------------------------------------------------------------------------- the view


@dataclass(frozen=True)
class View:
    """The value range a figure shows: where the good trials are, and what lies outside."""

    lo: float
    hi: float
    maximize: bool

    @classmethod
    def of(cls, values: Sequence[float], maximize: bool = True) -> View:
        """Tukey's fence on the bad side: a trial further than 1.5 IQR below the lower
        quartile (maximizing) is an outlier of the study, not part of the picture."""
        vs = sorted(v for v in values if math.isfinite(v))
        if not vs:
            return cls(0.0, 1.0, maximize)
        q1, q3 = vs[len(vs) // 4], vs[(3 * len(vs)) // 4]
        fence = 1.5 * (q3 - q1)
        lo, hi = vs[0], vs[-1]
        if maximize:
            lo = max(lo, q1 - fence)
        else:
            hi = min(hi, q3 + fence)
        pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi) * 0.01, 0.005)
        lo, hi = lo - pad, hi + pad
        if 0 <= vs[0] and vs[-1] <= 1:  # an accuracy: the axis never passes 0 or 1
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        return cls(lo, hi, maximize)

    def outside(self, values: Sequence[float]) -> list[float]:
        return [v for v in values if v < self.lo or v > self.hi]

    def clip(self, v: float) -> float:
        return min(max(v, self.lo), self.hi)

    def note(self, values: Sequence[float], what: str = "trials") -> str:
        """'12 trials below 0.91 (lowest 0.098)' for the margin, or '' if none."""
        out = self.outside(values)
        if not out:
            return ""
        side = "below" if self.maximize else "above"
        edge = self.lo if self.maximize else self.hi
        worst = min(out) if self.maximize else max(out)
        what = what if len(out) != 1 else what.removesuffix("s")
        return (f"{len(out)} {what} {side} {edge:.3g} "
                f"({'down' if self.maximize else 'up'} to {worst:.3g})")


def mark_outside(ax: Axes, xs: Sequence[float], ys: Sequence[float], view: View,
                  colour: str = PRUNED, axis: str = "y") -> None:
    """Trials outside the view drawn as arrowheads on the axis edge they lie beyond."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y < view.lo or y > view.hi]
    if not pts:
        return
    edge = [view.lo if y < view.lo else view.hi for _, y in pts]
    marker = "v" if view.maximize else "^"
    if axis == "y":
        ax.scatter([x for x, _ in pts], edge, marker=marker, s=14, c=colour, clip_on=False,
                   zorder=3, linewidths=0)
    else:
        ax.scatter(edge, [x for x, _ in pts], marker="<" if view.maximize else ">", s=14,
                   c=colour, clip_on=False, zorder=3, linewidths=0)


def integer_locator(nbins: int = 5) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=nbins, integer=True)


def few_ticks(ax: Axes, nbins: int = 4, axis: str = "y") -> None:
    """At most ``nbins`` ticks on an axis: each tick is a few ms to lay out, and a small
    panel reads better with fewer."""
    from matplotlib.ticker import MaxNLocator

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_locator(MaxNLocator(nbins=nbins))


def log_axis(ax: Axes, values: Sequence[float], axis: str = "x") -> None:
    """A log axis labelled 0.001, 0.01, ... in plain text (the default labels are mathtext,
    which is off here so that a ``$`` in a study string stays a dollar sign)."""
    from matplotlib import ticker

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    positive = [v for v in values if v > 0]
    decades = math.log10(max(positive) / min(positive)) if positive else 0.0
    target.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0) if decades < 1.5 else
                                               (1.0,), numticks=5))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(ticker.NullFormatter())


def side_note(ax: Axes, text: str) -> None:
    """A margin note in the title row, right-aligned: what the axis leaves out."""
    if text:
        ax.set_title(f"▼ {text}", loc="right", fontsize=7, color="#555")


def short(text: Any, limit: int = 22) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit - 1] + "…"
