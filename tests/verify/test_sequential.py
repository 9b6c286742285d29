"""Sequential looks on planted paired differences: no training, only the decision function.

Each simulated comparison draws per-seed differences (test-accuracy points) with a planted
true shift and runs :func:`run_looks`; the rates below are over many such comparisons.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from hpsearch.analysis.seeds.sequential import decide, plan_looks, run_looks
from hpsearch.analysis.stats import holm, settle, signed_rank
from hpsearch.progress import RunProgress
from hpsearch.settings import MARGIN

ALPHA = 0.05


def simulate(shift: float, sd: float, *, family: int, n_max: int, reps: int, seed: int,
             tails: str = "normal"):
    """Decisions of ``reps`` families of ``family`` comparisons with one planted shift."""
    rng = np.random.default_rng(seed)
    plan = plan_looks(n_max, ALPHA / family)
    out = []
    for _ in range(reps):
        noise = (rng.normal(0, sd, (family, n_max)) if tails == "normal"
                 else rng.standard_t(3, (family, n_max)) * sd)
        data = shift + noise
        out += run_looks(family, plan, lambda rows, n, data=data: [data[i, :n] for i in rows],
                         alpha=ALPHA, margin=MARGIN)
    return plan, out


def rate(decisions, state: str) -> float:
    return sum(d.settled == state for d in decisions) / len(decisions)


@pytest.mark.parametrize("family, sd, tails", [(1, 0.8, "normal"), (3, 0.8, "normal"),
                                               (1, 0.5, "t3")])
def test_false_difference_rate_on_nulls(family, sd, tails):
    _, dec = simulate(0.0, sd, family=family, n_max=16, reps=600 // family, seed=1,
                      tails=tails)
    assert rate(dec, "difference") <= 0.05


def test_naive_repeated_looks_would_fail_the_same_check():
    """The check above can fail: testing every look at the full level (no spending) calls
    far more differences on the same nulls than the sequential design does."""
    rng = np.random.default_rng(3)
    naive = ours = 0
    plan = plan_looks(24, ALPHA)
    reps = 600
    for _ in range(reps):
        d = rng.normal(0, 1, 24)
        naive += any(signed_rank(d[:n], ALPHA)[3] <= ALPHA for n in range(6, 25))
        [dec] = run_looks(1, plan, lambda rows, n, d=d: [d[:n]], alpha=ALPHA, margin=MARGIN)
        ours += dec.settled == "difference"
    assert ours / reps <= 0.05 < naive / reps


@pytest.mark.parametrize("shift, sd", [(0.6, 0.25), (-0.55, 0.15), (0.75, 0.6)])
def test_false_equivalence_rate_above_the_margin(shift, sd):
    _, dec = simulate(shift, sd, family=2, n_max=16, reps=300, seed=2)
    assert rate(dec, "equivalent") <= 0.05


def test_intervals_cover_the_planted_shift_after_stopping():
    for shift in (0.0, 0.3, 1.0):
        _, dec = simulate(shift, 0.5, family=3, n_max=16, reps=150, seed=4)
        missed = sum(not (d.ci_low <= shift <= d.ci_high) for d in dec) / len(dec)
        assert missed <= 0.05


def test_equivalence_is_reached_when_true():
    _, dec = simulate(0.0, 0.1, family=2, n_max=16, reps=100, seed=5)
    assert rate(dec, "equivalent") >= 0.9
    assert all(d.n < 16 for d in dec if d.settled == "equivalent")  # it stopped early


def test_a_large_effect_stops_early():
    plan, dec = simulate(2.0, 0.5, family=1, n_max=16, reps=50, seed=6)
    assert plan.looks == (8, 12, 16)
    trainings = sum(d.n for d in dec)
    assert rate(dec, "difference") == 1.0 and trainings < len(dec) * plan.n_max
    assert all(d.n == 8 and d.looks == 1 for d in dec)


def test_the_interval_agrees_with_the_decision():
    _, dec = simulate(0.4, 0.6, family=4, n_max=16, reps=100, seed=7)
    for d in dec:
        excludes = d.ci_low > 0 or d.ci_high < 0
        assert (d.settled == "difference") == (d.p_holm < ALPHA)
        if d.settled == "difference":
            assert excludes
        if d.settled == "equivalent":
            assert -MARGIN < d.ci_low and d.ci_high < MARGIN


def test_holm_runs_on_the_sequential_p_values():
    rng = np.random.default_rng(8)
    diffs = [rng.normal(m, 0.5, 16) for m in (0.0, 1.0, 0.2)]
    plan = plan_looks(16, ALPHA)  # looks at 8, 12, 16
    dec = decide(diffs, [3, 1, 2], plan, alpha=ALPHA, margin=MARGIN)
    assert [d.p_holm for d in dec] == pytest.approx(list(holm([d.p_sequential for d in dec])))
    assert [d.n for d in dec] == [16, 8, 12]


def test_plan_drops_looks_that_cannot_stop():
    assert plan_looks(16, 0.05).looks == (8, 12, 16)
    assert plan_looks(12, 0.05).looks == (9, 12)       # 6 seeds cannot reach 0.25 * 0.05
    assert plan_looks(9, 0.05 / 9).looks == (9,)        # the fixed plan
    for n, level in ((16, 0.05), (30, 0.001), (7, 0.05)):
        assert sum(plan_looks(n, level).weights) == pytest.approx(1.0)


def test_settle_states():
    assert settle([(0.1, 0.4)], MARGIN, rejected=True) == "difference"
    assert settle([(-0.2, 0.3)], MARGIN, rejected=False) == "equivalent"
    assert settle([(-0.2, 0.6)], MARGIN, rejected=False) == "open"
    with pytest.raises(ValueError, match="margin"):
        decide([np.zeros(6)], [1], plan_looks(6, 0.05), alpha=ALPHA, margin=0.0)


def test_progress_prints_a_line_per_run_when_not_a_terminal():
    out = io.StringIO()
    progress = RunProgress(stream=out)
    progress(1, 4, "mlp relu seed 0: 0.9500")
    progress(2, 4, "mlp relu seed 1: 0.9400")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("trainings 1/4 (mlp relu seed 0")
    assert "ETA" in lines[1]
    quiet = io.StringIO()
    RunProgress(quiet=True, stream=quiet)(1, 4, "x")
    assert quiet.getvalue() == ""
