"""Three verdict states, end-of-training answers, the study's own questions, interactions.

Each planted check uses a fixed seed; the rates over many studies are measured by
``python scripts/check_answers.py --calibrate N``.
"""

from __future__ import annotations

import math

import optuna
import pytest

from hpsearch.analysis import analyze, answer_questions
from hpsearch.analysis.contrasts import ContrastSet, Pair, n_to_settle
from hpsearch.analysis.interactions import answer_interactions
from hpsearch.analysis.matrix import build_design
from hpsearch.analysis.stats import settle
from hpsearch.analysis.table import finished_table
from hpsearch.errors import ConfigError
from hpsearch.planted import (
    ADDITIVE_TRUTH,
    INTERACTION_TRUTH,
    SLOW_STARTER_TRUTH,
    Truth,
    foreign_space,
    planted_study,
)
from hpsearch.space import INTERACTION_BY_ID, interaction

optuna.logging.set_verbosity(optuna.logging.ERROR)


def random_study(truth: Truth, n: int, seed: int, **kw) -> optuna.Study:
    kw.setdefault("pruner", optuna.pruners.MedianPruner())
    return planted_study(truth, n, sampler=optuna.samplers.RandomSampler(seed=seed),
                         seed=seed, **kw)


def by_id(answers: list) -> dict:
    return {a.question: a for a in answers}


# ---------------------------------------------------------------------------- the decision


def test_settle_reads_one_interval_three_ways() -> None:
    assert settle([(0.1, 0.5)], 0.5) == "difference"
    assert settle([(-0.2, 0.3)], 0.5) == "equivalent"
    assert settle([(-0.6, 0.3)], 0.5) == "open"
    # every pair must lie inside the margin for equivalence; any pair clear of 0 differs
    two = [(-0.2, 0.3), (-0.7, 0.4)]
    assert settle(two, 0.5) == "open" and settle(two, math.nan) == "open"
    assert settle([(0.1, 0.3), (-0.2, 0.3)], 0.5) == "difference"
    # a lost contrast keeps equivalence away; a test's decision, when given, decides
    assert settle([(-0.2, 0.3)], 0.5, lost=True) == "open"
    assert settle([(-0.2, 0.3)], 0.5, rejected=True) == "difference"
    assert settle([(0.1, 0.3)], 0.5, rejected=False) == "equivalent"


def test_contrast_set_p_value_agrees_with_its_intervals() -> None:
    for method, k in (("bonferroni", 1), ("scheffe", 2)):
        cs = ContrastSet([Pair("a", "b", 0.5, 0.2), Pair("a", "c", 0.1, 0.2)], df=50,
                         method=method, k=k)
        p = cs.p_value()
        assert cs.decide(p * 1.01, 0.5) == "difference"   # just above p: rejects
        assert cs.decide(p * 0.99, 0.5) != "difference"   # just below: does not
        h = cs.headline
        assert h.ci_low <= h.est <= h.ci_high


def test_what_would_settle_it_picks_the_cheaper_way() -> None:
    n, how = n_to_settle(100, 0.05, 0.2, 0.05, 0.5, 0.5, 0.8)
    assert how == "equivalent" and n == 156   # ceil(100 * (0.2 * 2.80 / 0.45) ** 2)
    n, how = n_to_settle(100, 0.45, 0.2, 0.05, 0.5, 0.5, 0.8)
    assert how == "difference" and n == 126   # 100 * (0.2 * 2.80 / 0.5) ** 2


# ---------------------------------------------------------------------------- planted


def test_below_the_margin_is_equivalent_above_it_never() -> None:
    """Random sampler, 400 trials: a 0.1-pt placement effect is "no difference larger than
    0.5 pts"; a 1.0-pt one is a difference, and no null question is called either way."""
    small = by_id(answer_questions(random_study(
        Truth(effects={"batch_norm": {"before": 0.1}}), 400, seed=31).trials))
    assert small["bn_placement"].settled == "equivalent"
    assert "no difference larger than 0.50 pts" in small["bn_placement"].verdict
    big = by_id(answer_questions(random_study(
        Truth(effects={"batch_norm": {"before": 1.0}}), 400, seed=31).trials))
    assert big["bn_placement"].settled == "difference" and big["bn_placement"].best == "before"
    equivalent = [a for a in big.values() if a.settled == "equivalent"]
    assert all(a.headline["ci_high"] < 0.5 and a.headline["ci_low"] > -0.5 for a in equivalent)
    seeds = [a for a in big.values() if a.family == "seeds" and a.param != "batch_norm"]
    assert not any(a.settled == "difference" for a in seeds)


def test_margin_is_a_setting_and_printed() -> None:
    trials = random_study(Truth(effects={"batch_norm": {"before": 0.1}}), 400, seed=31).trials
    wide = by_id(answer_questions(trials, margin=2.0))
    assert wide["bn_placement"].margin == 2.0 and "2.00 pts" in wide["bn_placement"].verdict
    with pytest.raises(ConfigError, match="margin"):
        answer_questions(trials, margin=-1.0)


