"""The design's questions, answered: contrasts, one Holm family, verdicts in words.

Each question compares choices of one param (``bn_placement``: before vs after; the
binary ones off vs on; the rest every pair of choices). A question's p-value is its
smallest pair's p times the number of pairs (Bonferroni inside the question), and Holm's
procedure runs across the questions. Every interval shown is at the level Holm decided
that question at, divided by its number of pairs (:func:`stats.holm_levels`), so an
interval excludes 0 exactly when the verdict says the question is settled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy import stats as sps

from hpsearch.analysis import stats
from hpsearch.analysis.answers import Answer, ChoiceSummary, Effect
from hpsearch.analysis.design import Factor, build_design, label, question_factor
from hpsearch.analysis.effects import LevelEffects, estimate_effects
from hpsearch.analysis.table import FINAL, TrialTable, finished_table
from hpsearch.space import QUESTIONS, Question

# Questions that compare only some of a param's choices: "before or after?" says nothing
# about trials without batch norm (the "batch_norm" question compares those).
QUESTION_VALUES: dict[str, tuple[str, ...]] = {"bn_placement": ("before", "after")}
TOP_QUANTILE = 0.9
POWER = 0.8          # "what it would take" plans for this power
MIN_RANDOMIZED = 20  # randomized trials needed before they are analysed on their own
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


@dataclass
class _Choice:
    name: str
    weights: np.ndarray   # over LevelEffects.choices
    labels: tuple[str, ...]


def answer_questions(trials: Sequence[FrozenTrial], *,
                     questions: Sequence[Question] = QUESTIONS,
                     direction: StudyDirection | str = "maximize", alpha: float = 0.05,
                     min_per_choice: int = 5, min_effect: float = 0.5,
                     randomized: bool | None = None) -> list[Answer]:
    """Answer each question from every finished trial (objective 0) that sampled its param.

    ``randomized``: the trials' params were drawn independently at random (random or
    QMC sampler), which licenses "matters"; None reads each trial's ``randomized`` user
    attr (hpsearch's randomized share) and needs all of them. ``min_effect`` (in the
    answers' unit) is the difference "what it would take" plans for.
    """
    direction = _direction(direction)
    table = finished_table(trials, direction)
    answers = [_empty(q, table) for q in questions]
    factors = _factors(questions, table, min_per_choice)
    for a in answers:
        counts = factors[a.param].counts() if a.param in factors else {}
        counts = {c: n for c, n in counts.items() if n}
        if len(counts) == 1:
            a.verdict = f"not sampled: only {a.param} = {next(iter(counts))} occurs"
        elif counts and sum(n >= min_per_choice for n in counts.values()) < 2:
            a.status = "too_few_trials"
            have = ", ".join(f"{c} {n}" for c, n in counts.items())
            a.verdict = (f"too few trials to tell (need >= {min_per_choice} per choice in at "
                         f"least 2 choices; have {have})")
    factors = {p: f for p, f in factors.items()
               if sum(n >= min_per_choice for n in f.counts().values()) >= 2}
    if not factors:
        return answers
    design = build_design(table.trials, list(factors.values()), min_per_choice)
    effects = estimate_effects(table, design)
    confirmed: dict[str, str] = {}
    if randomized is None:
        flags = [t.user_attrs.get("randomized") is True for t in table.trials]
        randomized = all(flags)
        if not randomized and sum(flags) >= MIN_RANDOMIZED:
            # The study's randomized share is an experiment of its own: what it settles by
            # itself (its own Holm family) may be called an effect.
            sub = [t for t, f in zip(table.trials, flags, strict=True) if f]
            confirmed = {a.question: str(a.headline_winner) for a in answer_questions(
                sub, questions=questions, direction=direction, alpha=alpha,
                min_per_choice=min_per_choice, randomized=True) if a.significant}
    for a, q in zip(answers, questions, strict=True):
        if q.param in effects:
            _contrast(a, q, effects[q.param], table, min_per_choice,
                      "matters" if randomized else "associated")
        elif q.param in factors:
            a.status = "too_few_trials"
            a.verdict = (f"too few trials to tell ({len(table)} finished trials cannot hold "
                         f"the choices of {q.param} and the other params fixed at once)")
    decided = [a for a in answers if a.status == "answered"]
    p_holm = stats.holm([a.p_value for a in decided])
    levels = stats.holm_levels([a.p_value for a in decided], alpha)
    for a, p, level in zip(decided, p_holm, levels, strict=True):
        _decide(a, float(p), float(level), alpha, effects[a.param], table, min_effect,
                confirmed)
    return answers


def _direction(direction: StudyDirection | str) -> StudyDirection:
    if isinstance(direction, StudyDirection):
        return direction
    name = str(direction).lower()
    if name not in ("maximize", "minimize"):
        from hpsearch.errors import ConfigError

        raise ConfigError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return StudyDirection.MAXIMIZE if name == "maximize" else StudyDirection.MINIMIZE


def _empty(q: Question, table: TrialTable) -> Answer:
    return Answer(question=q.id, param=q.param, title=q.title, seed_claim=q.seed_claim,
                  status="not_sampled", unit=table.unit,
                  verdict=f"not sampled: no finished trial has {q.param} (fixed or absent)")


def _factors(questions: Sequence[Question], table: TrialTable, min_per_choice: int,
             ) -> dict[str, Factor]:
    out: dict[str, Factor] = {}
    for q in questions:
        if q.param in out:
            continue
        f = question_factor(q.param, table.trials, q.off_value)
        if f is not None:
            out[q.param] = f
    return out


def _choices(q: Question, le: LevelEffects, min_per_choice: int) -> list[_Choice]:
    """The choices this question compares, as weight vectors over the fitted choices."""
    counts = le.factor.counts()
    ok = [c for c in le.choices if counts[c] >= min_per_choice]

    def unit(c: str) -> _Choice:
        w = np.zeros(len(le.choices))
        w[le.choices.index(c)] = 1.0
        return _Choice(c, w, (c,))

    include = QUESTION_VALUES.get(q.id)
    if include is not None:
        return [unit(c) for c in include if c in ok]
    if q.off_value is not None and isinstance(q.off_value, str):
        off = label(q.off_value)
        on = [c for c in ok if c != off]
        if off not in ok or not on:
            return []
        w = np.zeros(len(le.choices))
        total = sum(counts[c] for c in on)
        for c in on:  # "any": the choices' effects weighted by how often they were drawn
            w[le.choices.index(c)] = counts[c] / total
        return [unit(off), _Choice("any", w, tuple(on))]
    return [unit(c) for c in ok]


def _contrast(a: Answer, q: Question, le: LevelEffects, table: TrialTable,
              min_per_choice: int, word: str) -> None:
    """Fill the choices, best and pairwise effects; ``_decide`` adds the decision."""
    choices = _choices(q, le, min_per_choice)
    a.word, a.fidelity, a.change_p = word, _fidelity(le), le.change_p
    a.test = "adjusted regression, t test per pair (Bonferroni within, Holm across)"
    values = table.value_at(le.fidelity)
    counts = le.factor.counts()
    for c in choices:
        rows = [i for i, x in enumerate(le.factor.labels) if x in c.labels]
        ys = values[rows]
        ys = ys[np.isfinite(ys)]
        top = TOP_QUANTILE if table.sign > 0 else 1 - TOP_QUANTILE
        med, upper = (float(x) for x in np.quantile(ys, [0.5, top])) if ys.size else (
            math.nan, math.nan)
        a.choices.append(ChoiceSummary(
            c.name, sum(counts[x] for x in c.labels), med / table.scale, upper / table.scale,
            float(ys.mean()) / table.scale if ys.size else math.nan,
            sum(le.survivors.get(x, 0) for x in c.labels)))
    if len(choices) < 2:
        have = ", ".join(f"{c} {counts[c]}" for c in le.factor.order if counts[c])
        a.status = "too_few_trials"
        a.verdict = (f"too few trials to tell (need >= {min_per_choice} per choice in at "
                     f"least 2 choices; have {have})")
        return
    a.status = "answered"
    score = {c.name: table.sign * le.contrast(c.weights)[0] for c in choices}
    best = max(choices, key=lambda c: score[c.name])
    a.best = best.name
    pairs = [(x, y) for i, x in enumerate(choices) for y in choices[i + 1:]]
    tested = []
    for x, y in pairs:
        est, se = le.contrast(x.weights - y.weights)
        tested.append((x, y, est, se, stats.t_p_value(est, se, le.df)))
    x, y, est, se, p = min(tested, key=lambda t: t[4])
    a.p_value = min(1.0, p * len(pairs))
    a.statistic = est / se if se > 0 else math.nan
    a.headline = {"a": x.name, "b": y.name, "diff": est, "se": se, "p_value": p,
                  "pairs": len(pairs)}
    for c in choices:
        if c is not best:
            d, s = le.contrast(c.weights - best.weights)
            n_c = sum(counts[v] for v in c.labels)
            a.effects.append(Effect(c.name, best.name, d, s, s, n_c,
                                    sum(counts[v] for v in best.labels),
                                    stats.t_p_value(d, s, le.df)))
    a.effects.sort(key=lambda e: -table.sign * e.diff)  # runner-up first


def _fidelity(le: LevelEffects) -> str:
    if le.fidelity == FINAL:
        return "end of training"
    return f"epoch {le.fidelity} (every trial reached it)"


def _decide(a: Answer, p_holm: float, level: float, alpha: float, le: LevelEffects,
            table: TrialTable, min_effect: float, confirmed: dict[str, str]) -> None:
    """Holm's decision, intervals at its level, and the words."""
    assert a.headline is not None
    k = a.headline.pop("pairs")
    pair_level = level / k
    a.p_holm, a.significant, a.ci_level = p_holm, p_holm < alpha, 1 - pair_level
    se = a.headline.pop("se")
    lo, hi = stats.t_interval(a.headline["diff"], se, le.df, pair_level)
    a.headline.update(ci_low=lo, ci_high=hi)
    for e in a.effects:  # ci_low held the standard error until the level was known
        e.ci_low, e.ci_high = stats.t_interval(e.diff, e.ci_low, le.df, pair_level)
    fmt = "{:.2f}" if table.unit == "pts" else "{:.3g}"
    h = a.headline
    # In words the winner comes first and the gap is positive: "before > after by 0.45".
    win, lose = (h["a"], h["b"]) if table.sign * h["diff"] > 0 else (h["b"], h["a"])
    s = table.sign if win == h["a"] else -table.sign
    g_lo, g_hi = sorted((s * h["ci_low"], s * h["ci_high"]))
    size = (f"{fmt.format(s * h['diff'])} {a.unit} [{fmt.format(g_lo)}, "
            f"{fmt.format(g_hi)}]")
    op = ">" if table.sign > 0 else "<"
    n = f"n={sum(c.n for c in a.choices)}"
    a.headline_winner = win
    by_share = a.word != "matters" and a.significant and confirmed.get(a.question) == win
    if by_share:
        a.word = "matters"
    pair = f"{_named(a.param, win)} {op} {_named(a.param, lose)} by {size}"
    if a.significant:
        a.verdict = f"{a.word}: {pair} ({a.fidelity}; {n}; Holm p={p_holm:.2g})"
        if a.best not in (win, lose):
            a.verdict += f"; best: {_named(a.param, a.best)}"
    else:
        a.needed = _needed(a, se, pair_level, le, table, min_effect)
        a.verdict = (f"no detectable difference at this budget ({a.fidelity}; {n}; closest: "
                     f"{pair}, Holm p={p_holm:.2g})")
    a.caveat = _caveat(a, le, by_share)


def _named(param: str, choice: str | None) -> str:
    """A choice as words: ``before`` reads alone, ``0`` needs its param (``dropout=0``)."""
    text = str(choice)
    if text.startswith(">"):
        return f"{param}{text.replace(' ', '')}"
    if text[:1].isdigit() or text[:1] in "[-.":
        return f"{param}={text}"
    return text


def _needed(a: Answer, se: float, level: float, le: LevelEffects, table: TrialTable,
            min_effect: float) -> str:
    """How many finished trials would detect a difference with POWER at this spread.

    The difference planned for is the closest pair's estimate, or ``min_effect`` when the
    estimate is smaller than that (a smaller difference is not worth a budget).
    """
    if not se > 0 or not math.isfinite(se):
        return ""
    h = a.headline or {}
    size = max(min_effect, abs(float(h.get("diff", 0.0))))
    z = float(sps.norm.ppf(1 - level / 2) + sps.norm.ppf(POWER))
    n_now = le.n
    n_req = math.ceil(n_now * (se * z / size) ** 2)
    fmt = f"{size:.2f}" if a.unit == "pts" else f"{size:.3g}"
    what = (f"a {fmt}-{a.unit.rstrip('s')} difference between {_named(a.param, h.get('a'))} "
            f"and {_named(a.param, h.get('b'))}")
    if n_req <= n_now:
        return (f"{n_now} trials could detect {what} with {POWER:.0%} power: a real "
                f"difference is likely smaller than that")
    return (f"about {n_req} finished trials (now {n_now}) would detect {what} "
            f"({POWER:.0%} power, this spread); hpsearch verify needs far fewer runs")


def _caveat(a: Answer, le: LevelEffects, by_share: bool) -> str:
    if by_share:
        parts = [SHARED]
    else:
        parts = [RANDOMIZED if a.word == "matters" else OBSERVATIONAL]
    if le.first_level != FINAL:
        if le.fidelity == FINAL:
            parts.append(f"Its effect changed after epoch {le.first_level} (p="
                         f"{le.change_p:.2g}): the answer is the end-of-training effect, "
                         "followed through the trials that kept training.")
        else:
            n_end = sum(c.n_end for c in a.choices)
            parts.append(f"Measured at epoch {le.first_level}, where all {le.n} trials still "
                         f"count; the {n_end} that ran to the end show no significant change "
                         f"(p={le.change_p:.2g}).")
    parts += le.notes
    return " ".join(parts)


def all_failed(trials: Sequence[FrozenTrial]) -> bool:
    """Every trial ended in FAIL (nothing to analyse, and the report should say so)."""
    return bool(trials) and all(t.state == TrialState.FAIL for t in trials)
