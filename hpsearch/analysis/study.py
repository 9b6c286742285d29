"""Analyse a whole study: the questions, importances, pruning and learning curves, from
one read of its trials (:func:`analyze`)."""


from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.analysis.answers import Answer, Importance, StudyAnalysis
from hpsearch.analysis.curves import learning_curves, pruning_stats
from hpsearch.analysis.importance import EVALUATORS, agreement, check_evaluator, importances, slim
from hpsearch.analysis.interactions import answer_interactions
from hpsearch.analysis.matrix import build_design
from hpsearch.analysis.questions import answer_questions, resolve_margin
from hpsearch.analysis.table import finished_table
from hpsearch.analysis.trainability import TOLERANCE, never_learned, study_chance
from hpsearch.errors import ConfigError, StudyError
from hpsearch.optuna_private import enqueued
from hpsearch.space import (
    INTERACTION_BY_ID,
    INTERACTIONS,
    PARAM_BY_NAME,
    QUESTIONS,
    Interaction,
    interaction,
)

# Samplers whose draws do not depend on earlier results: their studies are experiments.
RANDOMIZED_SAMPLERS = ("random", "qmc")
FEW_FOR_IMPORTANCE = 200  # below this many trials, importances are rough (see notes)


def analyze(study: optuna.Study, *, evaluators: Sequence[str] = ("ped_anova",),
            n_bootstrap_importance: int = 20, n_noise: int = 20, alpha: float = 0.05,
            seed: int = 0, min_per_choice: int = 5, margin: float | None = None,
            questions: Sequence[str] = (), interactions: Sequence[str] = (),
            chance: float | None = None) -> StudyAnalysis:
    """Everything the report shows about ``study``, from one read of its trials.

    ``n_bootstrap_importance`` refits give each importance a band, ``n_noise`` fits on
    shuffled objectives its noise floor (one evaluator fit each; fANOVA is fitted once,
    about a minute at 1,000 trials). ``margin``: what "equivalent" means, in the answers'
    unit (default 0.5 accuracy points, :data:`hpsearch.settings.MARGIN`).
    ``questions``: only these questions (ids, params or interaction ids; the answers are
    those of the full analysis). ``interactions``: more interaction questions, as built-in
    ids or ``A:B`` (any two params of the study), after the built-in ones. Raises
    ``chance``: the objective's chance level (1 / classes), for a study whose dataset
    hpsearch does not know (:func:`hpsearch.analysis.trainability.study_chance`): trials
    that never learned are failures to train, answered apart (each answer's
    ``trainability``) and left out of the accuracy answers. Raises
    :class:`StudyError` if no trial has finished, :class:`ConfigError` for a name the study
    does not have.
    """
    # One BLAS thread: the fits are small (trials x ~80 columns), so threads only contend;
    # measured on 1,000 planted trials, 2 cores: 6 s of CPU with one thread, 14 s with many.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _analyze(study, evaluators, n_bootstrap_importance, n_noise, alpha, seed,
                        min_per_choice, margin, questions, interactions, chance)


