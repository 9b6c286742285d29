"""``hpsearch optimize``: run (or resume) a study, with any number of workers.

- :mod:`.samplers` and :mod:`.randomized`: samplers and pruners by name, the randomized share;
- :mod:`.study`: open or resume a study, its provenance;
- :mod:`.objective`: the only code that knows Optuna's ``Trial`` and ``train()`` both;
- :mod:`.workers`: the shared trial budget and the worker processes;
- :mod:`.signals`: how a run stops (its progress bar is :mod:`hpsearch.progress`);
- :mod:`.run`: :func:`optimize` itself.
"""

from hpsearch.optimize.designs import Arms, DesignedSampler, designed
from hpsearch.optimize.run import OptimizeSummary, optimize
from hpsearch.optimize.samplers import make_pruner, make_sampler
from hpsearch.optimize.signals import Terminated, exit_with_parent
from hpsearch.optimize.study import default_study_name, git_hash

__all__ = ["Arms", "DesignedSampler", "OptimizeSummary", "Terminated", "default_study_name",
           "designed", "exit_with_parent", "git_hash", "make_pruner", "make_sampler",
           "optimize"]
