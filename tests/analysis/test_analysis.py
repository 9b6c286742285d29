"""Analysis on planted studies: known effects, real Optuna samplers and pruners, no training.

The rates over many studies are measured by ``scripts/check_answers.py``; these tests pin
the behaviour on a few fixed seeds each.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpsearch.analysis import (
    StudyAnalysis,
    analyze,
    answer_questions,
    learning_curves,
    param_importances,
    pruning_stats,
    repeated_draws,
)
from hpsearch.errors import ConfigError, StudyError
from hpsearch.planted import BN_TRUTH, NULL_TRUTH, Truth, planted_study
from hpsearch.space.params import PARAMS, Param, Value

optuna.logging.set_verbosity(optuna.logging.ERROR)


def random_study(truth: Truth, n: int = 100, seed: int = 0, **kw) -> optuna.Study:
    return planted_study(truth, n, sampler=optuna.samplers.RandomSampler(seed=seed),
                         pruner=optuna.pruners.MedianPruner(), seed=seed, **kw)


def by_id(answers: list) -> dict:
    return {a.question: a for a in answers}


def excludes_zero(a) -> bool:  # noqa: ANN001 (an Answer)
    return a.headline["ci_low"] * a.headline["ci_high"] > 0


@pytest.fixture(scope="module")
def bn_study() -> optuna.Study:
    """Batch norm +0.7 pts vs none (before +0.45 over after), noise 0.4, lr dominant."""
    return random_study(BN_TRUTH, seed=101)


@pytest.fixture(scope="module")
def bn_analysis(bn_study: optuna.Study) -> StudyAnalysis:
    return analyze(bn_study, n_bootstrap_importance=5, n_noise=10)


# ---------------------------------------------------------------------------- answers


def test_planted_batch_norm_effects_are_found(bn_analysis: StudyAnalysis) -> None:
    a = by_id(bn_analysis.answers)
    bn, place = a["batch_norm"], a["bn_placement"]
    assert bn.significant and bn.best == "any"
    assert place.significant and place.best == "before"
    # The planted sizes lie in the intervals: any - none 0.7, before - after 0.45.
    assert bn.headline["a"] == "none" and bn.headline["ci_low"] < -0.7 < bn.headline["ci_high"]
    assert place.headline["ci_low"] < 0.45 < place.headline["ci_high"]
    assert place.verdict.startswith("associated: before > after by ")
    assert "Holm p=" in place.verdict and "(end of training;" in place.verdict
    assert bn.settled == place.settled == "difference" and place.margin == 0.5
    seeds = [x for x in a.values() if x.family == "seeds"]
    assert not any(x.significant for x in seeds if x.question not in ("batch_norm",
                                                                      "bn_placement"))


def test_every_finished_trial_counts(bn_study: optuna.Study, bn_analysis: StudyAnalysis) -> None:
    states = [t.state for t in bn_study.trials]
    n_complete, n_pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    assert n_pruned > n_complete  # the median pruner stopped most trials ...
    bn = by_id(bn_analysis.answers)["batch_norm"]
    assert sum(c.n for c in bn.choices) == n_complete + n_pruned  # ... and all of them count
    assert sum(c.n_end for c in bn.choices) == n_complete


def test_replayed_draws_are_left_out_and_said(bn_study: optuna.Study) -> None:
    """A trial whose every param (a continuous one among them) repeats an earlier finished
    trial's is a replayed random sequence, not a draw: left out, with a note. A person's
    enqueued replicate and the repeat of a failed trial stay, and so does a repeat where
    every param is a choice (two draws can agree there)."""
    src = bn_study.get_trials(states=(TrialState.COMPLETE,))[:12]
    study = optuna.create_study(direction="maximize")
    for t in src[:11]:
        study.add_trial(t)
    study.add_trial(src[0])  # #11 replays #0
    study.add_trial(create_trial(state=TrialState.FAIL, params=src[11].params,
                                 distributions=src[11].distributions))
    study.add_trial(src[11])  # #13 repeats a failed trial: that config's only data
    study.add_trial(create_trial(  # #14: enqueued, as study.enqueue_trial marks them
        value=src[2].value, params=src[2].params, distributions=src[2].distributions,
        user_attrs=src[2].user_attrs, system_attrs={"fixed_params": src[2].params}))
    choices = {"c": CategoricalDistribution(["a", "b"])}
    study.add_trial(create_trial(value=0.5, params={"c": "a"}, distributions=choices))
    study.add_trial(create_trial(value=0.6, params={"c": "a"}, distributions=choices))
    study.add_trial(src[1])  # #17 replays #1
    assert repeated_draws(study.trials) == {11: 0, 17: 1}
    notes = analyze(study, n_bootstrap_importance=0, n_noise=0).notes
    assert any(n.startswith("2 trial(s) repeat an earlier one's every param (#11 = #0, "
                            "#17 = #1): left out") for n in notes), notes


def test_intervals_agree_with_the_decision(bn_analysis: StudyAnalysis) -> None:
    for a in bn_analysis.answers:
        assert a.status == "answered"
        assert a.significant == excludes_zero(a), a.verdict
        assert 0.95 <= a.ci_level < 1  # Holm's level for this question, within its pairs
        untested = "no interval it can vouch for" in a.verdict
        assert not untested or a.settled == "open"
        for e in a.effects:  # a choice too few trials carried to the end has no estimate
            assert e.ci_low <= e.diff <= e.ci_high or all(
                math.isnan(x) for x in (e.diff, e.ci_low, e.ci_high)) or (
                untested and math.isnan(e.ci_low) and math.isnan(e.ci_high))
            assert -100 <= e.ci_low and e.ci_high <= 100 or math.isnan(e.ci_low)


def test_unsettled_questions_say_what_it_would_take(bn_analysis: StudyAnalysis) -> None:
    open_ = [a for a in bn_analysis.answers if a.settled == "open" and a.family == "seeds"]
    assert open_ and all(a.verdict.startswith("open: no difference detected nor equivalence "
                                              "within +-0.50 pts") for a in open_)
    assert all("finished trials" in a.needed or "likely smaller" in a.needed
               or "could show equivalence" in a.needed for a in open_)
    needed = [int(a.needed.split("about ")[1].split()[0]) for a in open_
              if a.needed.startswith("about")]
    assert needed and all(n > 100 for n in needed)


def test_null_random_studies_call_nothing() -> None:
    """Eight null studies: with Holm over the questions, none may call anything here
    (scripts/check_answers.py measures the rate over many more)."""
    calls = [[a.question for a in answer_questions(random_study(NULL_TRUTH, seed=s).trials,
                                                   study_params=False)
              if a.significant] for s in range(200, 208)]
    assert sum(bool(c) for c in calls) <= 1, calls


def test_tpe_study_finds_batch_norm_and_calls_no_null() -> None:
    """Optuna's multivariate TPE draws batch norm 'before' in most trials; adjusted for the
    learning rate and the rest, the effect is still found and no null question called."""
    study = planted_study(BN_TRUTH, 150, sampler=optuna.samplers.TPESampler(
        seed=3, multivariate=True), pruner=optuna.pruners.MedianPruner(), seed=3)
    a = by_id(answer_questions(study.trials, study_params=False))
    assert a["batch_norm"].significant and a["batch_norm"].best == "any"
    assert not any(x.significant for q, x in a.items() if q not in ("batch_norm", "bn_placement"))
    assert a["batch_norm"].word == "associated"


def test_slow_starters_are_followed_to_the_end() -> None:
    """Effects that grow over the epochs: the epoch-1 effect is a quarter of the final one,
    and the answer is the end-of-training effect, with a caveat that says it changed."""
    truth = dataclasses.replace(BN_TRUTH, curve="slow")
    bn = by_id(answer_questions(random_study(truth, 150, seed=6).trials))["batch_norm"]
    assert [c.n_end for c in bn.choices] == [11, 23]  # enough of each ran to the end
    assert bn.fidelity == "end of training" and bn.change_p < 0.05
    assert "changed after epoch 1" in bn.caveat
    assert bn.significant and bn.headline["ci_low"] < -0.7 < bn.headline["ci_high"]
    # Even where only 4 trials without batch norm ran on, they carry its effect to the end
    # (an early effect never stands in for it): the planted 0.7 lies in the interval.
    thin = by_id(answer_questions(random_study(truth, 150, seed=4).trials))["batch_norm"]
    assert thin.choices[0].n_end < 5
    assert thin.headline["ci_low"] < -0.7 < thin.headline["ci_high"]
    assert thin.effect_by_epoch[0]["diff"] > -0.5  # a quarter of it at epoch 1


def test_minimize_flips_which_choice_is_best() -> None:
    study = random_study(Truth(effects={"activation": {"gelu": 2.0}}), seed=5)
    flipped = [create_trial(params=t.params, distributions=t.distributions, state=t.state,
                            value=None if t.value is None else 1 - t.value,
                            intermediate_values={e: 1 - v for e, v in
                                                 t.intermediate_values.items()})
               for t in study.trials]
    a = by_id(answer_questions(flipped, direction="minimize"))["activation"]
    assert a.best == "gelu" and a.significant and a.verdict.startswith("associated: gelu < ")
    assert all(e.diff > 0 for e in a.effects if not math.isnan(e.diff))  # larger losses


def test_randomized_trials_license_matters() -> None:
    study = random_study(BN_TRUTH, seed=101)
    a = by_id(answer_questions(study.trials, randomized=True))["batch_norm"]
    assert a.word == "matters" and a.verdict.startswith("matters: any > none")
    assert "drawn at random" in a.caveat


# ---------------------------------------------------------------------------- edge cases


def _draw(p: Param, rng: np.random.Generator) -> Value:
    if p.kind == "categorical":
        return p.choices[rng.integers(len(p.choices))]
    if p.step:  # dropout: 0.0, 0.1, ..., so "off" is drawn too
        return round(p.low + p.step * int(rng.integers(round((p.high - p.low) / p.step) + 1)),
                     10)
    x = (np.exp(rng.uniform(np.log(p.low), np.log(p.high))) if p.log
         else rng.uniform(p.low, p.high))
    return int(round(x)) if p.kind == "int" else float(x)


def drawn_trials(n: int, seed: int = 0, fixed: dict[str, Value] | None = None,
                 ) -> list[FrozenTrial]:
    """Complete trials with values independent of their params (no effect anywhere)."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        values: dict[str, Value] = dict(fixed or {})
        params, dists = {}, {}
        for p in PARAMS:
            if p.name not in values and p.active(values):
                values[p.name] = params[p.name] = _draw(p, rng)
                dists[p.name] = p.distribution()
        trials.append(create_trial(params=params, distributions=dists,
                                   value=0.95 + rng.normal(0, 0.01)))
    return trials


