"""The questions, answered: contrasts, one weighted Holm family, verdicts in three states.

Each question compares choices of one param (``bn_placement``: before vs after; the
binary ones off vs on; the rest every pair of choices), or, for a study's own numeric
param, the points of its adjusted curve (:mod:`hpsearch.analysis.numeric`). A question's
p-value is the smallest level at which one of its intervals excludes 0 (Bonferroni over
its pairs, Scheffe over a curve), and Holm's weighted procedure runs across the questions
(the seeds' questions weigh 1, the study's own params ``STUDY_WEIGHT``). Every interval
shown is at the level Holm decided that question at (:mod:`hpsearch.analysis.contrasts`),
and the one interval gives the verdict: a difference when it excludes 0, "equivalent"
when every interval lies inside +-margin, open otherwise, with what would settle it.
Every verdict is the effect at the end of training (:mod:`hpsearch.analysis.effects`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from hpsearch import schema
from hpsearch.analysis import stats
from hpsearch.analysis.answers import Answer, ChoiceSummary, Effect
from hpsearch.analysis.contrasts import (
    ContrastSet,
    Pair,
)
from hpsearch.analysis.designed import (
    BALANCED,
    balanced_share,
    designs,
    gate_equivalence,
    paired_answer,
)
from hpsearch.analysis.effects import MIN_DF, LevelEffects, estimate_effects
from hpsearch.analysis.matrix import Factor, build_design, label, question_factor
from hpsearch.analysis.numeric import numeric_contrasts
from hpsearch.analysis.table import TrialTable, finished_table
from hpsearch.analysis.trainability import answer_trainability, never_learned
from hpsearch.analysis.verdicts import FIDELITY, by_epoch, decide
from hpsearch.settings import MARGIN
from hpsearch.space import QUESTIONS, Question

# Questions that compare only some of a param's choices: "before or after?" says nothing
# about trials without batch norm (the "batch_norm" question compares those).
QUESTION_VALUES: dict[str, tuple[str, ...]] = {"bn_placement": ("before", "after")}


TOP_QUANTILE = 0.9


MIN_RANDOMIZED = 20  # randomized trials needed before they are analysed on their own


@dataclass
class _Choice:
    name: str
    weights: np.ndarray   # over LevelEffects.choices
    labels: tuple[str, ...]


# The weight of a study's own question in the weighted Holm family, against 1 for each
# built-in one. An hpsearch study adds ~16 own params to the 10 seeds' questions: with
# equal weights the first step would test at alpha / 26, with these at alpha / 14, and a
# study with only its own params (any other Optuna study) is plain Holm.
STUDY_WEIGHT = 0.25




def resolve_margin(margin: float | None, unit: str) -> float:
    """The margin in the answers' unit: ``margin`` if given, else ``MARGIN`` (settings) for
    accuracy points and none (nan: equivalence is never called) for other units."""
    if margin is not None:
        if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0):
            from hpsearch.errors import ConfigError

            raise ConfigError(f"margin must be a positive number of points, got {margin!r}")
        return float(margin)
    return MARGIN if unit == "pts" else math.nan


def answer_questions(trials: Sequence[FrozenTrial], *,
                     questions: Sequence[Question] = QUESTIONS, study_params: bool = True,
                     only: Sequence[str] | None = None,
                     direction: StudyDirection | str = "maximize", alpha: float = 0.05,
                     min_per_choice: int = 5, min_effect: float = 0.5,
                     margin: float | None = None, randomized: bool | None = None,
                     step: str = "epoch", chance: float | None = None) -> list[Answer]:
    """Answer each question from every finished trial (objective 0) that sampled its param.

    ``questions`` (the built-in ones by default, ``family`` "seeds"); with
    ``study_params`` every other param the trials sampled with at least two values gets a
    question of its own (:func:`study_questions`, ``family`` "study"). All of them are one
    family for Holm's weighted procedure: a study question weighs ``STUDY_WEIGHT`` of a
    seeds' one, so the false-difference rate over every answer stays at ``alpha`` while the
    questions the seeds asked keep most of it. ``margin`` (in the
    answers' unit; default :data:`hpsearch.settings.MARGIN` for accuracy points) is what
    "equivalent" means. ``only``: return just these questions (ids or params; the answers are the
    same as in the full list). ``randomized``: the trials' params were drawn
    independently at random (random or QMC sampler), which licenses "matters"; None reads
    each trial's ``randomized`` user attr and needs all of them. ``min_effect`` is the
    difference "what would settle it" plans for; ``step`` is the word for one
    intermediate value ("epoch" for hpsearch studies, "step" for others). ``chance``: the
    objective's chance level (1 / classes): the trials that never learned
    (:func:`hpsearch.analysis.trainability.never_learned`) are failures to train, counted in
    each answer's ``trainability`` and left out of the accuracy analysis; None detects
    nothing (``trainability`` stays null). A paired design's arm at chance counts as a
    failure of that arm (:func:`hpsearch.analysis.designed.paired_answer`).
    """
    direction = _direction(direction)
    table = finished_table(trials, direction)
    failed: np.ndarray | None = None
    if chance is not None and table.unit == "pts":  # chance is an accuracy's
        failed = never_learned(table, chance)
        everyone = table
        table = finished_table([t for t, f in zip(table.trials, failed, strict=True)
                                if not f], direction)
        if not table.trials:  # every trial failed: still accuracies, none to compare
            table = dataclasses.replace(table, unit=everyone.unit, scale=everyone.scale)
    margin = resolve_margin(margin, table.unit)
    builtin = list(questions)
    own = study_questions(table.trials, builtin) if study_params else []
    every = builtin + own
    answers = [_empty(q, table, margin, "study" if q in own else "seeds") for q in every]
    numeric = [q for q in own if q.kind == "numeric"]
    choice = [q for q in every if q.kind != "numeric"]
    factors = _factors(choice, table, min_per_choice)
    for a in answers:
        if a.kind == "numeric":
            continue
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
    by_design = designs(table.trials)
    if failed is not None:
        word = "matters" if randomized or (randomized is None and everyone.trials and all(
            schema.randomized(t) for t in everyone.trials)) else "associated"
        answer_trainability([(a, groups) for a, q in zip(answers, every, strict=True)
                             if (groups := _groups(q, everyone, min_per_choice))],
                            failed, alpha=alpha, word=word,
                            params=[t.params for t in everyone.trials])
    if not factors and not numeric and "paired" not in by_design.values():
        return _only(answers, only)
    design = build_design(table.trials, list(factors.values()), min_per_choice)
    effects = estimate_effects(table, design) if factors else {}
    confirmed: dict[str, str] = {}
    if randomized is None:
        flags = [schema.randomized(t) for t in table.trials]
        randomized = all(flags)
        if not randomized and sum(flags) >= MIN_RANDOMIZED:
            # The study's randomized share is an experiment of its own: what it settles by
            # itself (its own Holm family) may be called an effect.
            sub = [t for t, f in zip(table.trials, flags, strict=True) if f]
            confirmed = {a.question: str(a.headline_winner) for a in answer_questions(
                sub, questions=questions, study_params=study_params, direction=direction,
                alpha=alpha, min_per_choice=min_per_choice,
                margin=margin if math.isfinite(margin) else None,
                randomized=True) if a.significant}
    word = "matters" if randomized else "associated"
    sets: dict[str, ContrastSet] = {}
    series: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for a, q in zip(answers, every, strict=True):
        if by_design.get(q.id) == "paired":
            # every config, those where both arms never learned too (the arms' mean at
            # chance left the accuracy table): paired_answer tells the failures apart
            found = paired_answer(a, (everyone if failed is not None else table).trials,
                                  min_per_choice, chance, alpha, sign=table.sign,
                                  scale=table.scale)
            if found is not None:
                sets[a.question], series[a.question] = found
            continue
        if q.kind == "numeric":
            found = numeric_contrasts(a, table, design, min_per_choice, word)
            if found is not None:
                sets[a.question], series[a.question] = found
        elif q.param in effects:
            le = effects[q.param]
            designed = (by_design.get(q.id) == "balanced"
                        and balanced_share(table.trials, q.id))
            cs = _contrast(a, q, le, table, min_per_choice, "matters" if designed else word)
            if cs is not None:
                if designed:
                    cs.extra["design"] = BALANCED
                sets[a.question], series[a.question] = cs, le.by_level
        elif q.param in factors:
            a.status = "too_few_trials"
            a.verdict = (f"too few trials to tell ({len(table)} finished trials cannot hold "
                         f"the choices of {q.param} and the other params fixed at once)")
    decided = [a for a in answers if a.status == "answered"]
    ps = [sets[a.question].p_value() for a in decided]
    weights = [1.0 if a.family == "seeds" else STUDY_WEIGHT for a in decided]
    tested = [sets[a.question].tested_p() for a in decided]
    adjusted, levels = stats.weighted_holm(tested, weights, alpha)
    for a, p, p_adj, level in zip(decided, ps, adjusted, levels, strict=True):
        a.p_value = math.nan if sets[a.question].untestable else p
        lev = effects.get(a.param) if a.kind != "numeric" else None
        decide(a, sets[a.question], float(p_adj), float(level), lev, table, min_effect,
                margin, confirmed, step)
        a.effect_by_epoch = by_epoch(sets[a.question], series[a.question], step)
        gate_equivalence(a)
    return _only(answers, only)


def _groups(q: Question, table: TrialTable, min_per_choice: int) -> dict[str, np.ndarray]:
    """The trials of each choice the question compares (all of them, failed ones too): the
    choices with ``min_per_choice`` trials, "off" vs "any" for an off-vs-on question, the
    lower and upper half of a numeric param's values."""
    n = len(table)
    if q.kind == "numeric":
        xs = np.array([float(t.params[q.param]) if q.param in t.params else math.nan
                       for t in table.trials])
        has = np.isfinite(xs)
        if has.sum() < 2 * min_per_choice:
            return {}
        mid = float(np.median(xs[has]))
        low, high = has & (xs <= mid), has & (xs > mid)
        if low.sum() < min_per_choice or high.sum() < min_per_choice:
            return {}
        return {f"<= {mid:.3g}": low, f"> {mid:.3g}": high}
    f = question_factor(q.param, table.trials, q.off_value)
    if f is None:
        return {}
    labels = np.array([x if x is not None else "" for x in f.labels], dtype=object)
    groups = {c: labels == c for c in f.order}
    include = QUESTION_VALUES.get(q.id)
    if include is not None:
        groups = {c: m for c, m in groups.items() if c in include}
    elif q.off_value is not None and isinstance(q.off_value, str):
        off = label(q.off_value)
        on = np.zeros(n, dtype=bool)
        for c, m in groups.items():
            if c != off:
                on |= m
        groups = {off: groups.get(off, np.zeros(n, dtype=bool)), "any": on}
    return {c: m for c, m in groups.items() if m.sum() >= min_per_choice}


def _only(answers: list[Answer], only: Sequence[str] | None) -> list[Answer]:
    if not only:
        return answers
    ids = {a.question for a in answers}
    wanted = set(only)
    by_param = wanted - ids  # a name that is no question's id asks for its param's questions
    return [a for a in answers if a.question in wanted or a.param in by_param]


def study_questions(trials: Sequence[FrozenTrial], builtin: Sequence[Question],
                    ) -> list[Question]:
    """A question for every param the trials sampled with >= 2 values that no built-in
    question asks about, in the order the params first appear: "which choice?" for a
    categorical param, "does it matter, and where is it best?" for a numeric one."""
    asked = {q.param for q in builtin}
    out: list[Question] = []
    seen: dict[str, set[str]] = {}
    dists: dict[str, Any] = {}
    for t in trials:
        for p, v in t.params.items():
            seen.setdefault(p, set()).add(repr(v))
            dists.setdefault(p, t.distributions[p])
        # A paired design's param holds its first arm in every trial: the arms are its values.
        d = schema.design(t)
        if d is not None and d.get("param") in t.params and isinstance(d.get("arms"), list):
            seen[d["param"]].update(repr(a) for a in d["arms"])
    for p, values in seen.items():
        if p in asked or len(values) < 2:
            continue
        if isinstance(dists[p], CategoricalDistribution):
            out.append(Question(p, p, f"Which {p}?", "", kind="choice"))
        else:
            out.append(Question(p, p, f"Does {p} matter, and where is it best?", "",
                                kind="numeric"))
    return out


def _direction(direction: StudyDirection | str) -> StudyDirection:
    if isinstance(direction, StudyDirection):
        return direction
    name = str(direction).lower()
    if name not in ("maximize", "minimize"):
        from hpsearch.errors import ConfigError

        raise ConfigError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return StudyDirection.MAXIMIZE if name == "maximize" else StudyDirection.MINIMIZE


def _empty(q: Question, table: TrialTable, margin: float, family: str) -> Answer:
    return Answer(question=q.id, param=q.param, title=q.title, seed_claim=q.seed_claim,
                  status="not_sampled", unit=table.unit, margin=margin, family=family,
                  kind=q.kind,
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
              min_per_choice: int, word: str) -> ContrastSet | None:
    """Fill the choices, best and pairwise effects; ``decide`` adds the decision."""
    choices = _choices(q, le, min_per_choice)
    a.word, a.fidelity, a.change_p = word, FIDELITY, le.change_p
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
        return None
    a.status = "answered"
    score = {c.name: table.sign * le.contrast(c.weights)[0] for c in choices}
    # the best is a choice whose end-of-training effect is known (a lost one has none)
    known = [c for c in choices if not any(x in le.lost for x in c.labels)] or choices
    best = max(known, key=lambda c: score[c.name])
    a.best = best.name
    pairs = []
    for i, x in enumerate(choices):
        for y in choices[i + 1:]:
            est, se = le.contrast(x.weights - y.weights)
            pairs.append(Pair(x.name, y.name, est, se, w=x.weights - y.weights))
    cs = ContrastSet(pairs, le.df, min_df=MIN_DF)
    a.statistic = cs.headline.est / cs.headline.se if cs.headline.se > 0 else math.nan
    for c in choices:
        if c is not best:
            d, s = le.contrast(c.weights - best.weights)
            n_c = sum(counts[v] for v in c.labels)
            a.effects.append(Effect(c.name, best.name, d, s, s, n_c,
                                    sum(counts[v] for v in best.labels),
                                    stats.t_p_value(d, s, le.df)))
    a.effects.sort(key=lambda e: -table.sign * e.diff)  # runner-up first
    return cs
