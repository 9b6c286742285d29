"""The report's figures: matplotlib, written as inline SVG strings.

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

import functools
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
COMPLETE, PRUNED, BEST = "#0072B2", "#9a9a9a", "#D55E00"
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


def svg(draw: Callable[..., Figure | None], *args: Any, name: str = "fig", **kwargs: Any) -> str:
    """Call ``draw(*args, **kwargs)`` -> a Figure, and return it as an inline ``<svg>``.

    ``name`` salts the SVG's element ids (clip paths, markers), so two figures in one page
    never share an id. An empty string when ``draw`` returns None (nothing to show).
    """
    mpl = _mpl()
    with mpl.rc_context({**_RC, "svg.hashsalt": f"hpsearch-{name}"}):
        fig = draw(*args, **kwargs)
        if fig is None:
            return ""
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None,
                                                 "Format": None, "Type": None})
    text = buf.getvalue()
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


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _sample(idx: Sequence[int], values: Sequence[float], keep_best: int, maximize: bool,
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
        return cls(lo - pad, hi + pad, maximize)

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


def _mark_outside(ax: Axes, xs: Sequence[float], ys: Sequence[float], view: View,
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


def _integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _log_axis(ax: Axes, values: Sequence[float], axis: str = "x") -> None:
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


def _side_note(ax: Axes, text: str) -> None:
    """A margin note in the title row, right-aligned: what the axis leaves out."""
    if text:
        ax.set_title(f"▼ {text}", loc="right", fontsize=7, color="#555")


def _short(text: Any, limit: int = 22) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit - 1] + "…"


# ---------------------------------------------------------------------------- figures


def importance(rows: Sequence[Mapping[str, Any]], evaluator: str) -> Figure | None:
    """Hyperparameter Importances: one bar per param, largest on top, 95% bootstrap CI."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return None
    height = 0.8 + 0.19 * len(rows)
    fig = _figure(WIDTH, height)
    ax = fig.add_axes((0.22, 0.45 / height, 0.74, 1 - 0.75 / height))
    ys = list(range(len(rows)))[::-1]
    vals = [r["value"] for r in rows]
    lo = [max(0.0, v - r["ci_low"]) if r.get("ci_low") is not None else 0.0
          for v, r in zip(vals, rows, strict=True)]
    hi = [max(0.0, r["ci_high"] - v) if r.get("ci_high") is not None else 0.0
          for v, r in zip(vals, rows, strict=True)]
    has_ci = any(lo) or any(hi)
    ax.barh(ys, vals, color=COMPLETE, height=0.65,
            xerr=[lo, hi] if has_ci else None, error_kw={"lw": 0.8, "capsize": 2})
    ax.set_yticks(ys, [_short(r["param"], 28) for r in rows])
    ax.set_xlabel(f"importance ({evaluator}; sums to 1)" + ("; bars: 95% CI" if has_ci else ""))
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, max(v + h for v, h in zip(vals, hi, strict=True)) * 1.08 or 1)
    ax.set_title("Hyperparameter Importances", loc="left")
    return fig


def history(rows: Sequence[Mapping[str, Any]], maximize: bool = True) -> Figure | None:
    """Optimization History: each trial's value, the best value so far as a step line."""
    if not rows:
        return None
    fig = _figure(WIDTH, 2.8)
    ax = fig.add_axes((0.09, 0.15, 0.88, 0.75))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    view = View.of([r["value"] for r in complete] or [r["value"] for r in rows], maximize)
    for group, colour, label, face in ((complete, COMPLETE, "complete", COMPLETE),
                                       ([r for r in rows if r["state"] != "COMPLETE"], PRUNED,
                                        "pruned (value at its last epoch)", "none")):
        inside = [r for r in group if view.lo <= r["value"] <= view.hi]
        if inside:
            ax.scatter([r["number"] for r in inside], [r["value"] for r in inside], s=9,
                       edgecolors=colour, facecolors=face, linewidths=0.7, label=label,
                       alpha=0.8, zorder=2)
        _mark_outside(ax, [r["number"] for r in group], [r["value"] for r in group], view,
                      colour)
    if complete:
        best_x, best_y, best = [], [], None
        for r in sorted(complete, key=lambda r: r["number"]):
            if best is None or (r["value"] > best if maximize else r["value"] < best):
                best = r["value"]
            best_x.append(r["number"])
            best_y.append(best)
        best_x.append(max(r["number"] for r in rows))
        best_y.append(best_y[-1])
        ax.step(best_x, [view.clip(y) for y in best_y], where="post", color=BEST, lw=1.4,
                label="best value", zorder=3)
    ax.set_ylim(view.lo, view.hi)
    ax.set_xlabel("trial")
    ax.set_ylabel("objective value")
    ax.set_title("Optimization History", loc="left")
    ax.legend(loc="lower right", frameon=False, ncols=3)
    _side_note(ax, view.note([r["value"] for r in rows]))
    return fig


