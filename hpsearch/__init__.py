"""hpsearch: which regularization techniques actually help your model, and by how much.

Every CLI command is a thin wrapper over a library function of the same name, in the
module of the same name, so a notebook can do what the CLI does::

    from hpsearch.optimize import optimize     # hpsearch optimize
    from hpsearch.report import report         # hpsearch report
    from hpsearch.verify import verify         # hpsearch verify
    from hpsearch.best import best             # hpsearch best
    from hpsearch.dashboard import dashboard   # hpsearch dashboard

(The functions are not re-exported here: ``hpsearch.report`` must stay the package, or
importing it would shadow the function.) The packages, in the order the data flows:
``space`` (the search space as data) -> ``training`` (data, models, ``train()``) ->
``optimize`` (samplers, designs, objective, workers) -> ``storage`` (where studies live) ->
``analysis`` (answers, no torch) -> ``verify``, ``best`` (re-runs on the test split) ->
``report`` and ``dashboard`` (what a person reads). Names that need torch are imported on
first use, so ``hpsearch report`` starts fast.

A user's own Optuna objective asks hpsearch's questions of their own data with two calls
(docs/api.md has the worked example)::

    cfg = hpsearch.suggest_config(trial, {"model": "cnn"})   # the regularization space
    result = hpsearch.train_arrays(cfg, x_train, y_train, x_val, y_val, on_epoch=...)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from hpsearch.errors import ConfigError, DataError, HPSearchError, StorageError, StudyError
from hpsearch.settings import Settings
from hpsearch.space import (
    PARAMS,
    QUESTIONS,
    Preset,
    TrialConfig,
    load_preset,
    sample_config,
    suggest_config,
)

# name -> module, for the lazily imported part of the API
_LAZY = {
    "train_arrays": "hpsearch.training",
    "TrainResult": "hpsearch.training",
    "EpochMetrics": "hpsearch.training",
    "build_model": "hpsearch.training",
    "load_dataset": "hpsearch.training",
    "DeviceData": "hpsearch.training",
    "load_study": "hpsearch.storage",
    "analyze": "hpsearch.analysis",
}

__all__ = [
    "__version__",
    "ConfigError", "DataError", "HPSearchError", "StorageError", "StudyError",
    "PARAMS", "QUESTIONS", "Preset", "Settings", "TrialConfig", "load_preset", "sample_config",
    "suggest_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
