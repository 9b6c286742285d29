"""Failures to learn in paired comparisons: the rule, the exact test, the interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from hpsearch.analysis.discordant import (
    FAILURE_MARGIN,
    failures,
    learned_floor,
    mcnemar_p,
    never_learned,
)


def test_never_learned_is_at_chance_and_needs_a_chance_level() -> None:
    assert learned_floor(0.1) == pytest.approx(0.145)
    assert learned_floor(0.5) == pytest.approx(0.525)
    # a net stuck on MNIST's most common class scores 11.35 %: never learned
    assert never_learned([0.1135, 0.16, 0.97, float("nan")], 0.1).tolist() == [
        True, False, False, False]
    assert not never_learned([0.1, 0.1], None).any()
    with pytest.raises(ValueError, match="chance"):
        learned_floor(1.0)


def test_mcnemar_is_exact_on_the_discordant_pairs_only() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(6, 0) == pytest.approx(2 * 0.5 ** 6)
    assert mcnemar_p(3, 1) == pytest.approx(min(1, 2 * sps.binom.cdf(1, 4, 0.5)))
    f = failures([True, True, False, False, True], [True, False, False, False, False])
    assert (f.n, f.failed_a, f.failed_b, f.only_a, f.only_b) == (5, 3, 1, 2, 0)
    assert f.p == pytest.approx(mcnemar_p(2, 0))   # the pair where both failed says nothing
    assert f.difference == pytest.approx(0.4)


def test_the_failure_rate_interval_covers_a_planted_difference() -> None:
    """The paired interval covers the true difference in failure rates in >= 95 % of 400
    planted comparisons (two arms failing on 5 % and 20 % of 60 configs, correlated)."""
    rng = np.random.default_rng(1)
    p_a, p_b, hits = 0.20, 0.05, 0
    for _ in range(400):
        u = rng.random(60)
        a, b = u < p_a, u < p_b           # b fails only where a fails too: correlated
        lo, hi = failures(a, b).interval(0.05)
        hits += lo <= p_a - p_b <= hi
    assert hits / 400 >= 0.95


def test_states_difference_equivalent_open() -> None:
    none = np.zeros(200, dtype=bool)
    assert failures(none, none).settle(0.05) == "equivalent"        # 0 of 200: within 5 pts
    assert failures(none[:16], none[:16]).settle(0.05) == "open"    # 0 of 16 bounds little
    many = np.arange(40) < 12
    assert failures(many, none[:40]).settle(0.05) == "difference"
    lo, hi = failures(none[:16], none[:16]).interval(0.05)
    assert hi > FAILURE_MARGIN and lo < -FAILURE_MARGIN
