"""Analyse a study: param importances, the design's questions, pruning, learning curves.

Works on any Optuna study, not only hpsearch's: params it does not know are ranked by
importance but no question asks about them, and a multi-objective study is analysed on
its first objective (a note says so). Never imports torch, so ``hpsearch report`` starts
fast. The statistics themselves live in :mod:`hpsearch.stats`.

``StudyAnalysis.to_dict()`` is JSON-safe (non-finite floats become ``null``); schema 1 keys:

- ``schema`` (1), ``study_name``, ``direction`` ("maximize" | "minimize", of objective 0),
  ``n_trials`` ({state name: count} for every ``TrialState``), ``best_value``,
  ``best_params``, ``best_trial_number``
- ``importances``: {evaluator: [{param, value, ci_low, ci_high}]}, sorted by value, desc;
  values are normalized to sum to 1
- ``importance_agreement``: {``pairs``: [{a, b, tau, n_params, same_top}], ``summary``}
- ``answers``: [{question, param, title, seed_claim, status, choices: [{value, n, median,
  top_quantile, mean}], best, effects: [{choice, vs, diff, ci_low, ci_high, n, n_vs}],
  test, statistic, p_value, p_holm, significant, verdict, caveat, unit}]
- ``pruning``: the keys of :func:`pruning_stats`
- ``curves``: {param: {group: {epochs, median, q25, q75, n, n_at_epoch}}}
- ``notes``: [str], what could not be analysed and why
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch import stats
from hpsearch.errors import ConfigError, StudyError
from hpsearch.space import PARAM_BY_NAME, QUESTIONS, Question

# ---------------------------------------------------------------------------- settings

# Questions that compare only some of a param's values: "before or after?" says nothing
# about trials without batch norm (the "batch_norm" question compares those).
QUESTION_VALUES: dict[str, tuple[Any, ...]] = {"bn_placement": ("before", "after")}
TOP_QUANTILE = 0.9     # ChoiceSummary.top_quantile: what the good runs of a choice reach
MAX_LEVELS = 8         # numeric params with more distinct values are grouped into quartiles
AGREE_TAU = 0.5        # two importance rankings "agree" at Kendall's tau >= this
# Below this many complete trials importances are rough: in planted 25-param studies of 150
# trials, PED-ANOVA ranked a 1.5-sd effect level with noise params (small conditional
# regimes such as l2 get large divergences); the bootstrap CIs show it.
FEW_FOR_IMPORTANCE = 200
# Samplers whose draws do not depend on earlier results. With an adaptive one (TPE), params
# drift together towards good regions, so the rank tests see associations that another
# param causes: in 20 planted studies where only lr mattered (150 TPE trials each), 10 had
# at least one null question called "matters"; with the random sampler 4 of 40 (~alpha).
UNBIASED_SAMPLERS = ("random", "qmc")
ADAPTIVE_NOTE = ("trials were chosen by the {sampler} sampler, which moves params together "
                 "towards good regions: a question can look like it matters because another "
                 "param does, so its significant differences read \"associated\", not "
                 "\"matters\". Treat them as leads for `hpsearch verify`, or run the study "
                 "with --sampler random for study-level answers")
CAVEAT = ("Study trials are observational: the sampler chose the other params too, so they "
          "co-vary with this one. Run `hpsearch verify STORAGE --question {id}` for a causal "
          "answer (paired re-runs that differ only in this param).")


@dataclass(frozen=True)
class _Evaluator:
    make: Callable[[int], BaseImportanceEvaluator]   # seed -> evaluator
    conditional: bool       # ranks params missing from some trials (else only common ones)
    bootstrap: bool         # analyze() bootstraps it (fANOVA: ~1 min per fit at 1k trials)


EVALUATORS: dict[str, _Evaluator] = {
    "ped_anova": _Evaluator(lambda seed: PedAnovaImportanceEvaluator(), True, True),
    "fanova": _Evaluator(lambda seed: FanovaImportanceEvaluator(seed=seed), False, False),
    "mdi": _Evaluator(lambda seed: MeanDecreaseImpurityImportanceEvaluator(seed=seed),
                      False, True),
}


# ---------------------------------------------------------------------------- results


@dataclass
class Importance:
    param: str
    value: float      # normalized importance (all params of one evaluator sum to 1)
    ci_low: float     # bootstrap over trials (see param_importances); nan: no bootstrap
    ci_high: float


@dataclass
class ChoiceSummary:
    value: str          # the choice, or a group label ("> 0", "any", a quartile range)
    n: int
    median: float       # objective units (accuracy in [0, 1] for hpsearch studies)
    top_quantile: float  # 90th percentile, or 10th when minimizing: the good tail
    mean: float


@dataclass
class Effect:
    choice: str
    vs: str           # the best choice
    diff: float       # median(choice) - median(vs), in `Answer.unit` (accuracy points)
    ci_low: float
    ci_high: float
    n: int
    n_vs: int


@dataclass
class Answer:
    question: str
    param: str
    title: str
    seed_claim: str
    status: str        # "answered" | "not_sampled" | "too_few_trials"
    choices: list[ChoiceSummary]
    best: str | None
    effects: list[Effect]   # runner-up first
    test: str               # "mann-whitney" | "kruskal-wallis" | ""
    statistic: float
    p_value: float
    p_holm: float
    significant: bool
    verdict: str
    caveat: str
    unit: str = "pts"       # "pts" (objective x 100) for values in [0, 1], else "units"


@dataclass
class StudyAnalysis:
    study_name: str
    direction: str
    n_trials: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_trial_number: int | None
    importances: dict[str, list[Importance]]
    importance_agreement: dict[str, Any]
    answers: list[Answer]
    pruning: dict[str, Any]
    curves: dict[str, dict[str, dict[str, Any]]]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the keys listed in the module docstring."""
        return {"schema": 1, **_json_safe(dataclasses.asdict(self))}


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------- facade


