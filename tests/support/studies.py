"""A planted study like ``hpsearch optimize`` writes, without training (report and
dashboard tests): params drawn from ``space.PARAMS``, user attrs as the objective writes them,
and a known effect (batch norm before > after > none; sigmoid is worse)."""

from __future__ import annotations

import gc
import random
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from hpsearch.optimize import optimize
from hpsearch.settings import Settings
from hpsearch.space import Preset
from hpsearch.space.params import PARAMS, Param, config_from_params
from hpsearch.storage.open import open_storage

# A one-layer batch-norm MLP: a trial trains on digits in about a second.
SMALL_MLP = ["model=mlp", "hidden_layers=1", "hidden_units=64", "batch_norm=before",
             "optimizer=adam", "lr=0.003..0.03", "augmentation=none", "dropout=0.0",
             "weight_penalty=none", "scheduler=none", "batch_size=128"]

EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '<img src=x onerror="alert(2)">'
EPOCHS = 4


def _distribution(p: Param, extra_choices: tuple[Any, ...] = ()) -> BaseDistribution:
    if p.kind == "categorical":
        return CategoricalDistribution(list(p.choices) + list(extra_choices))
    if p.kind == "int":
        return IntDistribution(int(p.low), int(p.high), log=p.log)
    return FloatDistribution(p.low, p.high, log=p.log)


def plant_study(spec: str | Path, n_trials: int = 60, *, name: str = "planted", seed: int = 0,
                evil: bool = False) -> str:
    """A study like ``hpsearch optimize`` writes, in ``spec`` (a ``.log`` journal file is
    ~15x faster to fill than SQLite); returns the storage spec."""
    rng = random.Random(seed)
    study = optuna.create_study(storage=open_storage(str(spec), create=True), study_name=name,
                                direction="maximize")
    study.set_user_attr("dataset", "digits")
    study.set_user_attr("provenance", {
        "hpsearch_version": "0.1.0", "git_hash": "abc1234", "optuna": optuna.__version__,
        "preset": EVIL_ATTR if evil else "full", "question": None, "fixed": {},
        "narrowed": {}, "dataset": "digits", "seed": seed,
        "settings": {"epochs": EPOCHS, "storage": "postgresql://me:secret@db/x"}})
    extra = {"augmentation": (EVIL,)} if evil else {}
    trials = []
    for number in range(n_trials):
        values: dict[str, Any] = {}
        params: dict[str, Any] = {}
        dists: dict[str, BaseDistribution] = {}
        for p in PARAMS:
            if not p.active(values):
                values[p.name] = p.default
                continue
            dist = _distribution(p, extra.get(p.name, ()))
            if isinstance(dist, CategoricalDistribution):
                v: Any = rng.choice(dist.choices)
            elif p.log:
                v = p.low * (p.high / p.low) ** rng.random()
            else:
                v = p.low + (p.high - p.low) * rng.random()
            if p.kind == "int":
                v = int(round(v))
            if p.name == "dropout" and rng.random() < 0.3:
                v = 0.0  # "off", so the dropout question has two groups
            values[p.name] = params[p.name] = v
            dists[p.name] = dist
        # The planted truth: BN before > after > none; sigmoid is worse.
        acc = (0.90 + {"before": 0.04, "after": 0.02, "none": 0.0}[values["batch_norm"]]
               - (0.03 if values["activation"] == "sigmoid" else 0.0) + rng.gauss(0, 0.01))
        curve = [min(acc - 0.15 * 0.5 ** e + rng.gauss(0, 0.005), 1.0) for e in range(EPOCHS)]
        pruned = number >= 8 and rng.random() < 0.15
        if pruned:
            curve = curve[:2]
        state = TrialState.FAIL if number % 29 == 28 else (
            TrialState.PRUNED if pruned else TrialState.COMPLETE)
        attrs: dict[str, Any] = {"config": config_from_params(values).as_dict(),
                                 "train_seed": number}
        if state == TrialState.FAIL:
            attrs["failure_reason"] = "RuntimeError: planted"
            curve = []
        else:
            attrs.update(learning_curve={"val_acc": curve, "train_loss": [1.0] * len(curve),
                                         "val_loss": [1.0] * len(curve),
                                         "lr": [0.01] * len(curve),
                                         "seconds": [0.5] * len(curve)},
                         run={"n_params": 1000, "device": "cpu", "best_epoch": len(curve),
                              "stop_reason": "pruned" if pruned else "completed",
                              "splits": {"train": 1078, "validation": 269, "test": 450}})
        trials.append(optuna.trial.create_trial(
            # Optuna's tell() stores a pruned trial's last intermediate value as its value.
            state=state, value=None if state == TrialState.FAIL else curve[-1],
            params=params, distributions=dists, user_attrs=attrs,
            intermediate_values={e + 1: v for e, v in enumerate(curve)}))
    study.add_trials(trials)
    return str(spec)


def small_study(spec: str, name: str, n_trials: int = 1) -> None:
    """A plain Optuna study of one float param in ``spec``, its storage closed on return.

    An SQLite engine left to the garbage collector checkpoints its -wal into the file
    whenever the collector runs (during another command, say), which a test that compares
    a directory's bytes would read as that command writing to a storage."""
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name=name,
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n_trials)
    del study
    gc.collect()


def trained_study(spec: str, *, epochs: int = 1, trials: int = 2) -> str:
    """A small study of ``SMALL_MLP`` trained for real on digits (verify and best tests), on
    one torch thread; returns ``spec``."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # optimize sets torch's threads from it
        optimize(Preset().with_overrides(SMALL_MLP),
                 Settings(storage=spec, dataset="digits", epochs=epochs, trials=trials,
                          val_size=300), progress=False)
    return spec
