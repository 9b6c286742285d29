"""A user's own Optuna objective (``--objective FILE.py:NAME`` or ``package.module:NAME``).

- :mod:`.load`: find and import the objective, hash its file, the record a study keeps
  (so ``verify`` and ``best`` find it again) and the check that it is still the same;
- :mod:`.call`: one call of it: every generator seeded, ``seed=`` and ``split=`` passed
  where its signature takes them, the value checked; :class:`TrialView`, the trial an
  objective sees when hpsearch fixes some of its params (a paired arm, a verify twin).
"""

from hpsearch.objectives.call import (
    NotANumber,
    Params,
    Probe,
    TrialView,
    accepts,
    call_objective,
    check_value,
    rng_state,
    seed_everything,
)
from hpsearch.objectives.load import (
    LoadedObjective,
    describe,
    load_objective,
    load_recorded,
    recorded_spec,
    split_spec,
)

__all__ = ["LoadedObjective", "NotANumber", "Params", "Probe", "TrialView",
           "accepts", "call_objective", "check_value", "describe", "load_objective",
           "load_recorded", "recorded_spec", "rng_state", "seed_everything", "split_spec"]