def analyze(study: optuna.Study, *, evaluators: Sequence[str] = ("ped_anova",),
            n_bootstrap: int = 2000, n_bootstrap_importance: int = 30, alpha: float = 0.05,
            seed: int = 0, min_per_choice: int = 5) -> StudyAnalysis:
    """Everything the report shows about ``study``, from one read of its trials.

    ``n_bootstrap`` resamples give the questions' effect CIs (cheap, vectorized);
    ``n_bootstrap_importance`` those of importances (one evaluator fit each). fANOVA is
    fitted once, without a CI: one fit takes about a minute at 1,000 trials.
    Raises :class:`StudyError` if the study has no finished trial at all.
    """
    for name in evaluators:
        _check_evaluator(name)
    trials = study.get_trials(deepcopy=False)
    if not any(t.state.is_finished() for t in trials):
        raise StudyError(f"study {study.study_name!r} has no finished trials yet")
    notes: list[str] = []
    direction = study.directions[0]
    if len(study.directions) > 1:
        notes.append(f"multi-objective study ({len(study.directions)} objectives): questions "
                     "and importances use objective 0 only; trade-offs are not analysed")
    complete = _complete(trials)
    sign = _sign(direction)
    best = max(complete, key=lambda t: sign * t.values[0]) if complete else None

    foreign = sorted({p for t in complete for p in t.params} - set(PARAM_BY_NAME))
    if foreign:
        notes.append(f"params hpsearch does not know ({', '.join(foreign)}): ranked by "
                     "importance, but no question asks about them")
    if complete and not all(0.0 <= t.values[0] <= 1.0 for t in complete):
        notes.append("objective values lie outside [0, 1]: effects are in objective units, "
                     "not accuracy points")

    sampler, epochs = _setting(study, "sampler"), _setting(study, "epochs")
    if sampler is not None and sampler not in UNBIASED_SAMPLERS:
        notes.append(ADAPTIVE_NOTE.format(sampler=sampler))

    importances: dict[str, list[Importance]] = {}
    if len(complete) < 2:
        notes.append(f"{len(complete)} complete trial(s): no importances")
    else:
        if len(complete) < FEW_FOR_IMPORTANCE:
            notes.append(f"importances from {len(complete)} complete trials are rough "
                         "(noise params can rank high): read their CIs")
        for name in evaluators:
            n_boot = n_bootstrap_importance if EVALUATORS[name].bootstrap else 0
            if n_boot == 0 and n_bootstrap_importance > 0:
                notes.append(f"{name}: one fit, no CI (too slow to bootstrap by default)")
            try:
                importances[name], more = _importances(complete, direction, name,
                                                       n_bootstrap=n_boot, seed=seed,
                                                       alpha=alpha)
                notes += more
            except StudyError as exc:
                notes.append(str(exc))

    curves = {}
    for param in dict.fromkeys(q.param for q in QUESTIONS):
        if curve := learning_curves(trials, param):
            curves[param] = curve
    if not any(t.intermediate_values for t in trials):
        notes.append("no trial reported intermediate values: no learning curves, and the "
                     "epochs pruning saved are unknown")
    return StudyAnalysis(
        study_name=study.study_name, direction=direction.name.lower(),
        n_trials={s.name: sum(t.state == s for t in trials) for s in TrialState},
        best_value=best.values[0] if best else None,
        best_params=dict(best.params) if best else {},
        best_trial_number=best.number if best else None,
        importances=importances, importance_agreement=_agreement(importances),
        answers=answer_questions(complete, direction=direction, alpha=alpha,
                                 n_bootstrap=n_bootstrap, seed=seed,
                                 min_per_choice=min_per_choice,
                                 adaptive=sampler is not None
                                 and sampler not in UNBIASED_SAMPLERS),
        pruning=pruning_stats(trials, max_epochs=epochs if type(epochs) is int else None),
        curves=curves, notes=notes)


