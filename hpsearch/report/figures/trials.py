"""The report's figures of trials over time and of the best model: Optuna's hyperparameter
importances, optimization history and intermediate values, the best trials' learning
curves, learning curves by choice, per-class accuracy and the confusion matrix.

Each function returns a matplotlib Figure (or None: nothing to show) for
:func:`.svg.draw`, which says why the figures are static and how they are
made readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpsearch.report.figures.svg import (
    BEST,
    COMPLETE,
    PALETTE,
    PRUNED,
    WIDTH,
    View,
    few_ticks,
    integer_locator,
    mark_outside,
    new_figure,
    short,
    side_note,
    thin,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def importance(rows: Sequence[Mapping[str, Any]], evaluator: str) -> Figure | None:
    """Hyperparameter Importances: one bar per param, largest on top, 95% bootstrap CI."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return None
    height = 0.8 + 0.19 * len(rows)
    fig = new_figure(WIDTH, height)
    ax = fig.add_axes((0.22, 0.45 / height, 0.74, 1 - 0.75 / height))
    ys = list(range(len(rows)))[::-1]
    vals = [r["value"] for r in rows]
    lo = [max(0.0, v - r["ci_low"]) if r.get("ci_low") is not None else 0.0
          for v, r in zip(vals, rows, strict=True)]
    hi = [max(0.0, r["ci_high"] - v) if r.get("ci_high") is not None else 0.0
          for v, r in zip(vals, rows, strict=True)]
    has_ci = any(lo) or any(hi)
    # Within the noise floor (the share shuffled objectives give): pale bars.
    colours = [PRUNED if r.get("above_noise") is False else COMPLETE for r in rows]
    ax.barh(ys, vals, color=colours, height=0.65,
            xerr=[lo, hi] if has_ci else None, error_kw={"lw": 0.8, "capsize": 2})
    floor = [r.get("noise") for r in rows]
    if any(f is not None for f in floor):
        ax.scatter([f for f in floor if f is not None],
                   [y for y, f in zip(ys, floor, strict=True) if f is not None],
                   marker="|", s=60, color="#444444", zorder=3, label="noise floor")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_yticks(ys, [short(r["param"], 28) for r in rows])
    ax.set_xlabel(f"importance ({evaluator}; sums to 1)" + ("; bars: 95% CI" if has_ci else ""))
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, max([v + h for v, h in zip(vals, hi, strict=True)]
                       + [f for f in floor if f is not None]) * 1.08 or 1)
    ax.set_title("Hyperparameter Importances", loc="left")
    return fig


def history(rows: Sequence[Mapping[str, Any]], maximize: bool = True) -> Figure | None:
    """Optimization History: each trial's value, the best value so far as a step line."""
    if not rows:
        return None
    fig = new_figure(WIDTH, 2.8)
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
        mark_outside(ax, [r["number"] for r in group], [r["value"] for r in group], view,
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
    side_note(ax, view.note([r["value"] for r in rows]))
    return fig


def intermediate(rows: Sequence[Mapping[str, Any]], maximize: bool = True) -> Figure | None:
    """Intermediate Values: each trial's validation accuracy per epoch (pruned: grey)."""
    from matplotlib.collections import LineCollection

    rows = [r for r in rows if len(r.get("intermediate") or {}) >= 1]
    if not rows:
        return None
    values = [r["value"] for r in rows]
    keep = [rows[i] for i in thin(range(len(rows)), values, 40, maximize)]
    view = View.of([float(v) for r in keep for v in r["intermediate"].values()], maximize)
    fig = new_figure(WIDTH, 2.8)
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
    ax.xaxis.set_major_locator(integer_locator())
    ax.legend(loc="lower right", frameon=False)
    low = [min(float(v) for v in r["intermediate"].values()) for r in rows]
    n_low = len(view.outside(low))
    if n_low:
        side_note(ax, f"{n_low} trials have epochs below {view.lo:.3g}, drawn on the edge")
    return fig


def trial_curves(rows: Sequence[Mapping[str, Any]]) -> Figure | None:
    """The best trials' learning curves: train and validation loss, validation accuracy."""
    rows = [r for r in rows if isinstance(r.get("curve"), Mapping)
            and (r["curve"].get("val_acc") or r["curve"].get("train_loss"))]
    if not rows:
        return None
    fig = new_figure(WIDTH, 2.6)
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
        ax.xaxis.set_major_locator(integer_locator())
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
    fig = new_figure(WIDTH, 2.3 * rows_n)
    # One value axis for all panels: the same metric, so the panels compare by eye (and
    # hidden inner tick labels are cheaper to draw).
    axes = fig.subplots(rows_n, cols, squeeze=False, sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.3 / (2.3 * rows_n),
                        bottom=0.5 / (2.3 * rows_n), wspace=0.15, hspace=0.55)
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
            ax.plot(e, med, color=colour, lw=1.4, label=f"{short(name, 14)} (n={n})")
        ax.set_ylim(view.lo, view.hi)
        ax.set_title(f"by {param}", loc="left")
        ax.xaxis.set_major_locator(integer_locator(4))
        few_ticks(ax)
        ax.legend(loc="lower right", frameon=False, fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return fig


def best_model(per_class: Sequence[tuple[str, float]],
               confusion: Sequence[Sequence[float]] | None) -> Figure | None:
    """Per-class test accuracy (bars) and the confusion matrix (rows: true class)."""
    if not per_class and not confusion:
        return None
    fig = new_figure(WIDTH, 3.2)
    if per_class:
        ax = fig.add_axes((0.12, 0.14, 0.3, 0.76))
        names = [short(k, 14) for k, _ in per_class][::-1]
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
        labels = [short(k, 6) for k, _ in per_class] if len(per_class) == len(m) else \
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