def test_dropout_is_compared_by_rate_when_0_is_never_drawn() -> None:
    trials = [t for t in drawn_trials(400, seed=14) if 0.3 <= t.params["dropout"] <= 0.6]
    a = by_id(answer_questions(trials))["dropout"]
    assert a.status == "answered" and [c.value for c in a.choices] == ["0.3", "0.4", "0.5",
                                                                       "0.6"]
    assert "dropout=0." in a.verdict


def test_too_few_trials_and_fixed_params() -> None:
    trials = drawn_trials(60, seed=6)
    few = ([t for t in trials if t.params["batch_norm"] == "before"][:4]
           + [t for t in trials if t.params["batch_norm"] == "after"][:3])
    a = by_id(answer_questions(few))["bn_placement"]
    assert a.status == "too_few_trials" and not a.significant and a.best is None
    assert "need >= 5 per choice" in a.verdict and "before 4, after 3" in a.verdict
    fixed = by_id(answer_questions(drawn_trials(60, seed=7, fixed={"batch_norm": "before"})))
    assert fixed["bn_placement"].status == fixed["batch_norm"].status == "not_sampled"
    one = by_id(answer_questions([t for t in drawn_trials(200, seed=8)
                                  if t.params["init"] == "xavier"]))["init"]
    assert one.status == "not_sampled" and "only init = xavier occurs" in one.verdict