# ---------------------------------------------------------------------------- importance


def param_importances(study: optuna.Study, *, evaluator: str = "ped_anova",
                      n_bootstrap: int = 30, seed: int = 0, alpha: float = 0.05,
                      ) -> list[Importance]:
    """Normalized importances of ``study``'s params, most important first, with CIs.

    ``evaluator`` is "ped_anova" (Optuna 5's default; ranks conditional params too),
    "fanova" or "mdi" (both only rank params present in every complete trial). The CI is
    the percentile interval over ``n_bootstrap`` refits on trials resampled with
    replacement, shifted so that the refits' median sits on the estimate (resamples repeat
    trials, which biases normalized importances): a stability band, not calibrated coverage.
    """
    _check_evaluator(evaluator)
    complete = _complete(study.get_trials(deepcopy=False))
    if len(complete) < 2:
        raise StudyError(f"study {study.study_name!r} has {len(complete)} complete trial(s); "
                         "importances need at least 2")
    return _importances(complete, study.directions[0], evaluator, n_bootstrap=n_bootstrap,
                        seed=seed, alpha=alpha)[0]


def _check_evaluator(name: str) -> None:
    if name not in EVALUATORS:
        raise ConfigError(f"unknown importance evaluator {name!r}; "
                          f"choose from {', '.join(EVALUATORS)}")