def intermediate(rows: Sequence[Mapping[str, Any]], maximize: bool = True) -> Figure | None:
    """Intermediate Values: each trial's validation accuracy per epoch (pruned: grey)."""
    from matplotlib.collections import LineCollection

    rows = [r for r in rows if len(r.get("intermediate") or {}) >= 1]
    if not rows:
        return None
    values = [r["value"] for r in rows]
    keep = [rows[i] for i in _sample(range(len(rows)), values, 40, maximize)]
    view = View.of([float(v) for r in keep for v in r["intermediate"].values()], maximize)
    fig = _figure(WIDTH, 2.8)
    ax = fig.add_axes((0.09, 0.15, 0.88, 0.75))
    for state, colour, width, alpha, label in (("COMPLETE", COMPLETE, 0.8, 0.4, "complete"),
                                               ("PRUNED", "#555", 0.7, 0.5, "pruned")):
        segs = [[(float(e), view.clip(v)) for e, v in sorted(
            (int(k), float(v)) for k, v in r["intermediate"].items())]
            for r in keep if (r["state"] == "COMPLETE") == (state == "COMPLETE")]
        if segs:
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=width,
                                             alpha=alpha, label=label))
    epochs = [int(k) for r in keep for k in r["intermediate"]]
    ax.set_xlim(min(epochs) - 0.2, max(epochs) + 0.2)
    ax.set_ylim(view.lo, view.hi)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Intermediate Values", loc="left")
    ax.xaxis.set_major_locator(_integer_locator())
    ax.legend(loc="lower right", frameon=False)
    low = [min(float(v) for v in r["intermediate"].values()) for r in rows]
    n_low = len(view.outside(low))
    if n_low:
        _side_note(ax, f"{n_low} trials have epochs below {view.lo:.3g}, drawn on the edge")
    return fig


def trial_curves(rows: Sequence[Mapping[str, Any]]) -> Figure | None:
    """The best trials' learning curves: train and validation loss, validation accuracy."""
    rows = [r for r in rows if isinstance(r.get("curve"), Mapping)
            and (r["curve"].get("val_acc") or r["curve"].get("train_loss"))]
    if not rows:
        return None
    fig = _figure(WIDTH, 2.6)
    ax_loss = fig.add_axes((0.08, 0.16, 0.38, 0.72))
    ax_acc = fig.add_axes((0.56, 0.16, 0.30, 0.72))
    for i, r in enumerate(rows):
        c, colour = r["curve"], PALETTE[i % len(PALETTE)]
        label = f"#{r['number']}"
        for key, style, ax in (("train_loss", "-", ax_loss), ("val_loss", "--", ax_loss),
                               ("val_acc", "-", ax_acc)):
            ys = [v for v in (c.get(key) or []) if v is not None]
            if ys:
                ax.plot(range(1, len(ys) + 1), ys, style, color=colour, lw=1.2,
                        label=label if key == "val_acc" else None, marker="o", ms=2.5)
    ax_loss.set_title("Loss (solid: train, dashed: validation)", loc="left")
    ax_loss.set_xlabel("epoch")
    ax_acc.set_title("Validation accuracy", loc="left")
    ax_acc.set_xlabel("epoch")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(_integer_locator())
    ax_acc.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, title="trial")
    return fig


