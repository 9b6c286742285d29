"""Paired-design answers on planted studies: arms that never learn, pruning, nonlinear links.

Every config is trained under both arms (before, after) and pruned together on the arms'
mean by a median rule; arm "after" may never learn (chance, 10 %) on some configs, and the
end-of-training difference may depend on the config's quality q. The truth (the difference
averaged over the configs where both arms learn, and the failure rates) is planted.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.analysis import answer_questions
from hpsearch.analysis.arms import paired_effects
from hpsearch.space import QUESTION_BY_ID

CHANCE = 0.1
EPOCHS = 4


def study(n: int, diff: float, seed: int, *, fail: float = 0.0, link: str = "none",
          prune: bool = True, noise: float = 0.4) -> list:
    rng = np.random.default_rng(seed)
    q = rng.normal(0, 1, n)
    bump = {"none": 0 * q, "bad_configs": 1.2 * ((q < 0) - 0.5)}[link]  # mean 0 over q
    d = diff + bump + rng.normal(0, noise, n)
    fails = rng.random(n) < fail
    rise = np.linspace(-4.0, 0.0, EPOCHS)
    curves = []
    for i in range(n):
        a = 90 + 2 * q[i] + d[i] / 2 + rise * (1 + 0.3 * rng.random()) \
            + rng.normal(0, 0.3, EPOCHS)
        b = 90 + 2 * q[i] - d[i] / 2 + rise * (1 + 0.3 * rng.random()) \
            + rng.normal(0, 0.3, EPOCHS)
        curves.append((a, 100 * CHANCE + rng.normal(0, 0.3, EPOCHS) if fails[i] else b))
    means = [(a + b) / 2 for a, b in curves]
    trials = []
    for i, (a, b) in enumerate(curves):
        stop = EPOCHS
        for e in range(1, EPOCHS - 1) if prune else ():
            if means[i][e] < np.median([m[e] for m in means]):
                stop = e + 1
                break
        done = stop == EPOCHS
        trials.append(optuna.trial.create_trial(
            state=TrialState.COMPLETE if done else TrialState.PRUNED,
            value=float((a[-1] + b[-1]) / 200) if done else None,
            params={"lr": 0.01}, distributions={
                "lr": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)},
            intermediate_values={e + 1: float((a[e] + b[e]) / 200) for e in range(stop)},
            user_attrs={schema.DESIGN: {"design": "paired", "question": "bn_placement",
                                      "param": "batch_norm", "arms": ["before", "after"]},
                        schema.ARMS: {"before": {"val_acc": list(a[:stop] / 100)},
                                    "after": {"val_acc": list(b[:stop] / 100)}}}))
    return trials


def test_an_arm_that_never_learned_is_a_failure_not_an_accuracy() -> None:
    """b never learns on 8 % of configs: with the chance level the estimate is the planted
    0.6 pts among configs that learned, and the interval covers it; averaged in, the
    failures move it by points."""
    hits, est, naive = 0, [], []
    for seed in range(40):
        trials = study(24, 0.6, seed, fail=0.08)
        fx = paired_effects(trials, epochs=EPOCHS, chance=CHANCE, n_bootstrap=100)
        assert fx is not None and fx.n_configs == 24
        e, se = fx.contrast("before", "after")
        est.append(e)
        hits += abs(e - 0.6) <= 2.07 * se      # t(23) at 95 %
        f = fx.failures
        assert f is not None and f.failed_a == 0 and f.failed_b == 24 - fx.n
        old = paired_effects(trials, epochs=EPOCHS, n_bootstrap=10)
        assert old is not None
        naive.append(old.contrast("before", "after")[0])
    assert abs(np.mean(est) - 0.6) < 0.1
    assert hits >= 36
    assert np.mean(naive) - 0.6 > 1.0


def test_pruned_configs_carry_their_own_difference() -> None:
    """The difference lives in the configs the pruner stops (a nonlinear link): the chain
    that carries each pruned config's own difference stays unbiased; the one that fitted
    its slope was 0.3 pts low, half the 0.6-pt effect."""
    ours, fitted = [], []
    for seed in range(30):
        trials = study(60, 0.6, seed, link="bad_configs")
        for out, fit in ((ours, False), (fitted, True)):
            fx = paired_effects(trials, epochs=EPOCHS, n_bootstrap=2, fit_slope=fit)
            assert fx is not None and 0 < fx.n_complete < 60
            out.append(fx.contrast("before", "after")[0])
    assert abs(np.mean(ours) - 0.6) < 0.1
    assert np.mean(fitted) - 0.6 < -0.2


def _answer(trials: list) -> object:
    (a,) = answer_questions(trials, questions=[QUESTION_BY_ID["bn_placement"]],
                            study_params=False, chance=CHANCE)
    return a


def test_the_answer_says_how_often_each_arm_never_learned() -> None:
    a = _answer(study(40, 0.0, 1, fail=0.35, prune=False))
    t = a.trainability
    assert t is not None and t["settled"] == "difference"
    assert t["choices"]["before"] == {"never_learned": 0, "n": 40}
    k = t["choices"]["after"]["never_learned"]
    assert k >= 8 and f"before 0/40, after {k}/40" in t["verdict"]
    assert t["verdict"].startswith("matters: training fails more often with after")
    assert a.status == "answered" and a.choices[0].n == 40 - k


def test_equivalent_needs_the_failures_equivalent_too() -> None:
    """Identical arms, no failure: the accuracies are equivalent, and 0 failures in 200
    configs bound the failure rates within 5 pts; one arm failing on 6 % is not."""
    clean = _answer(study(200, 0.0, 2, prune=False, noise=0.2))
    assert clean.settled == "equivalent" and clean.trainability["settled"] == "equivalent"
    some = _answer(study(200, 0.0, 2, fail=0.06, prune=False, noise=0.2))
    assert some.trainability["settled"] != "equivalent"
    assert some.settled == "open" and "not how often they fail to learn" in some.verdict