class _TrialsView:
    """The read-only part of ``optuna.Study`` that Optuna's importance evaluators use.

    A bootstrap needs a "study" of resampled trials 30 times over: a real in-memory study
    costs ~0.4 s to fill at 1,000 trials, this view costs nothing.
    """

    def __init__(self, trials: list[FrozenTrial], direction: StudyDirection) -> None:
        self._trials, self.directions = trials, [direction]

    def get_trials(self, deepcopy: bool = True,
                   states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def _is_multi_objective(self) -> bool:
        return False


def _view(trials: list[FrozenTrial], direction: StudyDirection) -> optuna.Study:
    # The evaluators only read what _TrialsView has; the cast keeps their signature.
    return cast(optuna.Study, _TrialsView(trials, direction))


def _slim(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Single-objective copies (objective 0) that share equal distribution objects.

    PED-ANOVA groups trials by distribution in a dict; shared objects make each lookup an
    identity check instead of a slow ``__eq__`` (2.4x faster at 1,000 trials).
    """
    canon: dict[BaseDistribution, BaseDistribution] = {}
    return [FrozenTrial(number=t.number, state=TrialState.COMPLETE, value=t.values[0],
                        datetime_start=None, datetime_complete=None, params=t.params,
                        distributions={k: canon.setdefault(d, d)
                                       for k, d in t.distributions.items()},
                        user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=i)
            for i, t in enumerate(trials)]


def _importances(complete: Sequence[FrozenTrial], direction: StudyDirection, name: str, *,
                 n_bootstrap: int, seed: int, alpha: float = 0.05,
                 ) -> tuple[list[Importance], list[str]]:
    spec, slim = EVALUATORS[name], _slim(complete)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            point = get_param_importances(_view(slim, direction), evaluator=spec.make(seed))
        except (ValueError, RuntimeError) as exc:
            raise StudyError(f"{name}: importances cannot be computed: {exc}") from None
    notes = [f"{name}: {m}" for m in dict.fromkeys(str(w.message) for w in caught)]
    params = list(point)
    if not spec.conditional:
        left_out = sorted({p for t in complete for p in t.params} - set(params))
        if left_out:
            notes.append(f"{name} ranks only params present in every complete trial; "
                         f"left out: {', '.join(left_out)}")
    rng = np.random.default_rng(seed)
    boot = np.full((n_bootstrap, len(params)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the point estimate's warnings are already noted
        for b in range(n_bootstrap):
            view = _view([slim[i] for i in rng.integers(0, len(slim), len(slim))], direction)
            try:
                # Sorted: fANOVA/MDI label results in the given order but compute them in
                # name order (Optuna 5.0), so unsorted names would swap importances.
                res = get_param_importances(view, evaluator=spec.make(seed + 1 + b),
                                            params=None if spec.conditional else sorted(params))
            except (ValueError, RuntimeError):
                continue  # a degenerate resample (e.g. one value only): leave it out
            boot[b] = [res.get(p, 0.0) for p in params]  # absent from the resample: 0
    out = []
    for j, p in enumerate(params):
        # Resamples repeat trials, which dilutes the normalized share of real effects: the
        # percentile interval is shifted by that median bias (and importances are >= 0).
        lo, hi = stats.median_bias_corrected_ci(boot[:, j], float(point[p]), alpha)
        lo, hi = np.maximum(0.0, (lo, hi))  # np.maximum keeps nan (no bootstrap)
        out.append(Importance(p, float(point[p]), float(lo), float(hi)))
    return sorted(out, key=lambda imp: -imp.value), notes


def _agreement(importances: dict[str, list[Importance]]) -> dict[str, Any]:
    names, pairs = list(importances), list[dict[str, Any]]()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = importances[a], importances[b]
            tau, n = stats.rank_agreement({x.param: x.value for x in ra},
                                          {x.param: x.value for x in rb})
            pairs.append({"a": a, "b": b, "tau": tau, "n_params": n,
                          "same_top": bool(ra and rb and ra[0].param == rb[0].param)})
    if not pairs:
        return {"pairs": [], "summary": f"{len(names)} evaluator(s): nothing to compare"}
    summary = "; ".join(
        f"{p['a']} and {p['b']} {_agree(p['tau'])} "
        f"(Kendall tau {p['tau']:.2f} over {p['n_params']} common params"
        f"{', same top param' if p['same_top'] else ''})" for p in pairs)
    return {"pairs": pairs, "summary": summary}


def _agree(tau: float) -> str:
    if not math.isfinite(tau):
        return "cannot be compared"
    return "agree" if tau >= AGREE_TAU else "disagree"


# ---------------------------------------------------------------------------- questions


def answer_questions(trials: Sequence[FrozenTrial], *, questions: Sequence[Question] = QUESTIONS,
                     direction: StudyDirection | str = "maximize", alpha: float = 0.05,
                     n_bootstrap: int = 2000, seed: int = 0, min_per_choice: int = 5,
                     adaptive: bool = False) -> list[Answer]:
    """Answer each question from the complete trials (objective 0) that sampled its param.

    Groups with fewer than ``min_per_choice`` trials are dropped; the remaining ones are
    compared with a rank test, Holm-corrected across all answered questions, and each is
    set against the best choice (by median) with a bootstrap CI of the median difference.
    ``adaptive``: the trials came from an adaptive sampler (TPE, GP, CMA-ES), so a
    significant difference is called "associated", not "matters" (see ADAPTIVE_NOTE).
    """
    sign = _sign(direction)
    complete = _complete(trials)
    ys = [t.values[0] for t in complete]
    scale, unit = (100.0, "pts") if all(0.0 <= y <= 1.0 for y in ys) else (1.0, "units")
    answers, remarks = [], {}
    for i, q in enumerate(questions):
        groups = _question_groups(q, complete, binary=True)
        if q.off_value is not None and not isinstance(q.off_value, str):
            n_off = len(groups.get(_label(q.off_value), ()))
            if n_off < min_per_choice and sum(map(len, groups.values())) >= 2 * min_per_choice:
                # A range without 0 (a preset's 0.3-0.6, or a continuous one) has no "off"
                # group: say so, and answer the other half of the question, "which rate?".
                groups = _question_groups(q, complete, binary=False)
                remarks[q.id] = (f"; {q.param} = {_label(q.off_value)} occurred in {n_off} "
                                 "trial(s), so the rates were compared instead of off/on")
        answers.append(_answer(q, groups, sign=sign, scale=scale, unit=unit, alpha=alpha,
                               n_bootstrap=n_bootstrap, min_per_choice=min_per_choice,
                               rng=np.random.default_rng([seed, i])))
    answered = [a for a in answers if a.status == "answered"]
    for a, p in zip(answered, stats.holm([a.p_value for a in answered]), strict=True):
        a.p_holm, a.significant = float(p), bool(p < alpha)
        a.verdict = _verdict(a, sign, min_per_choice,
                             "associated" if adaptive else "matters")
    for a in answers:
        a.verdict += remarks.get(a.question, "")
    return answers


def _question_groups(q: Question, complete: Sequence[FrozenTrial], *, binary: bool,
                     ) -> dict[str, np.ndarray]:
    """Objective values by group label, in display order, for trials that have the param.

    ``binary`` groups a question with an ``off_value`` into off vs on.
    """
    include = QUESTION_VALUES.get(q.id)
    xs, ys = [], []
    for t in complete:
        if q.param in t.params and (include is None or t.params[q.param] in include):
            xs.append(t.params[q.param])
            ys.append(t.values[0])
    if binary and q.off_value is not None:
        off, on = _binary_labels(q.off_value)
        labels, order = [off if x == q.off_value else on for x in xs], [off, on]
    else:
        labels, order = _levels(q.param, xs, complete)
        if include is not None:
            order = [_label(v) for v in include]
    y = np.asarray(ys, dtype=float)
    lab = np.asarray(labels, dtype=object)
    groups = {name: y[lab == name] for name in order}
    return {name: g for name, g in groups.items() if g.size}


def _answer(q: Question, groups: dict[str, np.ndarray], *, sign: float, scale: float, unit: str,
            alpha: float, n_bootstrap: int, min_per_choice: int, rng: np.random.Generator,
            ) -> Answer:
    top = TOP_QUANTILE if sign > 0 else 1 - TOP_QUANTILE
    median: dict[str, float] = {}
    choices = []
    for k, v in groups.items():
        median[k], upper = (float(x) for x in np.quantile(v, [0.5, top]))
        choices.append(ChoiceSummary(k, int(v.size), median[k], upper, float(v.mean())))
    nan = float("nan")
    answer = Answer(question=q.id, param=q.param, title=q.title, seed_claim=q.seed_claim,
                    status="not_sampled", choices=choices, best=None, effects=[], test="",
                    statistic=nan, p_value=nan, p_holm=nan, significant=False, verdict="",
                    caveat=CAVEAT.format(id=q.id), unit=unit)
    kept = {k: v for k, v in groups.items() if v.size >= min_per_choice}
    if len(groups) < 2:
        answer.verdict = (f"not sampled: no complete trial has {q.param} (fixed or absent)"
                          if not groups else
                          f"not sampled: only {choices[0].value} (n={choices[0].n}) occurs")
        return answer
    if len(kept) < 2:
        have = ", ".join(f"{c.value} {c.n}" for c in choices)
        answer.status = "too_few_trials"
        answer.verdict = (f"too few trials to tell (need >= {min_per_choice} per choice in "
                          f"at least 2 choices; have {have})")
        return answer
    answer.status = "answered"
    answer.test, answer.statistic, answer.p_value = stats.compare_groups(list(kept.values()))
    ranked = sorted(kept, key=lambda k: -sign * median[k])
    best = answer.best = ranked[0]
    boot = {k: stats.bootstrap_medians(v, n_bootstrap, rng) for k, v in kept.items()}
    for k in ranked[1:]:
        diff = (median[k] - median[best]) * scale
        lo, hi = stats.percentile_ci((boot[k] - boot[best]) * scale, alpha)
        answer.effects.append(Effect(k, best, diff, lo, hi, int(kept[k].size),
                                     int(kept[best].size)))
    return answer


def _verdict(a: Answer, sign: float, min_per_choice: int, word: str = "matters") -> str:
    """Plain words: how much better the best is than the nearest choice its CI separates."""
    fmt = "{:.2f}" if a.unit == "pts" else "{:.3g}"

    def gap(e: Effect) -> tuple[float, float, float]:
        # Effects are "other minus best"; the verdict says how much better the best is.
        lo, hi = sorted((-sign * e.ci_low, -sign * e.ci_high))
        return -sign * e.diff, lo, hi

    def words(e: Effect) -> str:
        g, lo, hi = (fmt.format(x) for x in gap(e))
        return f"{g} {a.unit} [{lo}, {hi}]"

    op, p = (">" if sign > 0 else "<"), f"Holm p={a.p_holm:.2g}"
    dropped = [f"{c.value} (n={c.n})" for c in a.choices if c.n < min_per_choice]
    tail = f"; left out, too few trials: {', '.join(dropped)}" if dropped else ""
    if not a.significant:
        ns = ", ".join(f"{c.value} {c.n}" for c in a.choices if c.n >= min_per_choice)
        return (f"no detectable difference at this budget (n: {ns}; {p}; best {a.best} vs "
                f"{a.effects[0].choice}: {words(a.effects[0])}){tail}")
    # Effects run from the runner-up to the worst: name the first one the CI separates,
    # and the choices before it as not separable from the best.
    apart = next((i for i, e in enumerate(a.effects) if gap(e)[1] > 0), None)
    if apart is None:
        e = a.effects[-1]
        return (f"{word} ({p}), but no choice is separated from {a.best} by its CI: "
                f"{a.best} {op} {e.choice} by {words(e)} (n={e.n_vs} vs {e.n}){tail}")
    e = a.effects[apart]
    text = f"{word}: {a.best} {op} {e.choice} by {words(e)} (n={e.n_vs} vs {e.n}; {p})"
    close = [f"{x.choice} {words(x)}" for x in a.effects[:apart]]
    if close:
        text += f"; not separable from {a.best}: {', '.join(close)}"
    return text + tail


# ---------------------------------------------------------------------------- pruning, curves


def pruning_stats(trials: Sequence[FrozenTrial], *, max_epochs: int | None = None,
                  ) -> dict[str, Any]:
    """What pruning saved, counted in epochs (one intermediate value = one epoch).

    Keys: n_complete, n_pruned, n_failed, max_epochs, max_epochs_source, epochs_run,
    epochs_saved (sum over pruned trials of max_epochs - epochs reported), share_saved
    (epochs_saved / (epochs_run + epochs_saved)), epochs_saved_early_stopping (the same for
    complete trials that stopped early) and pruned_at ({epochs reported: n pruned trials}).
    ``max_epochs`` defaults to the most epochs any trial reported.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    source = "study settings"
    if max_epochs is None:
        max_epochs = max((len(t.intermediate_values) for t in complete + pruned), default=0)
        source = "most epochs reported by a trial"
    run = sum(len(t.intermediate_values) for t in complete + pruned)
    saved = sum(max(0, max_epochs - len(t.intermediate_values)) for t in pruned)
    early = sum(max(0, max_epochs - len(t.intermediate_values))
                for t in complete if t.intermediate_values)
    at: dict[int, int] = {}
    for t in pruned:
        at[len(t.intermediate_values)] = at.get(len(t.intermediate_values), 0) + 1
    return {"n_complete": len(complete), "n_pruned": len(pruned),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
            "max_epochs": max_epochs, "max_epochs_source": source,
            "epochs_run": run, "epochs_saved": saved,
            "share_saved": saved / (run + saved) if run + saved else float("nan"),
            "epochs_saved_early_stopping": early,
            "pruned_at": {str(k): at[k] for k in sorted(at)}}


def learning_curves(trials: Sequence[FrozenTrial], param: str) -> dict[str, dict[str, Any]]:
    """Median and quartiles of the intermediate values per epoch, by the value of ``param``.

    Uses complete and pruned trials that have ``param``. Later epochs only hold trials that
    survived pruning (``n_at_epoch`` says how many), so the curves flatter late epochs.
    Numeric params with more than ``MAX_LEVELS`` values are grouped into quartile ranges.
    """
    use = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
           and t.intermediate_values and param in t.params]
    if not use:
        return {}
    labels, order = _levels(param, [t.params[param] for t in use], use)
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        members = [t for t, lab in zip(use, labels, strict=True) if lab == name]
        if not members:
            continue
        steps = sorted(set().union(*(t.intermediate_values for t in members)))
        col = {s: j for j, s in enumerate(steps)}
        m = np.full((len(members), len(steps)), np.nan)
        for i, t in enumerate(members):
            for s, v in t.intermediate_values.items():
                m[i, col[s]] = v if math.isfinite(v) else np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where all diverged
            q25, med, q75 = np.nanquantile(m, [0.25, 0.5, 0.75], axis=0)
        out[name] = {"epochs": steps, "median": med.tolist(), "q25": q25.tolist(),
                     "q75": q75.tolist(), "n": len(members),
                     "n_at_epoch": np.isfinite(m).sum(axis=0).tolist()}
    return out


# ---------------------------------------------------------------------------- helpers


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.values
            and math.isfinite(t.values[0])]