def curves_by(curves: Mapping[str, Mapping[str, Mapping[str, Any]]],
              cols: int = 2) -> Figure | None:
    """Median and interquartile band of validation accuracy per epoch, one panel per param."""
    panels = [(p, {g: c for g, c in groups.items() if c.get("epochs")})
              for p, groups in curves.items()]
    panels = [(p, g) for p, g in panels if g]
    if not panels:
        return None
    rows_n = math.ceil(len(panels) / cols)
    fig = _figure(WIDTH, 2.3 * rows_n)
    # One value axis for all panels: the same metric, so the panels compare by eye (and
    # hidden inner tick labels are cheaper to draw).
    axes = fig.subplots(rows_n, cols, squeeze=False, sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.3 / (2.3 * rows_n),
                        bottom=0.5 / (2.3 * rows_n), wspace=0.06, hspace=0.55)
    view = View.of([v for _, groups in panels for c in groups.values() for v in c["median"]
                    if v is not None])
    for ax, (param, groups) in zip(axes.flat, panels, strict=False):
        for i, (name, c) in enumerate(groups.items()):
            colour = PALETTE[i % len(PALETTE)]
            e = [int(x) for x in c["epochs"]]
            med = [view.clip(v) if v is not None else math.nan for v in c["median"]]
            ax.fill_between(e, [view.clip(v) if v is not None else math.nan for v in c["q25"]],
                            [view.clip(v) if v is not None else math.nan for v in c["q75"]],
                            color=colour, alpha=0.13, lw=0)
            n = c.get("n")
            ax.plot(e, med, color=colour, lw=1.4, label=f"{_short(name, 14)} (n={n})")
        ax.set_ylim(view.lo, view.hi)
        ax.set_title(f"by {param}", loc="left")
        ax.xaxis.set_major_locator(_integer_locator())
        ax.legend(loc="lower right", frameon=False, fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return fig


def value_by_choice(groups: Sequence[tuple[str, Sequence[tuple[str, Sequence[float]]]]],
                    maximize: bool = True, max_dots: int = 30) -> Figure | None:
    """One box per (param, choice) on a shared value axis that covers the good trials.

    Boxes are quartiles with 1.5 IQR whiskers from all of a choice's values; the values
    below the axis (above, minimizing) are counted in the row's label and marked with an
    arrowhead at the edge, so a choice that often fails shows it as a number instead of a
    stretched axis. A choice with at most ``max_dots`` trials also shows them as dots.
    """
    rows = [(p, c, vs) for p, choices in groups for c, vs in choices]
    if not rows:
        return None
    import numpy as np

    view = View.of([v for _, _, vs in rows for v in vs], maximize)
    height = 0.75 + 0.17 * len(rows) + 0.1 * len(groups)
    fig = _figure(WIDTH, height)
    ax = fig.add_axes((0.33, 0.42 / height, 0.64, 1 - 0.72 / height))
    rng = np.random.default_rng(0)
    ys, labels, seps, stats, colours, dots, out_y = [], [], [], [], [], [], []
    y = 0.0
    for gi, (param, choices) in enumerate(groups):
        if gi:
            y += 0.6
            seps.append(y - 0.8)
        for ci, (choice, vs) in enumerate(choices):
            arr = np.asarray(vs, dtype=float)
            q1, med, q3 = np.quantile(arr, [0.25, 0.5, 0.75])
            fence = 1.5 * (q3 - q1)
            stats.append((arr[arr >= q1 - fence].min(), q1, med, q3,
                          arr[arr <= q3 + fence].max()))
            colours.append(PALETTE[ci % len(PALETTE)])
            if len(arr) <= max_dots:
                inside = arr[(arr >= view.lo) & (arr <= view.hi)]
                dots += [(v, y + rng.uniform(-0.22, 0.22), colours[-1]) for v in inside]
            n_out = int(((arr < view.lo) | (arr > view.hi)).sum())
            if n_out:
                out_y.append(y)
            beyond = f", {n_out} {'below' if maximize else 'above'}" if n_out else ""
            ys.append(y)
            labels.append(f"{_short(param, 16)} = {_short(choice, 14)}  (n={len(arr)}{beyond})")
            y += 1
    # One call per kind of mark, not one per row: each call is an artist to lay out.
    lo_w, q1s, meds, q3s, hi_w = (np.array(c) for c in zip(*stats, strict=True))
    ax.hlines(ys, lo_w, hi_w, color="#666", lw=0.8)
    ax.barh(ys, q3s - q1s, left=q1s, height=0.6, color=colours, alpha=0.3,
            edgecolor=colours, lw=0.8)
    ax.vlines(meds, np.array(ys) - 0.3, np.array(ys) + 0.3, color="#000", lw=1.4)
    if dots:
        ax.scatter([d[0] for d in dots], [d[1] for d in dots], s=3,
                   c=[d[2] for d in dots], alpha=0.6, lw=0)
    if out_y:
        ax.scatter([view.lo if maximize else view.hi] * len(out_y), out_y,
                   marker="<" if maximize else ">", s=16, color="#b22", clip_on=False,
                   zorder=3, lw=0)
    for sep in seps:
        ax.axhline(sep, color="#ccc", lw=0.6)
    ax.set_yticks(ys, labels)
    ax.set_ylim(y - 0.4, -0.6)
    ax.set_xlim(view.lo, view.hi)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("objective value of complete trials")
    ax.set_title("Value by choice", loc="left")
    _side_note(ax, view.note([v for _, _, vs in rows for v in vs]))
    return fig


def slice_plot(panels: Sequence[tuple[str, Sequence[float], Sequence[float], bool]],
               maximize: bool = True, cols: int = 4, max_points: int = 150) -> Figure | None:
    """Slice: the value against each numeric param, one panel per param (trials as dots,
    darker = later trial, as Optuna's slice plot colours them)."""
    if not panels:
        return None
    rows_n = math.ceil(len(panels) / cols)
    fig = _figure(WIDTH, 1.9 * rows_n + 0.25)
    axes = fig.subplots(rows_n, cols, squeeze=False, sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.35 / (1.9 * rows_n + 0.25),
                        bottom=0.5 / (1.9 * rows_n + 0.25), wspace=0.08, hspace=0.6)
    view = View.of([v for _, _, ys, _ in panels for v in ys], maximize)
    for ax, (name, xs, ys, log) in zip(axes.flat, panels, strict=False):
        idx = _sample(range(len(ys)), ys, 30, maximize, max_points)
        px, py = [xs[i] for i in idx], [ys[i] for i in idx]
        inside = [(x, y, i) for x, y, i in zip(px, py, idx, strict=True)
                  if view.lo <= y <= view.hi]
        if inside:
            ax.scatter([x for x, _, _ in inside], [y for _, y, _ in inside], s=6,
                       c=[i for _, _, i in inside], cmap="Blues", vmin=-0.3 * len(ys),
                       vmax=len(ys), lw=0)
        _mark_outside(ax, px, py, view, "#c66")
        if log:
            _log_axis(ax, px)
        ax.set_xlabel(name)
        n_out = len(view.outside(ys))
        if n_out:
            ax.annotate(f"▼{n_out}", xy=(1, 0), xycoords="axes fraction", xytext=(-2, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=6,
                        color="#a33")
    axes[0][0].set_ylim(view.lo, view.hi)
    for r in range(rows_n):
        axes[r][0].set_ylabel("objective value")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Slice  (▼n: trials below the axis)" if view.outside(
        [v for _, _, ys, _ in panels for v in ys]) else "Slice", x=0.01, ha="left", fontsize=9)
    return fig