def test_tpe_slow_starter_is_not_called() -> None:
    """Dropout costs 1 pt at epoch 1 and nothing at the end; TPE and the median pruner: the
    answer is the end of training, and the effect over training shows the early cost."""
    study = planted_study(SLOW_STARTER_TRUTH, 150, sampler=optuna.samplers.TPESampler(
        seed=5, multivariate=True), pruner=optuna.pruners.MedianPruner(), seed=5)
    dropout = by_id(answer_questions(study.trials, study_params=False))["dropout"]
    assert dropout.settled != "difference" and dropout.fidelity == "end of training"
    first, last = dropout.effect_by_epoch[0], dropout.effect_by_epoch[-1]
    assert last["label"] == "end" and first["label"] == "epoch 1"
    assert abs(first["diff"]) > abs(last["diff"])  # the early cost, gone by the end


def test_interaction_found_and_additive_effects_not_called() -> None:
    def inter(truth: Truth, seed: int, **kw: object) -> dict:
        # every trial trains to the end: each (dropout, activation) cell keeps its trials
        study = random_study(truth, 200, seed=seed, pruner=optuna.pruners.NopPruner(), **kw)
        table = finished_table(study.trials, study.direction)
        rows = answer_interactions(table, build_design(table.trials, [], 5),
                                   list(INTERACTION_BY_ID.values()), margin=0.5)
        return {r["question"]: r for r in rows}

    found = inter(INTERACTION_TRUTH, 2)["dropout_x_activation"]
    assert found["settled"] == "difference" and found["significant"]
    assert found["verdict"].startswith("depends") and found["ci_low"] > 0
    levels = {x["level"]: x for x in found["levels"]}
    assert levels["relu"]["ci_low"] > 0 > levels["sigmoid"]["effect"]  # +0.6 and -0.4
    assert found["effect_by_epoch"][-1]["label"] == "end"
    additive = inter(ADDITIVE_TRUTH, 2)
    assert not any(r["settled"] == "difference" for r in additive.values())


def test_interaction_cells_too_few_trials_carried_to_the_end_print_no_estimate() -> None:
    """200 trials, the median pruner: 24 reach the end, so some of the 10 (dropout,
    activation) cells hold fewer than 3 of them. Their contrasts are not followed from an
    early epoch or from 1-2 survivors: open, "too few trials reached the end", no number."""
    study = random_study(INTERACTION_TRUTH, 200, seed=2)
    table = finished_table(study.trials, study.direction)
    rows = {r["question"]: r for r in answer_interactions(
        table, build_design(table.trials, [], 5), list(INTERACTION_BY_ID.values()),
        margin=0.5)}
    r = rows["dropout_x_activation"]
    assert r["settled"] == "open" and "too few trials reached the end" in r["verdict"]
    assert math.isnan(r["estimate"]) and "pts [" not in r["verdict"]


def test_foreign_study_gets_its_own_questions() -> None:
    study = random_study(Truth(effects={"classifier": {"svc": 1.0}}, lr_param="rate"), 150,
                         seed=7, space=foreign_space)
    result = analyze(study, n_bootstrap_importance=2, n_noise=2,
                     interactions=["classifier:rate"])
    a = by_id(result.answers)
    assert all(x.status == "not_sampled" for x in a.values() if x.family == "seeds")
    assert a["classifier"].settled == "difference" and a["classifier"].best == "svc"
    assert a["rate"].kind == "numeric" and a["rate"].settled == "difference"
    assert 1e-3 <= float(a["rate"].best) <= 1e-2 and a["rate"].curve is not None
    assert a["depth"].settled != "difference"
    assert a["classifier"].effect_by_epoch[0]["label"].startswith("step ")
    asked = {r["question"]: r for r in result.interactions}
    assert asked["classifier_x_rate"]["status"] == "answered"
    assert asked["dropout_x_activation"]["status"] == "not_sampled"


def test_questions_can_be_restricted_and_names_are_checked() -> None:
    study = random_study(Truth(), 60, seed=3)
    only = analyze(study, n_bootstrap_importance=0, n_noise=0,
                   questions=["batch_norm", "lr", "dropout_x_activation"])
    assert [a.question for a in only.answers] == ["batch_norm", "lr"]
    assert [r["question"] for r in only.interactions] == ["dropout_x_activation"]
    with pytest.raises(ConfigError, match="unknown question 'nope'"):
        analyze(study, n_bootstrap_importance=0, n_noise=0, questions=["nope"])
    with pytest.raises(ConfigError, match="no param nope"):
        analyze(study, n_bootstrap_importance=0, n_noise=0, interactions=["lr:nope"])
    with pytest.raises(ConfigError, match="A:B"):
        interaction("lr")


def test_single_param_study_says_importance_is_trivial() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2, n_trials=40)
    result = analyze(study, n_bootstrap_importance=2, n_noise=2)
    assert result.importances == {} and any("trivial" in n for n in result.notes)
    assert by_id(result.answers)["x"].settled == "difference"
