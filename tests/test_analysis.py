"""Analysis on planted studies: trials made with known effects and no training at all."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Mapping

import numpy as np
import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpsearch import stats
from hpsearch.analysis import (
    StudyAnalysis,
    analyze,
    answer_questions,
    learning_curves,
    param_importances,
    pruning_stats,
)
from hpsearch.errors import ConfigError, StudyError
from hpsearch.space import PARAMS, Param, Value

# ---------------------------------------------------------------------------- planted studies

Effects = Mapping[str, Mapping[Value, float]]


def _draw(p: Param, rng: np.random.Generator) -> Value:
    if p.kind == "categorical":
        return p.choices[rng.integers(len(p.choices))]
    if p.step:  # dropout: 0.0, 0.1, ..., so "off" is drawn too
        return round(p.low + p.step * int(rng.integers(round((p.high - p.low) / p.step) + 1)),
                     10)
    x = (np.exp(rng.uniform(np.log(p.low), np.log(p.high))) if p.log
         else rng.uniform(p.low, p.high))
    return int(round(x)) if p.kind == "int" else float(x)


def planted_trials(n: int, *, seed: int = 0, effects: Effects | None = None,
                   noise: float = 0.01, base: float = 0.95, fixed: Mapping[str, Value] = (
                       {}), epochs: int = 0) -> list[FrozenTrial]:
    """Trials drawn like hpsearch's space (conditionals only when active).

    value = base + the planted effects of the trial's params + N(0, noise). ``fixed`` params
    are not in ``params`` (as when a preset fixes them). With ``epochs``, each trial reports
    a curve rising to its value.
    """
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        values: dict[str, Value] = dict(fixed)
        params, dists = {}, {}
        for p in PARAMS:
            if p.name not in fixed and p.active(values):
                values[p.name] = params[p.name] = _draw(p, rng)
                dists[p.name] = p.distribution()
        value = base + rng.normal(0, noise) + sum(
            effect.get(values.get(name), 0.0) for name, effect in (effects or {}).items())
        curve = {e: value - 0.1 / e for e in range(1, epochs + 1)}
        trials.append(create_trial(params=params, distributions=dists, value=value,
                                   intermediate_values=curve))
    return trials


def study_of(trials: list[FrozenTrial], direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    return study


def answer(answers: list, question: str):  # noqa: ANN201 (an Answer)
    return next(a for a in answers if a.question == question)


# ---------------------------------------------------------------------------- questions


@pytest.fixture(scope="module")
def bn_study() -> optuna.Study:
    """batch_norm "before" is 1.5 pts better than "after" (and "none"); noise sd 1 pt."""
    return study_of(planted_trials(150, seed=1, effects={"batch_norm": {"before": 0.015}}))


@pytest.fixture(scope="module")
def bn_analysis(bn_study: optuna.Study) -> StudyAnalysis:
    return analyze(bn_study)


def test_planted_effect_is_found_with_a_ci_that_covers_it(bn_analysis: StudyAnalysis) -> None:
    a = answer(bn_analysis.answers, "bn_placement")
    assert a.status == "answered" and a.significant and a.best == "before"
    assert [c.value for c in a.choices] == ["before", "after"]  # "none" is not compared
    (e,) = a.effects
    assert (e.choice, e.vs) == ("after", "before")
    assert e.ci_low <= -1.5 <= e.ci_high < 0  # after - before, in accuracy points
    assert a.verdict.startswith("matters: before > after by ")
    assert f"n={e.n_vs} vs {e.n}" in a.verdict and "observational" in a.caveat
    ranked = [imp.param for imp in bn_analysis.importances["ped_anova"]]
    assert "batch_norm" in ranked[:3]


def test_adaptive_sampler_verdicts_say_associated_not_matters(bn_study: optuna.Study) -> None:
    # TPE moves params together, so a study-level difference is an association only.
    trials = bn_study.get_trials(deepcopy=False)
    a = answer(answer_questions(trials, adaptive=True), "bn_placement")
    assert a.significant and a.verdict.startswith("associated: before > after by ")


def test_null_questions_are_not_called_significant() -> None:
    """200 planted studies with no effect anywhere: Holm keeps the family-wise rate ~alpha.

    The design (params) is drawn once and only the noise is redrawn: with values independent
    of params, the rank tests are valid conditionally on the design.
    """
    design = planted_trials(150, seed=2)
    rng = np.random.default_rng(3)
    n_studies, any_holm, raw = 200, 0, []
    for _ in range(n_studies):
        trials = [copy.copy(t) for t in design]
        for t, y in zip(trials, 0.95 + rng.normal(0, 0.01, len(trials)), strict=True):
            t.value = float(y)
        answers = [a for a in answer_questions(trials, n_bootstrap=0)  # no CIs: p only
                   if a.status == "answered"]
        assert len(answers) == 10
        any_holm += any(a.significant for a in answers)
        raw += [a.p_value < 0.05 for a in answers]
    assert any_holm / n_studies <= 0.09
    assert 0.03 <= np.mean(raw) <= 0.07  # per question, uncorrected: about alpha


def test_minimize_flips_which_choice_is_best() -> None:
    trials = planted_trials(150, seed=4, base=0.3, effects={"activation": {"gelu": -0.02}})
    a = answer(answer_questions(trials, direction="minimize"), "activation")
    assert a.best == "gelu" and a.significant
    assert all(e.diff > 0 for e in a.effects)  # others have a larger loss
    assert a.verdict.startswith("matters: gelu < ")
    assert a.choices[0].top_quantile <= a.choices[0].median  # the good tail is the low one


def test_binary_questions_group_off_against_on() -> None:
    trials = planted_trials(150, seed=5, effects={"batch_norm": {"none": -0.03}})
    answers = answer_questions(trials)
    bn, dropout = answer(answers, "batch_norm"), answer(answers, "dropout")
    assert [c.value for c in bn.choices] == ["none", "any"] and bn.best == "any"
    assert bn.significant and bn.effects[0].ci_high < 0
    assert [c.value for c in dropout.choices] == ["0", "> 0"]
    assert sum(c.n for c in dropout.choices) == 150


def test_dropout_is_compared_by_rate_when_0_is_never_drawn() -> None:
    # As in a preset that searches dropout in 0.3..0.6: no "off" group to compare with.
    trials = [t for t in planted_trials(300, seed=14) if 0.3 <= t.params["dropout"] <= 0.6]
    a = answer(answer_questions(trials), "dropout")
    assert a.status == "answered" and a.test == "kruskal-wallis"
    assert [c.value for c in a.choices] == ["0.3", "0.4", "0.5", "0.6"]
    assert a.verdict.endswith("dropout = 0 occurred in 0 trial(s), so the rates were compared "
                              "instead of off/on")


def test_too_few_trials_says_how_many_are_needed() -> None:
    trials = planted_trials(60, seed=6)
    trials = ([t for t in trials if t.params["batch_norm"] == "before"][:4]
              + [t for t in trials if t.params["batch_norm"] == "after"][:3])
    a = answer(answer_questions(trials, min_per_choice=5), "bn_placement")
    assert a.status == "too_few_trials" and not a.significant and a.best is None
    assert "need >= 5 per choice" in a.verdict and "have before 4, after 3" in a.verdict
    assert np.isnan(a.p_value) and np.isnan(a.p_holm)


def test_fixed_or_single_valued_param_is_not_sampled() -> None:
    trials = planted_trials(60, seed=7, fixed={"batch_norm": "before"})
    answers = answer_questions(trials)
    assert answer(answers, "bn_placement").status == "not_sampled"
    assert answer(answers, "batch_norm").status == "not_sampled"
    one_value = [t for t in planted_trials(200, seed=8) if t.params["init"] == "xavier"]
    a = answer(answer_questions(one_value), "init")
    assert a.status == "not_sampled" and "only xavier" in a.verdict


def test_small_groups_are_dropped_and_named() -> None:
    trials = planted_trials(200, seed=9)
    # Keep only 3 "flip" trials: too few to compare, so flip is left out of the test.
    flips = [t for t in trials if t.params["augmentation"] == "flip"]
    trials = [t for t in trials if t not in flips[3:]]
    a = answer(answer_questions(trials), "augmentation")
    assert a.status == "answered" and "flip" not in {e.choice for e in a.effects}
    assert "left out, too few trials: flip (n=3)" in a.verdict


# ---------------------------------------------------------------------------- any study


def test_foreign_study_with_unknown_params() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -3, 3)
        kind = trial.suggest_categorical("kind", ["a", "b", None])
        return (x - 1) ** 2 + (5.0 if kind == "a" else 0.0)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    result = analyze(study, evaluators=("ped_anova", "mdi"), n_bootstrap_importance=5)
    assert result.direction == "minimize" and result.best_value == pytest.approx(
        min(t.value for t in study.trials))
    assert all(a.status == "not_sampled" for a in result.answers)
    assert {i.param for i in result.importances["ped_anova"]} == {"x", "kind"}
    assert result.importance_agreement["pairs"][0]["n_params"] == 2
    notes = " ".join(result.notes)
    assert "does not know (kind, x)" in notes and "outside [0, 1]" in notes
    assert "intermediate values" in notes and result.curves == {}
    json.dumps(result.to_dict(), allow_nan=False)


def test_multi_objective_study_is_analysed_on_objective_0() -> None:
    single = planted_trials(100, seed=10, effects={"batch_norm": {"before": 0.02}})
    trials = [create_trial(params=t.params, distributions=t.distributions,
                           values=[t.value, 1.0 - t.value]) for t in single]
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials(trials)
    result = analyze(study)
    assert any("multi-objective" in n for n in result.notes)
    assert answer(result.answers, "bn_placement").best == "before"
    assert result.importances["ped_anova"] and result.best_value == max(t.value for t in single)


def test_no_finished_trials_and_bad_evaluator_are_errors() -> None:
    with pytest.raises(StudyError, match="no finished trials"):
        analyze(optuna.create_study())
    with pytest.raises(ConfigError, match="'shap'.*ped_anova"):
        analyze(optuna.create_study(), evaluators=("shap",))


def test_only_failed_and_pruned_trials() -> None:
    study = study_of([create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5}),
                      create_trial(state=TrialState.FAIL)])
    result = analyze(study)
    assert result.best_value is None and result.importances == {}
    assert all(a.status == "not_sampled" for a in result.answers)
    assert result.n_trials["PRUNED"] == 1 and result.n_trials["FAIL"] == 1


# ---------------------------------------------------------------------------- importance


def test_importance_ci_brackets_the_point_estimate(bn_study: optuna.Study) -> None:
    imps = param_importances(bn_study, n_bootstrap=10, seed=1)
    assert [i.value for i in imps] == sorted((i.value for i in imps), reverse=True)
    assert "batch_norm" in [i.param for i in imps[:3]]
    assert all(i.ci_low <= i.value <= i.ci_high for i in imps)  # median-bias corrected
    assert sum(i.value for i in imps) == pytest.approx(1.0)
    mdi = param_importances(bn_study, evaluator="mdi", n_bootstrap=5)
    assert "hidden_units" not in {i.param for i in mdi}  # conditional: not in every trial
    # Each CI belongs to its own param (Optuna's MDI mislabels unsorted `params`).
    assert mdi[0].param == "batch_norm" and mdi[0].value / 2 < mdi[0].ci_low < mdi[0].ci_high
    assert mdi[-1].ci_high < mdi[0].ci_low


def test_fanova_runs_once_and_is_compared_with_ped_anova() -> None:
    study = study_of(planted_trials(60, seed=11, effects={"batch_norm": {"before": 0.05}}))
    result = analyze(study, evaluators=("ped_anova", "fanova"), n_bootstrap_importance=5)
    assert result.importances["fanova"][0].param == "batch_norm"
    assert np.isnan(result.importances["fanova"][0].ci_low)  # one fit, no bootstrap
    (pair,) = result.importance_agreement["pairs"]
    # At 60 trials PED-ANOVA favours small conditional regimes (l2, lr_gamma): the two
    # rankings need not agree, and the summary must say which way it went.
    assert (pair["a"], pair["b"], pair["n_params"]) == ("ped_anova", "fanova", 13)
    assert "Kendall tau" in result.importance_agreement["summary"]
    assert "fanova: one fit" in " ".join(result.notes)


# ---------------------------------------------------------------------------- pruning, curves


def test_pruning_stats_counts_planted_epochs() -> None:
    curve = {e: 0.9 for e in range(1, 11)}
    trials = ([create_trial(value=0.9, intermediate_values=curve)] * 10
              + [create_trial(state=TrialState.PRUNED,
                              intermediate_values={1: 0.5, 2: 0.5, 3: 0.5})] * 5
              + [create_trial(value=0.9, intermediate_values={1: 0.9, 2: 0.9, 3: 0.9, 4: 0.9})]
              + [create_trial(state=TrialState.FAIL)])
    s = pruning_stats(trials)
    assert (s["n_complete"], s["n_pruned"], s["n_failed"]) == (11, 5, 1)
    assert (s["max_epochs"], s["epochs_run"], s["epochs_saved"]) == (10, 119, 35)
    assert s["share_saved"] == pytest.approx(35 / 154)
    assert s["epochs_saved_early_stopping"] == 6 and s["pruned_at"] == {"3": 5}
    assert pruning_stats(trials, max_epochs=20)["epochs_saved"] == 5 * 17


def test_analyze_reads_epochs_and_sampler_from_provenance() -> None:
    study = study_of(planted_trials(20, seed=12, epochs=4))
    study.set_user_attr("provenance", {"settings": {"epochs": 10, "sampler": "tpe"}})
    result = analyze(study, n_bootstrap_importance=0)
    p = result.pruning
    assert (p["max_epochs"], p["max_epochs_source"]) == (10, "study settings")
    assert any("chosen by the tpe sampler" in n for n in result.notes)
    study.set_user_attr("provenance", {"settings": {"epochs": 10, "sampler": "random"}})
    assert not any("sampler" in n for n in analyze(study, n_bootstrap_importance=0).notes)


def test_learning_curves_give_the_planted_quantiles() -> None:
    dist = {"batch_norm": CategoricalDistribution(("none", "before", "after"))}
    trials = [create_trial(params={"batch_norm": bn}, distributions=dist, value=0.9,
                           intermediate_values={1: y, 2: y + 0.1})
              for bn, ys in (("before", [0.1, 0.2, 0.3, 0.4, 0.5]), ("after", [0.7]))
              for y in ys]
    trials.append(create_trial(state=TrialState.PRUNED, params={"batch_norm": "after"},
                               distributions=dist, intermediate_values={1: 0.5}))
    curves = learning_curves(trials, "batch_norm")
    assert list(curves) == ["before", "after"]  # the space's order; "none" never ran
    before, after = curves["before"], curves["after"]
    assert before["epochs"] == [1, 2] and before["n"] == 5
    assert before["median"] == pytest.approx([0.3, 0.4])
    assert before["q25"] == pytest.approx([0.2, 0.3]) and before["q75"] == pytest.approx(
        [0.4, 0.5])
    assert after["n_at_epoch"] == [2, 1] and after["median"] == pytest.approx([0.6, 0.8])
    assert learning_curves(trials, "activation") == {}


def test_numeric_params_are_grouped_into_quartiles() -> None:
    curves = learning_curves(planted_trials(80, seed=13, epochs=3), "lr")
    assert len(curves) == 4 and sum(c["n"] for c in curves.values()) == 80
    assert list(curves)[0].startswith("[0.000") and list(curves)[-1].endswith("]")


# ---------------------------------------------------------------------------- output


def test_to_dict_is_json_with_the_documented_keys(bn_analysis: StudyAnalysis) -> None:
    d = json.loads(json.dumps(bn_analysis.to_dict(), allow_nan=False))
    assert list(d) == ["schema", "study_name", "direction", "n_trials", "best_value",
                       "best_params", "best_trial_number", "importances",
                       "importance_agreement", "answers", "pruning", "curves", "notes"]
    assert set(d["n_trials"]) == {s.name for s in TrialState}
    assert set(d["importances"]["ped_anova"][0]) == {"param", "value", "ci_low", "ci_high"}
    a = next(x for x in d["answers"] if x["question"] == "bn_placement")
    assert set(a) == {"question", "param", "title", "seed_claim", "status", "choices", "best",
                      "effects", "test", "statistic", "p_value", "p_holm", "significant",
                      "verdict", "caveat", "unit"}
    assert set(a["choices"][0]) == {"value", "n", "median", "top_quantile", "mean"}
    assert set(a["effects"][0]) == {"choice", "vs", "diff", "ci_low", "ci_high", "n", "n_vs"}
    assert d["importance_agreement"]["summary"] == "1 evaluator(s): nothing to compare"


def test_analysis_does_not_import_torch() -> None:
    code = "import sys, hpsearch.analysis; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- stats helpers


def test_holm_matches_the_hand_computed_values() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]).size == 0


def test_bias_corrected_ci_moves_the_interval_onto_the_estimate() -> None:
    samples = np.linspace(0.0, 1.0, 101)  # median 0.5, 95% interval [0.025, 0.975]
    assert stats.median_bias_corrected_ci(samples, 0.7) == pytest.approx((0.225, 1.175))
    assert np.isnan(stats.median_bias_corrected_ci(np.full(3, np.nan), 0.7)[0])


def test_median_diff_ci_and_rank_tests() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 400)
    diff, lo, hi = stats.median_diff_ci(a, b, n_bootstrap=1000, rng=rng)
    assert lo < 1.0 < hi and lo < diff < hi and hi - lo < 0.5
    assert stats.compare_groups([a, b])[0] == "mann-whitney"
    assert stats.compare_groups([a, b, b])[0] == "kruskal-wallis"
    assert stats.compare_groups([np.ones(5), np.ones(6)])[2] == 1.0  # all equal: no evidence
    # Chunked resampling gives the same kind of answer for a big group.
    assert stats.bootstrap_medians(np.arange(30_000.0), 100, rng).std() < 200
