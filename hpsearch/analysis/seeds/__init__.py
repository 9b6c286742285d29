"""Verify's statistics: the same configs re-run on paired seeds, compared seed by seed.

Numbers in, numbers out: nothing here trains or reads a study, so the error rates are
checked on planted differences with no training at all (tests/verify/test_sequential.py,
``scripts/measure_sequential.py``).

- :mod:`~hpsearch.analysis.seeds.paired`: one comparison of paired runs (the exact
  signed-rank test, the Hodges-Lehmann shift and its interval) and the seeds a contrast
  would need (:func:`seeds_needed`);
- :mod:`~hpsearch.analysis.seeds.sequential`: seeds added in planned looks, each comparison
  stopped as soon as it is settled, the Holm family kept valid after stopping.
"""

from hpsearch.analysis.seeds.paired import (
    ALPHA,
    MIN_EFFECT,
    POWER,
    PairedStats,
    paired_stats,
    seeds_needed,
)
from hpsearch.analysis.seeds.sequential import (
    Decision,
    LookPlan,
    decide,
    plan_looks,
    run_looks,
)

__all__ = [
    "ALPHA", "MIN_EFFECT", "POWER", "PairedStats", "paired_stats", "seeds_needed",
    "Decision", "LookPlan", "decide", "plan_looks", "run_looks",
]
