"""No answer beyond the data: survivors at the end, covered values, what accuracy can do."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.analysis import answer_questions
from hpsearch.analysis.table import finished_table
from hpsearch.analysis.terms import chain_terms
from hpsearch.planted import Truth, foreign_space, planted_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _trials(rng: np.random.Generator) -> list:
    """Two binary params; every trial reports epoch 1, and those with a=1, b=0 are pruned
    there: that cell has no trial at the end of training."""
    dist = CategoricalDistribution([0, 1])
    out = []
    for i in range(80):
        a, b = i % 2, (i // 2) % 2
        v = 0.9 + 0.01 * rng.normal()
        pruned = a == 1 and b == 0
        out.append(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else v + 0.01, params={"a": a, "b": b},
            distributions={"a": dist, "b": dist}, intermediate_values={1: v, 2: v + 0.01}
            if not pruned else {1: v}))
    return out


def test_a_cell_with_no_survivor_leaves_its_interaction_unknown() -> None:
    """Among the survivors, a = a*b: the main effect is not identified, and the product
    would carry it. Neither is followed: the interaction has no end-of-training estimate."""
    table = finished_table(_trials(np.random.default_rng(0)),
                           optuna.study.StudyDirection.MAXIMIZE)
    a = np.array([t.params["a"] for t in table.trials], dtype=float)
    b = np.array([t.params["b"] for t in table.trials], dtype=float)
    x = np.column_stack([a * b, a, b])
    te = chain_terms(table, np.arange(len(table)), x, np.zeros((len(table), 0)), [])
    assert te is not None
    assert {0, 1} <= te.lost
    assert math.isinf(te.contrast(np.array([1.0, 0.0, 0.0]))[1])


def test_numeric_contrasts_stay_within_the_values_survivors_cover() -> None:
    study = planted_study(Truth(lr_param="rate"), 120, sampler=optuna.samplers.RandomSampler(
        seed=3), pruner=optuna.pruners.MedianPruner(), seed=3, space=foreign_space)
    answers = {a.question: a for a in answer_questions(study.trials)}
    table = finished_table(study.trials, study.direction)
    end = [t.params["rate"] for t, c in zip(table.trials, table.complete, strict=True) if c]
    lo, hi = np.quantile(np.log(end), [0.1, 0.9])
    rate = answers["rate"]
    assert rate.curve is not None
    xs = np.log(rate.curve["x"])
    assert lo - 1e-6 <= xs.min() and xs.max() <= hi + 1e-6
    assert "the 10th-90th percentile" in rate.caveat
    for a in answers.values():  # what accuracy can do
        for e in a.effects:
            assert math.isnan(e.diff) or -100 <= e.ci_low <= e.ci_high <= 100
        if a.headline and a.status == "answered":
            assert -100 <= a.headline["ci_low"] and a.headline["ci_high"] <= 100


def test_a_pair_picked_as_the_largest_is_named_so() -> None:
    study = planted_study(Truth(lr_param="rate"), 80, sampler=optuna.samplers.RandomSampler(
        seed=4), pruner=optuna.pruners.NopPruner(), seed=4, space=foreign_space)
    answers = {a.question: a for a in answer_questions(study.trials)}
    open_ = [a for a in answers.values() if a.settled == "open" and a.status == "answered"]
    assert open_
    for a in open_:
        assert "closest" not in a.verdict
        if a.kind == "numeric":
            assert "best vs worst point of the fitted curve (the largest of" in a.verdict
        elif len(a.choices) > 2:
            assert "the largest of 3 pairs" in a.verdict


def test_importances_and_verdicts_that_disagree_say_why() -> None:
    from hpsearch.analysis import Answer, Importance
    from hpsearch.analysis.study import _disagreements

    def answer(param: str, settled: str) -> Answer:
        return Answer(param, param, param, "", "answered", settled=settled)

    ranked = {"ped_anova": [Importance("gamma", 0.95, 0.9, 1.0, 0.1, True),
                            Importance("C", 0.03, 0.0, 0.1, 0.1, False)]}
    notes = _disagreements([answer("gamma", "open"), answer("C", "difference")], ranked)
    assert len(notes) == 2
    assert "gamma carries 95% of the importance" in notes[0]
    assert "importances describe where the good trials are" in notes[0]
    assert "C's importance" in notes[1] and "noise floor" in notes[1]
    assert not _disagreements([answer("gamma", "difference"), answer("C", "open")], ranked)


def test_small_studies_are_decided_on_the_degrees_of_freedom_of_their_survivors() -> None:
    """24 TPE trials x 10 epochs (docs/findings.md's budget), realistic planted nulls: the
    end of training rests on the few trials that got there, so an answer's t quantiles use
    no more degrees of freedom than they have (the first stage's, from every trial, made
    the answers over-confident), and no accuracy question is called."""
    from hpsearch.analysis.effects import estimate_effects
    from hpsearch.analysis.matrix import build_design, question_factor
    from hpsearch.planted import NULL_TRUTH, realistic, realistic_study

    estimated = 0
    for seed in range(4):
        study = realistic_study(realistic(NULL_TRUTH, epochs=10), 24, sampler="tpe",
                                seed=seed)
        answers = answer_questions(study.trials, chance=0.1)
        called = [a.verdict for a in answers if a.settled == "difference" and a.param != "lr"]
        assert not called
        table = finished_table(study.trials, study.direction)
        assert (~table.complete).any()  # the median pruner stopped some trials
        factor = question_factor("batch_norm", table.trials)
        assert factor is not None
        le = estimate_effects(table, build_design(table.trials, [factor], 3))["batch_norm"]
        if len(set(le.choices) - le.lost) >= 2:  # a contrast reaches the end of training
            assert le.df < int(table.complete.sum())
            estimated += 1
        else:  # too few carried to the end: every contrast is unknown, no t quantile used
            for i in range(1, len(le.choices)):
                weights = np.zeros(len(le.choices))
                weights[i] = 1.0
                assert math.isinf(le.contrast(weights)[1])
    assert estimated  # the seeds give both cases