def _sign(direction: StudyDirection | str) -> float:
    """+1 where larger is better; questions rank choices by ``sign * median``."""
    name = direction.name if isinstance(direction, StudyDirection) else str(direction)
    if name.lower() not in ("maximize", "minimize"):
        raise ConfigError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return 1.0 if name.lower() == "maximize" else -1.0


def _setting(study: optuna.Study, key: str) -> Any:
    """A setting from hpsearch's provenance; None for studies of other tools."""
    provenance = study.user_attrs.get("provenance")
    settings = provenance.get("settings") if isinstance(provenance, dict) else None
    return settings.get(key) if isinstance(settings, dict) else None


def _label(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _binary_labels(off: Any) -> tuple[str, str]:
    """("none", "any") for a categorical off value, ("0", "> 0") for a numeric one."""
    return (off, "any") if isinstance(off, str) else (_label(off), f"> {_label(off)}")


def _levels(param: str, xs: list[Any], trials: Sequence[FrozenTrial],
            ) -> tuple[list[str], list[str]]:
    """A group label for each raw value of ``param``, and all labels in display order."""
    distinct = set(xs)
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in distinct)
    if numeric and len(distinct) > MAX_LEVELS:
        edges = np.unique(np.quantile(np.asarray(xs, dtype=float), [0, 0.25, 0.5, 0.75, 1]))
        names = [f"[{lo:.3g}, {hi:.3g}{']' if j == len(edges) - 2 else ')'}"
                 for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
        bins = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(names) - 1)
        return [names[b] for b in bins], names
    # Categorical choices keep the order the space declares; numbers sort by value.
    dist = next((t.distributions[param] for t in trials if param in t.distributions), None)
    if isinstance(dist, CategoricalDistribution):
        order = [c for c in dist.choices if c in distinct]
        order += [x for x in distinct if x not in order]
    else:
        order = sorted(distinct, key=lambda x: (not numeric, x if numeric else str(x)))
    return [_label(x) for x in xs], [_label(x) for x in order]
