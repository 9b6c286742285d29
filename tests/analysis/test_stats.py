"""hpsearch.analysis.stats against numbers worked out by hand, and its dualities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from hpsearch.analysis import stats


def test_holm_matches_the_hand_computed_values() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]).size == 0


def test_holm_levels_are_where_each_hypothesis_was_decided() -> None:
    # 0.001 < 0.05/4 rejected at step 1; 0.01 < 0.05/3 at step 2; 0.03 > 0.05/2 stops.
    p = [0.03, 0.001, 0.2, 0.01]
    assert stats.holm_levels(p) == pytest.approx([0.025, 0.0125, 0.025, 0.05 / 3])
    # One decision: a level's interval excludes 0 exactly when Holm rejects.
    rng = np.random.default_rng(0)
    for _ in range(500):
        p = rng.uniform(0, 0.08, rng.integers(1, 12))
        rejected = stats.holm(p) < 0.05
        assert np.array_equal(rejected, p < stats.holm_levels(p))


def test_t_interval_is_the_dual_of_the_t_test() -> None:
    lo, hi = stats.t_interval(1.0, 0.5, 30, 0.05)
    assert lo < 0 < hi and hi - 1.0 == pytest.approx(1.0 - lo)
    assert stats.t_p_value(1.0, 0.5, 30) == pytest.approx(2 * sps.t.sf(2.0, 30))
    for est in np.linspace(-2, 2, 41):
        lo, hi = stats.t_interval(est, 0.5, 12, 0.01)
        assert (lo > 0 or hi < 0) == (stats.t_p_value(est, 0.5, 12) < 0.01)


def test_signed_rank_matches_scipy_and_its_own_interval() -> None:
    assert stats.signed_rank_counts(3).tolist() == [1, 1, 1, 2, 1, 1, 1]
    rng = np.random.default_rng(1)
    d = rng.normal(0.5, 1, 15)
    shift, lo, hi, p = stats.signed_rank(d, 0.05)
    assert p == pytest.approx(sps.wilcoxon(d).pvalue) and lo < shift < hi
    bad = 0
    for _ in range(2000):  # ties and exact zeros included: still one decision
        d = np.round(rng.normal(rng.uniform(-1, 1), 1, rng.integers(3, 20)),
                     int(rng.integers(0, 3)))
        level = float(rng.choice([0.05, 0.01, 0.002]))
        _, lo, hi, p = stats.signed_rank(d, level)
        bad += (lo > 0 or hi < 0) != (p <= level)
    assert bad == 0


def test_fewest_pairs_that_can_reach_a_level() -> None:
    assert stats.min_pairs_for(0.05) == 6 and stats.min_pairs_for(0.05 / 28) == 11
    _, lo, hi, p = stats.signed_rank(np.ones(5), 0.05)
    assert p == 0.0625 and (lo, hi) == (-np.inf, np.inf)  # 5 agreeing pairs cannot reach it
    assert stats.signed_rank(np.ones(6), 0.05)[3] == pytest.approx(2 / 64)
    assert stats.signed_rank(np.zeros(4), 0.05)[3] == 1.0


def test_bias_corrected_ci_moves_the_interval_onto_the_estimate() -> None:
    samples = np.linspace(0.0, 1.0, 101)  # median 0.5, 95% interval [0.025, 0.975]
    assert stats.median_bias_corrected_ci(samples, 0.7) == pytest.approx((0.225, 1.175))
    assert np.isnan(stats.median_bias_corrected_ci(np.full(3, np.nan), 0.7)[0])


def test_weighted_holm_is_holm_with_equal_weights_and_shares_alpha_by_weight() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        p = rng.uniform(0, 0.1, size=6)
        adjusted, levels = stats.weighted_holm(p, [1.0] * 6)
        assert np.allclose(adjusted, stats.holm(p))
        assert np.allclose(levels, stats.holm_levels(p))
    # weights 1, 1, 0.25, 0.25, 1 (W = 3.5): worked by hand in the docstring's steps
    adjusted, levels = stats.weighted_holm([0.001, 0.02, 0.04, 0.3, 0.012], [1, 1, 0.25, 0.25, 1])
    assert np.allclose(adjusted, [0.0035, 0.03, 0.08, 0.3, 0.03])
    assert np.allclose(levels, [0.05 / 3.5, 0.05 / 1.5, 0.025, 0.025, 0.05 / 2.5])