def test_foreign_study_with_unknown_params() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -3, 3)
        kind = trial.suggest_categorical("kind", ["a", "b", None])
        return (x - 1) ** 2 + (5.0 if kind == "a" else 0.0)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    result = analyze(study, evaluators=("ped_anova", "mdi"), n_bootstrap_importance=5,
                     n_noise=10)
    assert result.direction == "minimize" and result.best_value == pytest.approx(
        min(t.value for t in study.trials))
    own = by_id([a for a in result.answers if a.family == "study"])
    assert all(a.status == "not_sampled" for a in result.answers if a.family == "seeds")
    assert set(own) == {"x", "kind"} and own["x"].kind == "numeric"
    # x: a parabola with its minimum at 1 (the loss is minimized), in objective units
    assert own["x"].settled == "difference" and own["x"].unit == "units"
    assert 0.5 <= float(own["x"].best) <= 1.5 and "x in [" in own["x"].best_region
    assert own["kind"].settled == "difference" and own["kind"].best != "a"
    assert "equivalent" not in own["kind"].verdict  # no margin for a loss unless given
    ped = {i.param: i for i in result.importances["ped_anova"]}
    assert set(ped) == {"x", "kind"} and ped["x"].above_noise  # x: most of the spread
    notes = " ".join(result.notes)
    assert "does not know (kind, x)" in notes and "not an accuracy" in notes
    assert "sampler is not recorded" in notes and result.curves == {}
    json.dumps(result.to_dict(), allow_nan=False)