def _analyze(study: optuna.Study, evaluators: Sequence[str], n_bootstrap_importance: int,
             n_noise: int, alpha: float, seed: int, min_per_choice: int,
             margin: float | None, questions: Sequence[str], interactions: Sequence[str],
             chance: float | None) -> StudyAnalysis:
    for name in evaluators:
        check_evaluator(name)
    trials = study.get_trials(deepcopy=False)
    if not any(t.state.is_finished() for t in trials):
        raise StudyError(f"study {study.study_name!r} has no finished trials yet")
    notes: list[str] = []
    sampler = schema.setting(study, "sampler")
    repeats = repeated_draws(trials)
    if repeats:
        pairs = ", ".join(f"#{k} = #{v}" for k, v in sorted(repeats.items()))
        notes.append(f"{len(repeats)} trial(s) repeat an earlier one's every param "
                     f"({pairs}): left out. A sampler's draws cannot repeat a continuous "
                     "param (hpsearch's draws used to restart in every process: a resumed "
                     "study, or a second worker, drew the same configs again)")
        trials = [t for t in trials if t.number not in repeats]
    direction = study.directions[0]
    if len(study.directions) > 1:
        notes.append(f"multi-objective study ({len(study.directions)} objectives): questions "
                     "and importances use objective 0 only; trade-offs are not analysed")
    table = finished_table(trials, direction)
    complete = [t for t, c in zip(table.trials, table.complete, strict=True) if c]
    best = max(complete, key=lambda t: table.sign * t.values[0]) if complete else None
    foreign = sorted({p for t in table.trials for p in t.params} - set(PARAM_BY_NAME))
    if foreign:
        notes.append(f"params hpsearch does not know ({', '.join(foreign)}): each gets a "
                     "question of its own (the \"study\" Holm family)")
    if table.trials and table.unit != "pts":
        notes.append("the objective is not an accuracy in [0, 1] that is maximized: effects "
                     "are in objective units, and \"equivalent\" needs a margin in those "
                     "units (--margin)" if margin is None else "the objective is not an "
                     "accuracy in [0, 1] that is maximized: effects are in objective units")
    epochs = schema.setting(study, "epochs")
    randomized = True if sampler in RANDOMIZED_SAMPLERS else None
    if sampler is None and table.trials:
        notes.append("the sampler is not recorded (not an hpsearch study): differences read "
                     "\"associated\", since the trials may have been chosen adaptively")
    # A user's objective (optimize --objective): its params are its own, so the built-in
    # questions (hpsearch's models, the seeds' claims) do not apply to a param that shares a
    # name with one of hpsearch's; each param gets a question of its own.
    own = schema.objective(study) is not None
    step = "epoch" if schema.provenance(study) is not None and not own else "step"
    specs = _interaction_specs(table, interactions, builtin=not own)
    _check_names(table, questions, specs)
    chance, source = study_chance(study.user_attrs, chance)
    learned = table
    if chance is not None and table.unit == "pts":
        failed = never_learned(table, chance)
        notes.append(f"{int(failed.sum())} of {len(table)} finished trials never learned "
                     f"(best value within {TOLERANCE:.0%} of the way from chance to 100%; "
                     f"{source}): each question answers whether its choice changes how often "
                     "training fails (trainability) apart from accuracy among the trials that "
                     "learned (the accuracy answers, interactions and importances)")
        learned = finished_table([t for t, f in zip(table.trials, failed, strict=True)
                                  if not f], direction)
    elif chance is None and table.unit == "pts":
        notes.append(source)
    answers = answer_questions(table.trials, direction=direction, alpha=alpha,
                               min_per_choice=min_per_choice, randomized=randomized,
                               margin=margin, only=questions, step=step,
                               chance=chance if table.unit == "pts" else None,
                               questions=() if own else QUESTIONS)
    table = learned
    word = "matters" if randomized or (table.trials and all(
        schema.randomized(t) for t in table.trials)) else "associated"
    inter = answer_interactions(
        table, build_design(table.trials, [], min_per_choice), specs, alpha=alpha,
        min_per_choice=min_per_choice, margin=resolve_margin(margin, table.unit), word=word,
        step=step) if table.trials else []
    if questions:  # --question narrows; an interaction the user named is still asked
        named = {interaction(n).id for n in interactions}
        inter = [r for r in inter if r["question"] in questions or r["question"] in named
                 or r["question"] not in INTERACTION_BY_ID]
    if schema.provenance(study) is None:
        _not_ours(answers, inter, epochs=any(table.curves))
    if trials and all(t.state == TrialState.FAIL for t in trials):
        for a in answers:
            a.status, a.verdict = "all_failed", _all_failed(trials)
    return StudyAnalysis(
        study_name=study.study_name, direction=direction.name.lower(),
        n_trials={s.name: sum(t.state == s for t in trials) for s in TrialState},
        best_value=best.values[0] if best else None,
        best_params=dict(best.params) if best else {},
        best_trial_number=best.number if best else None, sampler=sampler,
        importances=(ranked := _importances(table, direction, evaluators, notes,
                                            n_bootstrap_importance, n_noise, seed, alpha)),
        importance_agreement=agreement(ranked), answers=answers,
        pruning=pruning_stats(trials, max_epochs=epochs if type(epochs) is int else None),
        curves=_curves(trials, notes), notes=notes + _disagreements(answers, ranked),
        interactions=inter)


# An importance share this large is "the param that matters" on the importance side.
LEADING_SHARE = 0.3


