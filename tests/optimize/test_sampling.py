"""RandomizedShare: which trials are random, that they are marked, and that they are random."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hpsearch.analysis import answer_questions
from hpsearch.optimize.randomized import RandomizedShare
from hpsearch.optimize.samplers import make_sampler
from hpsearch.planted import BN_TRUTH, planted_study
from hpsearch.schema import RANDOMIZED
from hpsearch.space.suggest import sample_config

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_the_plan_depends_on_seed_and_number_only() -> None:
    a = RandomizedShare(optuna.samplers.TPESampler(seed=0), share=0.2, seed=3)
    b = RandomizedShare(optuna.samplers.TPESampler(seed=9), share=0.2, seed=3)
    plan = [a.is_randomized(n) for n in range(500)]
    assert plan == [b.is_randomized(n) for n in range(500)]  # every worker agrees
    assert all(plan[:10]) and 0.15 < np.mean(plan[10:]) < 0.25
    other = RandomizedShare(optuna.samplers.TPESampler(seed=0), share=0.2, seed=4)
    assert plan[10:] != [other.is_randomized(n) for n in range(10, 500)]
    with pytest.raises(ValueError, match="share must be in"):
        RandomizedShare(optuna.samplers.TPESampler(), share=1.5, seed=0)


def test_randomized_trials_are_marked_and_drawn_independently_of_the_results() -> None:
    """The randomized trials' learning rates ignore where the good ones were: TPE's
    concentrate near the planted best lr (3e-3), theirs stay uniform in log(lr)."""
    study = planted_study(BN_TRUTH, 120, sampler=make_sampler("tpe", 0, 0.3), seed=0)
    marked = [t for t in study.trials if t.user_attrs.get(RANDOMIZED)]
    adaptive = [t for t in study.trials if not t.user_attrs.get(RANDOMIZED)]
    assert len(marked) > 30 and len(adaptive) > 60
    assert all(t.number < 10 for t in study.trials[:10] if t in marked)

    def spread(trials: list) -> float:
        return float(np.std([np.log10(t.params["lr"]) for t in trials[-30:]]))

    assert spread(marked) > 1.5 * spread(adaptive)  # uniform on [-4, -1] has sd 0.87


def test_a_plain_share_of_zero_is_plain_tpe() -> None:
    assert isinstance(make_sampler("tpe", 0, 0.0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("tpe", 0, 0.2), RandomizedShare)
    assert isinstance(make_sampler("random", 0, 0.2), optuna.samplers.RandomSampler)


def test_randomized_share_settles_what_it_can_alone() -> None:
    """A default-sampler study whose randomized trials settle batch norm on their own: the
    adjusted answer over all trials then says "matters"."""
    # Unpruned: median pruning left "none" 2 trials at the end of this study, fewer than
    # effects.MIN_SURVIVORS (its end-of-training effect is then open); the randomized share is the
    # point here.
    study = planted_study(BN_TRUTH, 150, sampler=make_sampler("tpe", 1, 0.5),
                          pruner=optuna.pruners.NopPruner(), seed=1)
    a = {x.question: x for x in answer_questions(study.trials)}["batch_norm"]
    assert a.significant and a.best == "any"
    assert a.word == "matters" and "randomized trials (drawn at random" in a.caveat


def test_sample_draws_every_param_through_the_wrapper() -> None:
    study = optuna.create_study(sampler=make_sampler("tpe", 0, 1.0))
    for _ in range(3):
        trial = study.ask()
        cfg = sample_config(trial)
        study.tell(trial, 0.5)
        assert cfg.lr > 0 and study.trials[-1].user_attrs[RANDOMIZED] is True