def test_multi_objective_study_is_analysed_on_objective_0(bn_study: optuna.Study) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials([create_trial(params=t.params, distributions=t.distributions,
                                   values=[t.value, 1.0 - t.value])
                      for t in bn_study.trials if t.state == TrialState.COMPLETE])
    result = analyze(study, n_bootstrap_importance=0, n_noise=0)
    assert any("multi-objective" in n for n in result.notes)
    assert result.best_value == max(t.values[0] for t in study.trials)


def test_no_finished_trials_all_failed_and_bad_evaluator() -> None:
    with pytest.raises(StudyError, match="no finished trials"):
        analyze(optuna.create_study())
    with pytest.raises(ConfigError, match="'shap'.*ped_anova"):
        analyze(optuna.create_study(), evaluators=("shap",))
    failed = optuna.create_study()
    failed.add_trials([create_trial(state=TrialState.FAIL, user_attrs={
        "failure_reason": "out of memory"})] * 3)
    result = analyze(failed)
    assert all(a.status == "all_failed" for a in result.answers)
    assert result.answers[0].verdict.startswith("all 3 trials failed") and "out of memory" in \
        result.answers[0].verdict
    assert result.importances == {} and result.n_trials["FAIL"] == 3


# ---------------------------------------------------------------------------- importance


def test_importance_bands_and_noise_floor(bn_study: optuna.Study) -> None:
    imps = param_importances(bn_study, n_bootstrap=10, n_noise=20, seed=1)
    assert [i.value for i in imps] == sorted((i.value for i in imps), reverse=True)
    assert sum(i.value for i in imps) == pytest.approx(1.0)
    assert all(0 <= i.ci_low <= i.ci_high <= 1 for i in imps)
    assert imps[0].param == "lr" and imps[0].above_noise  # the dominant term clears noise
    assert all(i.above_noise == (i.value > i.noise) for i in imps)


