"""A question's decision in words: the verdict, its caveat, what would settle it, and
the effect over training (what :func:`hpsearch.analysis.questions.answer_questions` fills
in once Holm's procedure has given each question its level).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from hpsearch.analysis import stats
from hpsearch.analysis.answers import Answer
from hpsearch.analysis.contrasts import (
    ContrastSet,
    Pair,
    clip,
    n_to_settle,
    widest,
)
from hpsearch.analysis.effects import LevelEffects
from hpsearch.analysis.table import FINAL, TrialTable
from hpsearch.schema import DIFFERENCE, EQUIVALENT

POWER = 0.8          # "what it would take" plans for this power


OBSERVATIONAL = ("The trials were chosen by an adaptive sampler, which moves params together "
                 "towards good regions; the effect is adjusted for the other params, but its "
                 "words say \"associated\": run `hpsearch verify STORAGE` for the causal "
                 "answer (paired re-runs that differ only in this param).")


SHARED = ("Adjusted over all trials; the study's randomized trials (drawn at random, "
          "independently of the results) alone settle it the same way, so it is an effect of "
          "this param at this budget. `hpsearch verify STORAGE` confirms it on the test "
          "split.")


RANDOMIZED = ("The trials' params were drawn at random, independently of each other, so the "
              "adjusted difference is an effect of this param at this budget; `hpsearch "
              "verify STORAGE` confirms it on the test split with paired re-runs.")


# Every verdict is the effect at the end of training (see hpsearch.analysis.effects).
FIDELITY = "end of training"


def decide(a: Answer, cs: ContrastSet, p_holm: float, level: float, le: LevelEffects | None,
            table: TrialTable, min_effect: float, margin: float,
            confirmed: dict[str, str], step: str) -> None:
    """Holm's decision in three states, intervals at its level, and the words."""
    cs.bound = bound(table)
    a.settled = cs.decide(level, margin)
    a.p_holm, a.significant = p_holm, a.settled == DIFFERENCE
    a.ci_level = 1 - cs.pair_level
    h = shown(a, cs)
    cs.extra["shown"] = h
    a.headline = {"a": h.a, "b": h.b, "diff": math.nan if h.lost else h.est,
                  "ci_low": h.ci_low, "ci_high": h.ci_high,
                  "p_value": math.nan if h.lost or cs.untestable else pair_p(cs, h),
                  "selected": selected(a, cs, h)}
    if cs.method == "bonferroni":
        for e in a.effects:  # ci_low held the standard error until the level was known
            if math.isfinite(e.ci_low) and not cs.untestable:
                e.ci_low, e.ci_high = clip(*stats.t_interval(e.diff, e.ci_low, cs.df,
                                                             cs.pair_level), cs.bound)
            elif cs.untestable:  # an estimate, but no interval or test to trust
                e.ci_low, e.ci_high, e.p_value = (math.nan,) * 3
            else:
                e.diff, e.ci_low, e.ci_high, e.p_value = (math.nan,) * 4
    n = f"n={sum(c.n for c in a.choices) or cs.extra.get('n', '?')}"
    where = f"{a.fidelity}; {n}"
    m = fmt(a.unit, margin)
    if cs.all_lost:
        a.headline_winner = None
        what = f"values of {a.param}" if not a.choices else f"its choices ({_ends(a)})"
        a.verdict = (f"open: too few trials reached the end of training to compare {what} "
                     f"({where}): no estimate")
        a.needed = needed(a, cs, le.n if le else int(cs.extra.get("n_fit", 0) or 0),
                          min_effect, margin)
        a.caveat = caveat(a, le, False, step, cs)
        return
    win, size = gap(a, h, table)
    a.headline_winner = win
    by_share = a.word != "matters" and a.significant and confirmed.get(a.question) == win
    if by_share:
        a.word = "matters"
    lose = h.b if win == h.a else h.a
    op = ">" if table.sign > 0 else "<"
    pair = f"{named(a.param, win)} {op} {named(a.param, lose)} by {size}"
    label = a.headline["selected"]
    if a.settled == DIFFERENCE:
        a.verdict = f"{a.word}: {pair} ({where}; Holm p={p_holm:.2g})"
        if a.best not in (win, lose) and a.kind != "numeric":
            a.verdict += (f"; highest estimate: {named(a.param, a.best)}, not separated "
                          f"from {named(a.param, win)}")
    elif a.settled == EQUIVALENT:
        w = widest(cs.pairs)
        span = f"[{fmt(a.unit, w.ci_low, True)}, {fmt(a.unit, w.ci_high, True)}]"
        if len(cs.pairs) == 1:
            a.verdict = (f"equivalent: no difference larger than {m} {a.unit}: "
                         f"{named(a.param, w.a)} - {named(a.param, w.b)} {span} ({where})")
        else:
            what = "point of its range" if a.kind == "numeric" else "choice"
            a.verdict = (f"equivalent: no {what} differs from another by more than {m} "
                         f"{a.unit} (widest: {named(a.param, w.a)} - "
                         f"{named(a.param, w.b)} {span}; {where})")
    elif cs.untestable:
        more = math.ceil(cs.min_df - cs.df)
        est = (f"{named(a.param, win)} {op} {named(a.param, lose)} by "
               f"{fmt(a.unit, abs(h.est))} {a.unit}")
        a.verdict = (f"open: too few trials to test it ({where}; the fit of the trials "
                     f"that carry {a.param} to the end of training keeps {cs.df:.0f} residual "
                     f"degrees of freedom, a test needs {cs.min_df:.0f}; "
                     f"{label or 'estimate'}: {est}, with no interval it can vouch for)")
        a.needed = (f"about {more} more trials with {a.param} that run to the end of training "
                    f"(each adds a degree of freedom to that fit), or hpsearch verify's "
                    f"paired re-runs")
    else:
        a.needed = needed(a, cs, le.n if le else int(cs.extra.get("n_fit", 0) or 0),
                           min_effect, margin)
        eq = f" nor equivalence within +-{m} {a.unit}" if math.isfinite(margin) else ""
        closest = f"{label}: {pair}" if label else f"closest: {pair}"
        a.verdict = (f"open: no difference detected{eq} ({where}; {closest}, "
                     f"Holm p={p_holm:.2g})")
        lost = [p for p in cs.pairs if p.lost]
        if lost:
            a.verdict += (f"; too few trials reached the end of training for {len(lost)} of "
                          f"{len(cs.pairs)} comparisons ({_ends(a)})")
    a.caveat = caveat(a, le, by_share, step, cs)


