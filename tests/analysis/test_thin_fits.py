"""Too little data to test: thin end-of-training fits, and params only some trials carry."""

from __future__ import annotations

import math

import numpy as np
import optuna

from hpsearch.analysis import analyze
from hpsearch.analysis.effects import MIN_DF, carried
from hpsearch.analysis.regress import Fit
from hpsearch.planted import NULL_TRUTH, realistic, realistic_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_a_thin_end_of_training_fit_is_not_tested() -> None:
    """A null study at the findings' budget (24 TPE trials x 10 epochs) where 8 trials ran
    to the end: the fit there kept 5 residual df and called "adagrad > adam by 4.35 pts
    [0.33, 8.36], Holm p=0.036". Now: an estimate, no interval, open, what would settle it."""
    study = realistic_study(realistic(NULL_TRUTH, epochs=10), 24, sampler="tpe", seed=24049)
    answers = {a["question"]: a for a in analyze(study, evaluators=()).to_dict()["answers"]}
    opt = answers["optimizer"]
    assert opt["settled"] == "open", opt["verdict"]
    assert f"a test needs {MIN_DF}" in opt["verdict"] and "no interval" in opt["verdict"]
    assert "more trials with optimizer" in opt["needed"]
    assert all(e["ci_low"] is None or math.isnan(e["ci_low"]) for e in opt["effects"])
    assert opt["headline"]["p_value"] is None or math.isnan(opt["headline"]["p_value"])
    for a in answers.values():  # nothing untested is called, and nothing called is untested
        untested = "no interval it can vouch for" in a["verdict"]
        assert not (untested and a["settled"] != "open"), a["verdict"]


def _fit(resid: np.ndarray, df: int) -> Fit:
    return Fit(np.zeros(2), np.eye(2), df, 1.0, resid=resid)


def test_a_param_only_noisy_trials_carry_takes_their_noise() -> None:
    """Ten noisy trials (a small CNN) beside 80 quiet ones (MLPs): the pooled residual
    variance would understate what the ten know about their own param."""
    rng = np.random.default_rng(0)
    resid = np.concatenate([rng.normal(0, 0.5, 80), rng.normal(0, 20, 10)])
    has = np.arange(90) >= 80
    grow, df = carried(_fit(resid, 80), has, 3)
    assert grow > 5 and df == 10 - 3
    same = rng.normal(0, 1, 90)  # the same noise everywhere: nothing grows below 1
    grow, df = carried(_fit(same, 80), np.ones(90, dtype=bool), 3)
    assert (grow, df) == (1.0, 80)
    grow, _ = carried(_fit(same, 80), has, 3)
    assert grow >= 1.0