def _disagreements(answers: Sequence[Answer], ranked: dict[str, list[Importance]],
                   ) -> list[str]:
    """A note for each param where importances and verdicts seem to disagree, saying why
    they can: an importance describes where the good trials are (how much of the spread of
    values at the epoch every trial reached goes with the param, the good region weighing
    most), a verdict the param's whole compared range at the end of training, adjusted for
    the other params. The SVM study's gamma carried 95% of the importance while its verdict
    was open, with no word on why."""
    out = []
    for name, imps in ranked.items():
        for imp in imps:
            a = next((x for x in answers if x.param == imp.param and x.status == "answered"),
                     None)
            if a is None:
                continue
            leads = imp.value >= LEADING_SHARE and imp.above_noise is not False
            faint = imp.above_noise is False
            if leads and a.settled != "difference":
                out.append(f"{imp.param} carries {imp.value:.0%} of the importance ({name}) "
                           f"while its verdict is {a.settled}: importances describe where the "
                           "good trials are (at the epoch every trial reached, every trial "
                           "counted), verdicts the whole compared range at the end of "
                           "training with the other params held fixed")
            elif faint and a.settled == "difference":
                out.append(f"{imp.param}'s importance ({name}) is within its noise floor "
                           f"while its verdict is a difference: the importance spreads the "
                           "study's variance over every param, the verdict tests this "
                           "param's own contrast with the other params held fixed")
    return out


# A study hpsearch did not make: verify cannot retrain its models from the study alone.
NO_OBJECTIVE = ("verify needs the study's objective to retrain it (hpsearch verify STORAGE "
                "--objective FILE.py:NAME)")