def bound(table: TrialTable) -> float:
    """How far apart two values of the objective can be: 100 pts for accuracies."""
    return 100.0 if table.unit == "pts" else math.inf


def shown(a: Answer, cs: ContrastSet) -> Pair:
    """The pair the verdict names: for a difference among choices, the most decisive pair
    that involves the best estimate when one does (the headline's winner is then the one
    the estimates support), else :attr:`ContrastSet.shown`."""
    h = cs.shown
    if a.kind == "numeric" or a.best is None or a.settled != DIFFERENCE:
        return h
    clear = [p for p in cs.pairs if a.best in (p.a, p.b) and (p.ci_low > 0 or p.ci_high < 0)]
    return max(clear, key=lambda p: abs(p.est) / p.se) if clear else h


def selected(a: Answer, cs: ContrastSet, h: Pair) -> str:
    """What the shown pair is when it was picked as a maximum (a selected pair's estimate is
    biased away from 0: under no effect the largest of many pairs is rarely near 0)."""
    if len(cs.pairs) == 1 or h.lost:
        return ""
    if a.kind == "numeric":
        return (f"best vs worst point of the fitted curve (the largest of its "
                f"{len(cs.pairs)} pairs)")
    return f"the largest of {len(cs.pairs)} pairs"


def _ends(a: Answer) -> str:
    """Survivors at the end of training per choice, as words ("after 2, before 9")."""
    have = [f"{named(a.param, c.value)} {c.n_end}" for c in a.choices]
    return "at the end: " + ", ".join(have) if have else f"values of {a.param}"


def pair_p(cs: ContrastSet, p: Pair) -> float:
    if cs.method == "scheffe":
        t = abs(p.est) / p.se if p.se > 0 else math.inf
        return float(sps.f.sf(t * t / cs.k, cs.k, cs.df))
    return stats.t_p_value(p.est, p.se, cs.df)


def fmt(unit: str, x: float, sign: bool = False) -> str:
    if not math.isfinite(x):
        return "-"
    if unit == "pts":
        return f"{x:+.2f}" if sign else f"{x:.2f}"
    return f"{x:+.3g}" if sign else f"{x:.3g}"


def gap(a: Answer, h: Pair, table: TrialTable) -> tuple[str, str]:
    """The better of the headline pair and the gap in words: "0.45 pts [0.20, 0.70]"."""
    win = h.a if table.sign * h.est > 0 else h.b
    s = table.sign if win == h.a else -table.sign
    lo, hi = sorted((s * h.ci_low, s * h.ci_high))
    return win, (f"{fmt(a.unit, s * h.est)} {a.unit} [{fmt(a.unit, lo)}, "
                 f"{fmt(a.unit, hi)}]")