def parallel(axes_spec: Sequence[tuple[str, Sequence[Any] | None, bool]],
             lines: Sequence[tuple[Sequence[Any], float]], maximize: bool = True,
             ) -> Figure | None:
    """Parallel Coordinate: one line per complete trial through its params and its value.

    ``axes_spec`` are (name, choices, log): choices for a categorical axis (spread evenly),
    None for a numeric one (min to max, log where the param is). A param that was inactive
    for a trial sits on the axis's "n/a" slot below it. Colour: the value, light (worse)
    to dark blue (better), on the view's range; the best lines are drawn last.
    """
    if not lines or not axes_spec:
        return None
    from matplotlib import cm, colors
    from matplotlib.collections import LineCollection

    values = [v for _, v in lines]
    view = View.of(values, maximize)
    n_axes = len(axes_spec) + 1
    placers: list[Callable[[Any], float | None]] = []
    tick_text: list[list[tuple[float, str]]] = []
    for i, (_name, choices, log) in enumerate(axes_spec):
        if choices is not None:
            pos = {repr(c): 0.12 + 0.88 * j / max(len(choices) - 1, 1)
                   for j, c in enumerate(choices)}
            placers.append(functools.partial(_place_choice, pos))
            tick_text.append([(pos[repr(c)], _short(c, 12)) for c in choices])
        else:
            nums = [float(r[i]) for r, _ in lines if r[i] is not None]
            use_log = bool(log and nums and min(nums) > 0)
            ends = [math.log10(x) if use_log else x for x in (min(nums), max(nums))] \
                if nums else [0.0, 1.0]
            placers.append(functools.partial(_place_number, ends[0], ends[1] - ends[0] or 1.0,
                                             use_log))
            tick_text.append([(0.12, f"{min(nums):.3g}"), (1.0, f"{max(nums):.3g}")]
                             if nums else [])
    order = sorted(range(len(lines)), key=lambda k: values[k] if maximize else -values[k])
    keep = set(_sample(range(len(lines)), values, 60, maximize))
    segs, vals = [], []
    for k in order:
        if k not in keep:
            continue
        params, value = lines[k]
        pts = []
        for i, v in enumerate(params):
            y = placers[i](v) if v is not None else None
            pts.append((float(i), 0.0 if y is None else y))
        pts.append((float(n_axes - 1), 0.12 + 0.88 * (view.clip(value) - view.lo)
                    / (view.hi - view.lo)))
        segs.append(pts)
        vals.append(view.clip(value))
    fig = _figure(WIDTH, 3.2)
    ax = fig.add_axes((0.04, 0.14, 0.84, 0.78))
    norm = colors.Normalize(view.lo, view.hi)
    cmap = colors.LinearSegmentedColormap.from_list(
        "hp", [cm.Blues(0.25), cm.Blues(0.6), cm.Blues(1.0)])
    if not maximize:
        cmap = cmap.reversed()
    ax.add_collection(LineCollection(segs, array=vals, cmap=cmap, norm=norm, linewidths=0.8,
                                     alpha=0.75))
    ax.set_xlim(-0.1, n_axes - 0.6)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_yticks([])
    names = [_short(n, 16) for n, _, _ in axes_spec] + ["objective"]
    ax.set_xticks(range(n_axes), names)
    for i in range(n_axes):
        ax.axvline(i, color="#333", lw=0.8)
        ax.text(i + 0.03, 0.0, "n/a", fontsize=6, color="#999", va="center") if i < n_axes - 1 \
            else None
        for y, t in (tick_text[i] if i < len(tick_text) else []):
            ax.text(i + 0.03, y, t, fontsize=6.5, va="center",
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.7})
    for y, t in ((0.12, f"{view.lo:.4g}"), (1.0, f"{view.hi:.4g}")):
        ax.text(n_axes - 1 + 0.03, y, t, fontsize=6.5, va="center")
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03,
                       pad=0.06)
    bar.set_label("objective value")
    bar.ax.tick_params(labelsize=6)
    ax.set_title("Parallel Coordinate", loc="left")
    _side_note(ax, view.note(values))
    return fig