def _not_ours(answers: Sequence[Any], inter: Sequence[dict[str, Any]], *,
              epochs: bool) -> None:
    """The words of a study another tool made: no promise of a verify that cannot run
    there (it needs the objective), and, when no trial reported a value per epoch, no
    "end of training" and no effect over training (there is one value per trial)."""
    def words(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        text = text.replace("hpsearch verify needs far fewer runs",
                            "paired re-runs need far fewer: " + NO_OBJECTIVE)
        text = text.replace("`hpsearch verify STORAGE`", NO_OBJECTIVE)
        text = text.replace("run " + NO_OBJECTIVE, NO_OBJECTIVE)
        if not epochs:
            text = text.replace("end of training; ", "").replace("end of training",
                                                                 "final values")
        return text

    for a in answers:
        for key in ("verdict", "caveat", "needed", "fidelity"):
            setattr(a, key, words(getattr(a, key)))
        if not epochs:
            a.effect_by_epoch = []
    for x in inter:
        for key in ("verdict", "caveat", "needed"):
            x[key] = words(x.get(key))
        if not epochs:
            x["effect_by_epoch"] = []


def repeated_draws(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """Finished trials a sampler drew whose every param repeats an earlier finished one's,
    where a param is a continuous float: ``{repeat's number: the first one's}``.

    A sampler's draw (uniform, or from TPE's densities) repeats a continuous value with
    probability 0, so such a trial is a replayed sequence: Optuna's samplers seed their
    generators once per process, so a resumed study drew its first configs again and
    workers drew each other's, until hpsearch seeded every trial's draws
    (:class:`hpsearch.optimize.randomized.TrialSeededRandom`). Trials whose params were
    enqueued (a person's replicate) are not draws and stay. A repeat of a failed trial
    stays too: the failure left no data, so the repeat is that config's only one.
    """
    first: dict[tuple[tuple[str, Any], ...], int] = {}
    out: dict[int, int] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or enqueued(t) \
                or not any(isinstance(d, FloatDistribution) and d.step is None
                           for d in t.distributions.values()):
            continue
        key = tuple(sorted(t.params.items()))
        if key in first:
            out[t.number] = first[key]
        else:
            first[key] = t.number
    return out


def _interaction_specs(table: Any, names: Sequence[str], *,
                       builtin: bool = True) -> list[Interaction]:
    """The built-in interactions (``builtin``), then the requested ones (a param the study
    lacks is an error: the user named it)."""
    specs = list(INTERACTIONS) if builtin else []
    have = {p for t in table.trials for p in t.params}
    for name in names:
        spec = interaction(name)
        missing = [p for p in spec.params if p not in have]
        if missing:
            raise ConfigError(f"interaction {name!r}: the study has no param "
                              f"{' or '.join(missing)} (its params: {', '.join(sorted(have))})")
        if spec.id not in {s.id for s in specs}:
            specs.append(spec)
    return specs


def _check_names(table: Any, questions: Sequence[str], specs: Sequence[Interaction]) -> None:
    """Every name in ``questions`` is a question, a param of the study or an interaction."""
    known = {q.id for q in QUESTIONS} | {p for t in table.trials for p in t.params} | {
        s.id for s in specs}
    unknown = [q for q in questions if q not in known]
    if unknown:
        raise ConfigError(f"unknown question {', '.join(map(repr, unknown))}: choose from "
                          f"{', '.join(sorted(known))}")


def param_importances(study: optuna.Study, *, evaluator: str = "ped_anova",
                      n_bootstrap: int = 20, n_noise: int = 20, seed: int = 0,
                      alpha: float = 0.05) -> list[Importance]:
    """Normalized importances of ``study``'s params, most important first, with bands.

    ``evaluator`` is "ped_anova" (Optuna 5's default; ranks conditional params too),
    "fanova" or "mdi" (both only rank params present in every trial). Every finished trial
    counts, at the epoch every one of them reached (pruned trials included). The band is
    the percentile interval over ``n_bootstrap`` refits on resampled trials, shifted onto
    the estimate and kept in [0, 1]: a stability band, not calibrated coverage. The noise
    floor comes from ``n_noise`` fits on shuffled objectives (see :mod:`.importance`).
    """
    check_evaluator(evaluator)
    table = finished_table(study.get_trials(deepcopy=False), study.directions[0])
    if len(table) < 2:
        raise StudyError(f"study {study.study_name!r} has {len(table)} finished trial(s) "
                         "with a value; importances need at least 2")
    values = list(table.value_at(table.levels()[0]) / table.scale)
    return importances(slim(table.trials, values),
                       study.directions[0], evaluator, n_bootstrap=n_bootstrap,
                       n_noise=n_noise, seed=seed, alpha=alpha)[0]


def _importances(table: Any, direction: Any, evaluators: Sequence[str], notes: list[str],
                 n_bootstrap: int, n_noise: int, seed: int, alpha: float,
                 ) -> dict[str, list[Importance]]:
    out: dict[str, list[Importance]] = {}
    if len(table) < 2:
        notes.append(f"{len(table)} finished trial(s) with a value: no importances")
        return out
    seen: dict[str, set[str]] = {}
    for t in table.trials:
        for p, v in t.params.items():
            seen.setdefault(p, set()).add(repr(v))
    varied = [p for p, values in seen.items() if len(values) > 1]
    if len(varied) <= 1:
        notes.append(f"the study varies {len(varied)} param(s): importance is trivial (one "
                     "param has it all), so none is drawn")
        return out
    level = table.levels()[0]
    if len(table) < FEW_FOR_IMPORTANCE:
        notes.append(f"importances from {len(table)} trials are rough: read them against "
                     "their noise floor (the share a param gets on shuffled objectives)")
    if level:
        notes.append(f"importances use every finished trial's value at epoch {level}, the "
                     "epoch all of them reached")
    trials = slim(table.trials, list(table.value_at(level) / table.scale))
    for name in evaluators:
        resampled = EVALUATORS[name].resampled
        if not resampled:
            notes.append(f"{name}: one fit, no band or noise floor (too slow to refit)")
        try:
            out[name], more = importances(trials, direction, name, n_bootstrap=n_bootstrap,
                                          n_noise=n_noise, seed=seed, alpha=alpha)
            notes += more
        except StudyError as exc:
            notes.append(str(exc))
    return out


def _curves(trials: list[FrozenTrial], notes: list[str]) -> dict[str, Any]:
    curves = {}
    for param in dict.fromkeys(q.param for q in QUESTIONS):
        if curve := learning_curves(trials, param):
            curves[param] = curve
    if not any(t.intermediate_values for t in trials):
        notes.append("no trial reported intermediate values: no learning curves, and the "
                     "epochs pruning saved are unknown")
    return curves


def _all_failed(trials: list[FrozenTrial]) -> str:
    reasons = Counter(str(schema.failure_reason(t, "no reason recorded"))[:120]
                      for t in trials)
    reason, n = reasons.most_common(1)[0]
    return f"all {len(trials)} trials failed, so nothing can be compared (most common reason, " \
           f"{n}x: {reason})"