def test_noise_study_importances_stay_within_noise() -> None:
    """Nothing planted at all, not even the lr term: shares still sum to 1, but none of
    them clears the shuffled-objective floor (56 of 60 top params cleared 0 before)."""
    above = [[i.param for i in param_importances(
        random_study(dataclasses.replace(NULL_TRUTH, lr_scale=0.0), seed=s),
        n_bootstrap=0, n_noise=20) if i.above_noise] for s in range(300, 304)]
    assert sum(bool(a) for a in above) <= 1, above


def test_fanova_runs_once_and_is_compared_with_ped_anova(bn_study: optuna.Study) -> None:
    result = analyze(bn_study, evaluators=("ped_anova", "fanova"), n_bootstrap_importance=3,
                     n_noise=0)
    assert result.importances["fanova"][0].param == "lr"
    assert np.isnan(result.importances["fanova"][0].ci_low)  # one fit, no bootstrap
    (pair,) = result.importance_agreement["pairs"]
    assert (pair["a"], pair["b"]) == ("ped_anova", "fanova")
    assert "Kendall tau" in result.importance_agreement["summary"]
    assert "fanova: one fit" in " ".join(result.notes)
    # hpsearch's own use of Optuna's experimental arguments is not a note on the study
    assert not any("experimental" in n for n in result.notes), result.notes


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


def test_analyze_reads_epochs_and_sampler_from_provenance(bn_study: optuna.Study) -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trials(bn_study.trials)
    study.set_user_attr("provenance", {"settings": {"epochs": 10, "sampler": "random"}})
    result = analyze(study, n_bootstrap_importance=0, n_noise=0)
    assert (result.pruning["max_epochs"], result.pruning["max_epochs_source"]) == (
        10, "study settings")
    assert result.sampler == "random"
    assert by_id(result.answers)["batch_norm"].word == "matters"


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


def test_numeric_params_are_grouped_into_quartiles(bn_study: optuna.Study) -> None:
    curves = learning_curves(bn_study.trials, "lr")
    assert len(curves) == 4 and sum(c["n"] for c in curves.values()) == 100
    assert list(curves)[0].startswith("[0.000") and list(curves)[-1].endswith("]")


# ---------------------------------------------------------------------------- output


def test_to_dict_is_json_with_the_documented_keys(bn_analysis: StudyAnalysis) -> None:
    d = json.loads(json.dumps(bn_analysis.to_dict(), allow_nan=False))
    assert d["schema"] == 2
    assert list(d)[1:] == ["study_name", "direction", "n_trials", "best_value", "best_params",
                           "best_trial_number", "sampler", "importances",
                           "importance_agreement", "answers", "pruning", "curves", "notes",
                           "interactions"]
    assert set(d["importances"]["ped_anova"][0]) == {"param", "value", "ci_low", "ci_high",
                                                     "noise", "above_noise"}
    a = next(x for x in d["answers"] if x["question"] == "bn_placement")
    for key in ("question", "status", "best", "significant", "effects", "headline",
                "p_holm", "ci_level", "fidelity", "needed", "verdict", "caveat", "unit",
                "settled", "margin", "family", "kind", "effect_by_epoch"):
        assert key in a
    assert {"epoch", "label", "diff", "ci_low", "ci_high"} <= set(a["effect_by_epoch"][-1])
    assert a["effect_by_epoch"][-1]["label"] == "end"
    x = next(r for r in d["interactions"] if r["question"] == "dropout_x_activation")
    for key in ("question", "params", "significant", "estimate", "ci_low", "ci_high", "p_holm",
                "status", "settled", "levels", "effect_by_epoch"):
        assert key in x
    assert set(a["choices"][0]) == {"value", "n", "median", "top_quantile", "mean", "n_end"}
    assert set(a["effects"][0]) == {"choice", "vs", "diff", "ci_low", "ci_high", "n", "n_vs",
                                    "p_value"}


def test_analysis_does_not_import_torch() -> None:
    code = "import sys, hpsearch.analysis; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