def _place_choice(pos: Mapping[str, float], v: Any) -> float | None:
    return pos.get(repr(v))


def _place_number(lo: float, span: float, log: bool, v: Any) -> float:
    x = math.log10(float(v)) if log else float(v)
    return 0.12 + 0.88 * (x - lo) / span


def best_model(per_class: Sequence[tuple[str, float]],
               confusion: Sequence[Sequence[float]] | None) -> Figure | None:
    """Per-class test accuracy (bars) and the confusion matrix (rows: true class)."""
    if not per_class and not confusion:
        return None
    fig = _figure(WIDTH, 3.2)
    if per_class:
        ax = fig.add_axes((0.12, 0.14, 0.3, 0.76))
        names = [_short(k, 14) for k, _ in per_class][::-1]
        vals = [v for _, v in per_class][::-1]
        # Dots, not bars: the axis starts where the classes are, and a bar's length from
        # there would exaggerate the differences.
        lo = min(vals)
        ax.scatter(vals, range(len(vals)), color=COMPLETE, s=18, zorder=2)
        for i, v in enumerate(vals):
            ax.annotate(f"{v:.3f}", (v, i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=6)
        ax.set_yticks(range(len(vals)), names)
        ax.set_xlim(lo - 0.1 * (1 - lo + 1e-3), 1 + 0.12 * (1 - lo + 1e-3))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("test accuracy")
        ax.set_title("Per-class accuracy", loc="left")
    if confusion:
        import numpy as np

        m = np.asarray(confusion, dtype=float)
        ax = fig.add_axes((0.55, 0.14, 0.4, 0.76))
        ax.imshow(np.sqrt(m), cmap="Blues")
        labels = [_short(k, 6) for k, _ in per_class] if len(per_class) == len(m) else \
            [str(i) for i in range(len(m))]
        ax.set_xticks(range(len(m)), labels, rotation=90 if max(map(len, labels)) > 2 else 0)
        ax.set_yticks(range(len(m)), labels)
        ax.grid(False)
        if len(m) <= 12:
            peak = m.max() or 1
            for (i, j), v in np.ndenumerate(m):
                if v:
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=5.5,
                            color="white" if math.sqrt(v / peak) > 0.6 else "#222")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix (test set)", loc="left")
    return fig
