"""The report's figures by param: value by choice, Optuna's slice and parallel coordinate.

Each function returns a matplotlib Figure (or None) for :func:`.svg.draw`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpsearch.report.figures.svg import (
    PALETTE,
    WIDTH,
    View,
    few_ticks,
    log_axis,
    mark_outside,
    new_figure,
    short,
    side_note,
    thin,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    fig = new_figure(WIDTH, height)
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
            labels.append(f"{short(param, 16)} = {short(choice, 14)}  (n={len(arr)}{beyond})")
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
    # Each trial once: a trial is in one group of every param it has, so the values of all
    # rows together would count it once per param.
    by_param: dict[str, list[float]] = {}
    for param, _, vs in rows:
        by_param.setdefault(param, []).extend(vs)
    side_note(ax, view.note(max(by_param.values(), key=len, default=[])))
    return fig


def slice_plot(panels: Sequence[tuple[str, Sequence[float], Sequence[float], bool]],
               maximize: bool = True, cols: int = 4, max_points: int = 150) -> Figure | None:
    """Slice: the value against each numeric param, one panel per param (trials as dots,
    darker = later trial, as Optuna's slice plot colours them)."""
    if not panels:
        return None
    rows_n = math.ceil(len(panels) / cols)
    fig = new_figure(WIDTH, 1.9 * rows_n + 0.25)
    axes = fig.subplots(rows_n, cols, squeeze=False, sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.35 / (1.9 * rows_n + 0.25),
                        bottom=0.5 / (1.9 * rows_n + 0.25), wspace=0.2, hspace=0.6)
    view = View.of([v for _, _, ys, _ in panels for v in ys], maximize)
    for ax, (name, xs, ys, log) in zip(axes.flat, panels, strict=False):
        idx = thin(range(len(ys)), ys, 30, maximize, max_points)
        px, py = [xs[i] for i in idx], [ys[i] for i in idx]
        inside = [(x, y, i) for x, y, i in zip(px, py, idx, strict=True)
                  if view.lo <= y <= view.hi]
        if inside:
            ax.scatter([x for x, _, _ in inside], [y for _, y, _ in inside], s=6,
                       c=[i for _, _, i in inside], cmap="Blues", vmin=-0.3 * len(ys),
                       vmax=len(ys), lw=0)
        mark_outside(ax, px, py, view, "#c66")
        if log:
            log_axis(ax, px)
        ax.set_xlabel(name)
        n_out = len(view.outside(ys))
        if n_out:
            ax.annotate(f"▼{n_out}", xy=(1, 0), xycoords="axes fraction", xytext=(-2, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=6,
                        color="#a33")
    axes[0][0].set_ylim(view.lo, view.hi)
    for ax in axes.flat:
        few_ticks(ax)
        if ax.get_xscale() != "log":
            few_ticks(ax, axis="x")
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
            tick_text.append([(pos[repr(c)], short(c, 12)) for c in choices])
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
    keep = set(thin(range(len(lines)), values, 60, maximize))
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
    fig = new_figure(WIDTH, 3.2)
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
    names = [short(n, 16) for n, _, _ in axes_spec] + ["objective"]
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
    side_note(ax, view.note(values))
    return fig


def _place_choice(pos: Mapping[str, float], v: Any) -> float | None:
    return pos.get(repr(v))


def _place_number(lo: float, span: float, log: bool, v: Any) -> float:
    x = math.log10(float(v)) if log else float(v)
    return 0.12 + 0.88 * (x - lo) / span