def by_epoch(cs: ContrastSet, series: list[tuple[int, np.ndarray, np.ndarray]], step: str,
             level: float = 0.05) -> list[dict[str, object]]:
    """The headline contrast at every analysed epoch, with a pointwise 95% interval (the
    effect over training: read "hurts early, pays later" off it; the verdict is the last)."""
    h = cs.extra.get("shown", cs.shown)
    if h.w is None or h.lost:
        return []
    out: list[dict[str, object]] = []
    for lvl, theta, cov in series:
        est = float(h.w @ theta)
        se = float(np.sqrt(max(float(h.w @ cov @ h.w), 0.0)))
        lo, hi = clip(*stats.t_interval(est, se, cs.df, level), cs.bound)
        if cs.untestable and lvl == FINAL:  # the end's fit is too thin to draw a band from
            lo = hi = math.nan
        out.append({"epoch": None if lvl == FINAL else lvl,
                    "label": "end" if lvl == FINAL else f"{step} {lvl}",
                    "a": h.a, "b": h.b, "diff": est, "ci_low": lo, "ci_high": hi})
    return out


def named(param: str, choice: str | None) -> str:
    """A choice as words: ``before`` reads alone, ``0`` needs its param (``dropout=0``)."""
    text = str(choice)
    if text.startswith(">"):
        return f"{param}{text.replace(' ', '')}"
    if text[:1].isdigit() or text[:1] in "[-.":
        return f"{param}={text}"
    return text


def needed(a: Answer, cs: ContrastSet, n_now: int, min_effect: float, margin: float) -> str:
    """How many finished trials would settle the question with POWER at this spread, planned
    for the outcome the estimates point to (:func:`contrasts.n_to_settle`): equivalence when
    the widest pair's estimate lies within half the margin, else a difference of the closest
    pair's estimate (or ``min_effect`` when that is smaller)."""
    h, w = cs.shown, widest(cs.pairs)
    level = cs.pair_level
    if not math.isfinite(h.se):
        return (f"more trials with {named(a.param, h.a)} and {named(a.param, h.b)} that run "
                "to the end of training: too few of one of them got there to follow its "
                "effect (a pruner that stops arms together, or verify, settles it)")
    n_eq, how = n_to_settle(n_now, w.est, w.se, level, margin, min_effect, POWER)
    m = fmt(a.unit, margin)
    if how == EQUIVALENT:
        if n_eq <= n_now:
            return (f"{n_now} trials could show equivalence within +-{m} {a.unit} with "
                    f"{POWER:.0%} power if there were none: the difference may be near the "
                    "margin")
        return (f"about {n_eq} finished trials (now {n_now}) would show equivalence within "
                f"+-{m} {a.unit} ({POWER:.0%} power, this spread, if the difference is "
                f"{fmt(a.unit, w.est, True)}); hpsearch verify needs far fewer runs")
    n_diff, _ = n_to_settle(n_now, h.est, h.se, level, math.nan, min_effect, POWER)
    if not n_diff:
        return ""
    size = max(min_effect, abs(h.est))
    what = (f"a {fmt(a.unit, size)}-{a.unit.rstrip('s')} difference between "
            f"{named(a.param, h.a)} and {named(a.param, h.b)}")
    if n_diff <= n_now:
        return (f"{n_now} trials could detect {what} with {POWER:.0%} power: a real "
                f"difference is likely smaller than that")
    return (f"about {n_diff} finished trials (now {n_now}) would detect {what} "
            f"({POWER:.0%} power, this spread); hpsearch verify needs far fewer runs")


def caveat(a: Answer, le: LevelEffects | None, by_share: bool, step: str,
            cs: ContrastSet) -> str:
    if "design" in cs.extra:
        parts = [str(cs.extra["design"])]
    elif by_share:
        parts = [SHARED]
    else:
        parts = [RANDOMIZED if a.word == "matters" else OBSERVATIONAL]
    first = le.first_level if le is not None else int(cs.extra.get("first_level", FINAL) or 0)
    if first != FINAL:
        n_end = sum(c.n_end for c in a.choices)
        ran = f"the {n_end} trials that ran to the end" if n_end else "the trials that kept " \
            "training"
        parts.append(f"The answer is the end-of-training effect: every trial counts at {step} "
                     f"{first} and {ran} carry it on (earlier values only as covariates).")
        if le is not None and le.change_p < 0.05:
            parts.append(f"Its effect changed after {step} {first} (p={le.change_p:.2g}): "
                         "see the effect over training.")
    if a.settled == EQUIVALENT:
        parts.append(f"Equivalent means every interval at this question's Holm level lies "
                     f"inside +-{fmt(a.unit, a.margin)} {a.unit} (the margin).")
    parts += le.notes if le is not None else [str(x) for x in cs.extra.get("notes", [])]
    return " ".join(parts)
