"""The report's figures of answers: each question's effect over training, the adjusted
curve of each numeric question, and interaction plots (the effect of A at each level of B).

Each function takes the JSON document's lists (``analysis.answers``,
``analysis.interactions``) and returns a matplotlib Figure (or None: nothing to show) for
:func:`.svg.draw`. Intervals are drawn as bands or error bars, and the margin of
"equivalent" as a grey band around 0, so a reader sees at once whether an interval lies
inside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpsearch.report.figures.svg import PALETTE, WIDTH, few_ticks, log_axis, new_figure, short
from hpsearch.schema import DIFFERENCE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PANEL_H = 1.9


def _grid(n: int, cols: int = 3, title_lines: int = 1) -> tuple[Figure, list[Axes]]:
    rows = math.ceil(n / cols)
    # Room above each panel for its title (two lines: the question, then the contrast),
    # beside it for the next panel's tick labels.
    top = 0.2 + 0.15 * title_lines
    fig = new_figure(WIDTH, PANEL_H * rows + top)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - top / (PANEL_H * rows + top),
                        bottom=0.55 / (PANEL_H * rows + top), wspace=0.45,
                        hspace=0.75 + 0.25 * (title_lines - 1))
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _margin(ax: Axes, margin: Any) -> None:
    ax.axhline(0, color="#555", lw=0.8)
    if isinstance(margin, int | float) and math.isfinite(margin):
        ax.axhspan(-margin, margin, color="#999", alpha=0.15, lw=0)


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan


def effect_over_training(answers: Sequence[Mapping[str, Any]]) -> Figure | None:
    """One panel per answered question: its headline contrast (oriented as the verdict
    reads, ``report.format.oriented``) at every analysed epoch, with a 95% band and an
    error bar at each epoch; the last point (end of training) is the verdict's and is
    drawn filled. The title names the question, then the contrast."""
    shown = [a for a in answers if a.get("status") == "answered" and a.get("effect_by_epoch")]
    if not shown:
        return None
    fig, axes = _grid(len(shown), title_lines=2)
    for ax, a in zip(axes, shown, strict=True):
        series = a["effect_by_epoch"]
        xs = list(range(len(series)))
        est = [_num(r.get("diff")) for r in series]
        lo = [_num(r.get("ci_low")) for r in series]
        hi = [_num(r.get("ci_high")) for r in series]
        ax.fill_between(xs, lo, hi, color=PALETTE[0], alpha=0.18, lw=0)
        ax.errorbar(xs, est, yerr=[[e - low for e, low in zip(est, lo, strict=True)],
                                   [high - e for e, high in zip(est, hi, strict=True)]],
                    color=PALETTE[0], lw=1.3, marker="o", ms=3, mfc="white", capsize=2,
                    elinewidth=0.8)
        ax.plot(xs[-1:], est[-1:], "o", color=PALETTE[0], ms=4)  # the verdict's point
        _margin(ax, a.get("margin"))
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_xticks(xs, [str(r.get("label", "")).replace("epoch ", "").replace("step ", "")
                           for r in series])
        ax.set_xlabel("epoch", fontsize=7, labelpad=1)
        last = series[-1]
        ax.set_title(f"{short(a.get('question'), 30)}\n"
                     f"{short(last.get('a'), 14)} − {short(last.get('b'), 14)} "
                     f"({a.get('unit') or 'pts'})", loc="left", fontsize=8)
        few_ticks(ax)
    return fig


def adjusted_curves(answers: Sequence[Mapping[str, Any]]) -> Figure | None:
    """One panel per numeric question: the adjusted effect over its range, relative to its
    best point, with a pointwise 95% band (log axis for log-scaled params)."""
    shown = [a for a in answers if isinstance(a.get("curve"), Mapping)
             and a["curve"].get("x")]
    if not shown:
        return None
    fig, axes = _grid(len(shown))
    for ax, a in zip(axes, shown, strict=True):
        c = a["curve"]
        xs = [_num(x) for x in c["x"]]
        ax.fill_between(xs, [_num(v) for v in c["ci_low"]], [_num(v) for v in c["ci_high"]],
                        color=PALETTE[2], alpha=0.18, lw=0)
        ax.plot(xs, [_num(v) for v in c["effect"]], color=PALETTE[2], lw=1.4)
        _margin(ax, a.get("margin"))
        if xs and min(xs) > 0 and max(xs) / min(xs) > 50:
            log_axis(ax, xs)
        ax.set_title(short(str(a.get("param")), 30), loc="left")
        few_ticks(ax)
    return fig


def interaction_plots(interactions: Sequence[Mapping[str, Any]]) -> Figure | None:
    """One panel per interaction: the effect of A at each level of B, with 95% intervals."""
    shown = [x for x in interactions if x.get("status") == "answered" and x.get("levels")]
    if not shown:
        return None
    fig, axes = _grid(len(shown), title_lines=2)
    for ax, x in zip(axes, shown, strict=True):
        levels = x["levels"]
        pos = list(range(len(levels)))
        est = [_num(lv.get("effect")) for lv in levels]
        lo = [e - _num(lv.get("ci_low")) for e, lv in zip(est, levels, strict=True)]
        hi = [_num(lv.get("ci_high")) - e for e, lv in zip(est, levels, strict=True)]
        colour = PALETTE[3] if x.get("settled") == DIFFERENCE else PALETTE[0]
        ax.errorbar(pos, est, yerr=[lo, hi], fmt="o", color=colour, ms=3, capsize=2, lw=1)
        _margin(ax, x.get("margin"))
        ax.set_xticks(pos, [short(str(lv.get("level")), 10) for lv in levels], rotation=30,
                        ha="right")
        effect_of = (x.get("contrast") or {}).get("effect_of", "")
        ax.set_title(f"{short(x.get('question'), 32)}\n{short(effect_of, 32)}", loc="left",
                     fontsize=8)
        few_ticks(ax)
    return fig
