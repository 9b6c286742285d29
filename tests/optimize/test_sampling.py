"""RandomizedShare: which trials are random, that they are marked, and that they are random."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hpsearch.analysis import answer_questions
from hpsearch.optimize.randomized import RandomizedShare, TrialSeededRandom
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
    plain = make_sampler("tpe", 0, 0.0)  # wrapped only for its per-trial seeding
    assert isinstance(plain, RandomizedShare) and not any(map(plain.is_randomized, range(50)))
    assert isinstance(make_sampler("tpe", 0, 0.2), RandomizedShare)
    assert isinstance(make_sampler("random", 0, 0.2), TrialSeededRandom)


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_a_resumed_study_and_a_second_worker_draw_new_configs(name: str, tmp_path) -> None:
    """Each process makes its own sampler with the study's seed. Optuna's RandomSampler
    draws one sequence per seed, so a resumed study (a new process) drew its first configs
    again, and a second worker drew the first one's: here every trial's draws are its own."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=storage, study_name="s", direction="maximize")

    def run(n: int) -> None:  # a process: its own sampler, with the study's seed
        study = optuna.load_study(study_name="s", storage=storage,
                                  sampler=make_sampler(name, 7, 0.2))
        for _ in range(n):
            trial = study.ask()
            sample_config(trial)
            study.tell(trial, 0.5)

    run(3)
    run(3)  # resumed
    # two workers, interleaved
    a, b = (optuna.load_study(study_name="s", storage=storage,
                              sampler=make_sampler(name, 7, 0.2)) for _ in range(2))
    for _ in range(2):
        for study in (a, b):
            trial = study.ask()
            sample_config(trial)
            study.tell(trial, 0.5)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert len(trials) == 10
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 10
    # and the same study again draws the same configs (a seed still means something)
    again = f"sqlite:///{tmp_path / 'again.db'}"
    optuna.create_study(storage=again, study_name="s", direction="maximize")
    storage_was, storage = storage, again
    run(3)
    first = optuna.load_study(study_name="s", storage=storage_was).trials[:3]
    assert [t.params for t in optuna.load_study(study_name="s", storage=again).trials] == \
        [t.params for t in first]


def test_tpes_own_random_startup_does_not_repeat_on_resume(tmp_path) -> None:
    """TPE draws at random itself until 10 trials finished; with failures among the first
    ten, trials 10 and on are TPE's random draws, not the randomized share's. A resumed
    process used to replay them (the seeds' bn_placement study: trial 10 = trial 0)."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=storage, study_name="s", direction="maximize")

    def run(numbers: range) -> None:
        study = optuna.load_study(study_name="s", storage=storage,
                                  sampler=make_sampler("tpe", 7, 0.2))
        for n in numbers:
            trial = study.ask()
            sample_config(trial)
            if n < 5:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, 0.5)

    run(range(12))
    run(range(12, 14))  # resumed: 9 finished, so TPE still draws at random
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert not trials[12].user_attrs.get(RANDOMIZED) or not trials[13].user_attrs.get(
        RANDOMIZED)  # at least one is TPE's own draw
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 14


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
