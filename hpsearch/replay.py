"""A finished study's configs, settings and data, to train its trials again.

Shared by ``best`` and ``verify``, which retrain configs on the test split.
"""

from __future__ import annotations

import dataclasses
import math
import time

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import StudyError
from hpsearch.settings import Settings, validate
from hpsearch.space import TrialConfig, config_from_params
from hpsearch.training import (
    DeviceData,
    load_dataset,
    training_device,
)

# ---------------------------------------------------------------------------- shared helpers


def trial_config(trial: FrozenTrial) -> TrialConfig:
    """The trial's full config: its ``config`` user attr, else rebuilt from ``trial.params``.

    ``trial.params`` lacks the params a preset fixed, so it is only the fallback for
    trials that another tool wrote.
    """
    stored = trial.user_attrs.get("config")
    return config_from_params(stored if isinstance(stored, dict) else trial.params)


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials, best value first (ties: lower trial number first)."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.value is not None and math.isfinite(t.value)]
    if not trials:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet; run "
                         "`hpsearch optimize` until one finishes")
    return sorted(trials, key=lambda t: (-float(t.value or 0.0), t.number))


def study_settings(study: optuna.Study, *, epochs: int | None = None,
                   data_dir: str | None = None) -> Settings:
    """The settings the study was run with (its ``provenance``), with overrides applied."""
    prov = study.user_attrs.get("provenance")
    stored = prov.get("settings") if isinstance(prov, dict) else None
    if not isinstance(stored, dict) or "dataset" not in stored:
        raise StudyError(f"study {study.study_name!r} has no hpsearch provenance (was it made "
                         "by `hpsearch optimize`?), so its dataset and epochs are unknown")
    names = {f.name for f in dataclasses.fields(Settings)} - {"storage"}
    settings = Settings(**{k: v for k, v in stored.items() if k in names})
    if epochs is not None:
        settings = settings.replace(epochs=epochs)
    if data_dir is not None:
        settings = settings.replace(data_dir=data_dir)
    validate(settings, source="study provenance and flags")
    return settings


def study_data(settings: Settings, device: str | torch.device = "auto") -> DeviceData:
    """The study's splits: same dataset, validation hold-out, train subset and split seed."""
    dev = device if isinstance(device, torch.device) else training_device(device)
    raw = load_dataset(settings.dataset, settings.data_dir)
    return DeviceData.create(raw, val_size=settings.val_size, seed=settings.seed, device=dev,
                             train_size=settings.train_size)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
