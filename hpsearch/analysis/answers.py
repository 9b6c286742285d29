"""What the analysis returns: plain dataclasses with a JSON-safe ``to_dict``.

``StudyAnalysis.to_dict()`` keys (schema 2; programs may rely on them):

- ``schema`` (2), ``study_name``, ``direction`` ("maximize" | "minimize", of objective 0),
  ``n_trials`` ({state name: count} for every ``TrialState``), ``best_value``,
  ``best_params``, ``best_trial_number``, ``sampler`` (from hpsearch's provenance, or null)
- ``importances``: {evaluator: [{param, value, ci_low, ci_high, noise, above_noise}]},
  sorted by value, desc; ``value`` is the normalized share (all params sum to 1), the CI a
  bootstrap band inside [0, 1], ``noise`` the share the same evaluator gives that param on
  shuffled objectives (95th percentile), ``above_noise`` whether the param clears the
  noise family-wise (null when not calibrated)
- ``importance_agreement``: {``pairs``: [{a, b, tau, n_params, same_top}], ``summary``}
- ``answers``: [{question, param, title, seed_claim, status, word, fidelity, choices:
  [{value, n, median, top_quantile, mean, n_end}], best, effects: [{choice, vs, diff,
  ci_low, ci_high, n, n_vs, p_value}], headline: {a, b, diff, ci_low, ci_high, p_value} |
  null, test, statistic, p_value, p_holm, significant, ci_level, change_p, needed, verdict,
  caveat, unit, settled, margin, family, kind, effect_by_epoch: [{epoch, label, a, b, diff,
  ci_low, ci_high}], curve: {param, x, effect, ci_low, ci_high, best} | null, best_region,
  trainability: {settled, verdict, p_value, p_holm, ci_level, margin, test, choices:
  {choice: {never_learned, n}}, pairs: [{a, b, diff, ci_low, ci_high, p_value}]} | null}].
  ``trainability`` answers "does the choice change how often training fails?" (rates in pts
  of trials; its own Holm family; null when the chance level is unknown), and every other
  key then describes the trials that learned. ``headline.selected`` names how the pair was
  picked when it is the largest of several. ``status`` is "answered", "not_sampled",
  "too_few_trials" or "all_failed". ``settled`` is "difference" (an interval at the
  question's Holm level excludes 0: ``significant``), "equivalent" (every interval lies
  inside +-``margin``) or "open"; ``family`` says where a question comes from ("seeds": the
  built-in questions; "study": one per other param the study sampled): both are one
  weighted Holm family (a study question weighs a quarter), interactions have their own;
  ``effect_by_epoch`` is the headline contrast at every analysed epoch (pointwise 95%
  intervals), the last one the verdict's. ``diff`` is ``choice - vs`` in ``unit`` ("pts":
  objective x 100), adjusted for the other params; the CI is at ``ci_level``, the level at
  which Holm's procedure decided this question, so it excludes 0 exactly when
  ``significant`` is true.
- ``interactions``: [{question, params, title, seed_claim, status, significant, settled,
  margin, estimate, ci_low, ci_high, p_value, p_holm, ci_level, verdict, levels: [{level,
  effect, ci_low, ci_high, n}], contrast, effect_by_epoch, unit, caveat}]: whether the
  effect of ``params[0]`` depends on ``params[1]``; ``estimate`` is the difference of its
  effect between the two levels of ``params[1]`` in ``contrast``
- ``pruning``: the keys of :func:`hpsearch.analysis.curves.pruning_stats`
- ``curves``: {param: {group: {epochs, median, q25, q75, n, n_at_epoch}}}
- ``notes``: [str], what could not be analysed and why
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpsearch.schema import OPEN

SCHEMA = 2


@dataclass
class Importance:
    param: str
    value: float          # normalized importance (all params of one evaluator sum to 1)
    ci_low: float         # bootstrap band, within [0, 1]; nan: no bootstrap
    ci_high: float
    noise: float = float("nan")   # 95th percentile of the share on shuffled objectives
    above_noise: bool | None = None


@dataclass
class ChoiceSummary:
    value: str            # the choice, or a group label ("> 0", "any", a quartile range)
    n: int                # finished trials with this choice (all of them count)
    median: float         # raw value at the answer's fidelity, objective units
    top_quantile: float   # 90th percentile, or 10th when minimizing: the good tail
    mean: float
    n_end: int            # of those, how many ran to the end of training


@dataclass
class Effect:
    choice: str
    vs: str               # the best choice
    diff: float           # choice - vs, adjusted, in `Answer.unit`
    ci_low: float
    ci_high: float
    n: int
    n_vs: int
    p_value: float        # this pair alone, unadjusted


@dataclass
class Answer:
    question: str
    param: str
    title: str
    seed_claim: str
    status: str           # "answered" | "not_sampled" | "too_few_trials" | "all_failed"
    word: str = "associated"       # "matters" where the trials were randomized
    fidelity: str = ""             # "end of training" or "epoch N (every trial reached it)"
    choices: list[ChoiceSummary] = field(default_factory=list)
    best: str | None = None
    effects: list[Effect] = field(default_factory=list)
    headline: dict[str, Any] | None = None  # the pair that decides the question
    test: str = ""
    statistic: float = float("nan")
    p_value: float = float("nan")  # min over pairs x number of pairs (Bonferroni)
    p_holm: float = float("nan")
    significant: bool = False
    ci_level: float = float("nan")
    change_p: float = float("nan")
    needed: str = ""               # what budget would settle it, when it is not settled
    verdict: str = ""
    caveat: str = ""
    unit: str = "pts"
    headline_winner: str | None = None     # the better choice of the headline pair
    settled: str = OPEN            # DIFFERENCE | EQUIVALENT | OPEN (hpsearch.schema)
    margin: float = float("nan")   # what "equivalent" means, in `unit` (null: not decided)
    family: str = "seeds"          # "seeds" (built-in) or "study" (its own params)
    kind: str = "choice"           # "choice" or "numeric"
    effect_by_epoch: list[dict[str, Any]] = field(default_factory=list)
    curve: dict[str, Any] | None = None    # numeric: the adjusted curve with its band
    best_region: str = ""          # numeric: where its best values lie
    # does the choice change how often training fails? (hpsearch.analysis.trainability;
    # None when the chance level is unknown)
    trainability: dict[str, Any] | None = None


@dataclass
class StudyAnalysis:
    study_name: str
    direction: str
    n_trials: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_trial_number: int | None
    sampler: str | None
    importances: dict[str, list[Importance]]
    importance_agreement: dict[str, Any]
    answers: list[Answer]
    pruning: dict[str, Any]
    curves: dict[str, dict[str, dict[str, Any]]]
    notes: list[str]
    interactions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the keys listed in the module docstring."""
        return {"schema": SCHEMA, **json_safe(dataclasses.asdict(self))}


def json_safe(obj: Any) -> Any:
    """Non-finite floats become None, numpy scalars Python ones, tuples lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
