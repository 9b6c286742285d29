"""Open (or resume) a study and record its provenance; the trial states that count.

Resuming checks that the stored study is the same experiment (:data:`MUST_MATCH`).
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from hpsearch import __version__
from hpsearch.errors import StudyError
from hpsearch.optimize.samplers import make_pruner, make_sampler
from hpsearch.settings import Settings
from hpsearch.space import Preset
from hpsearch.storage import (
    mask,
    open_storage,
    storage_errors,
)

if TYPE_CHECKING:
    pass



FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def default_study_name(preset: Preset, settings: Settings) -> str:
    return settings.study_name or f"{preset.name}-{settings.dataset}"


def provenance(preset: Preset, settings: Settings) -> dict[str, Any]:
    """What a reader needs to reproduce the study (stored as study user attrs)."""
    import torch

    return {
        "hpsearch_version": __version__, "git_hash": git_hash(),
        "preset": preset.name, "question": preset.question,
        "fixed": dict(preset.fixed),
        "narrowed": {k: (list(p.choices) if p.kind == "categorical" else [p.low, p.high])
                     for k, p in preset.narrowed.items()},
        "settings": {**dataclasses.asdict(settings), "storage": mask(settings.storage)},
        "dataset": settings.dataset, "seed": settings.seed,
        "torch": torch.__version__, "optuna": optuna.__version__,
        "python": platform.python_version(), "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# Settings that change what a trial means: resuming a study with other values would mix
# two experiments in one study.
# The seed picks the validation split: another seed scores trials on another split.
_MUST_MATCH = ("dataset", "epochs", "val_size", "train_size", "preset", "seed")


def open_study(preset: Preset, settings: Settings) -> optuna.Study:
    """Create the study, or load it and check that it is the same experiment."""
    storage = open_storage(settings.storage, create=True, heartbeat=True)
    name = default_study_name(preset, settings)
    with storage_errors(settings.storage):  # e.g. a SQLite file locked by another program
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True,
            sampler=make_sampler(settings.sampler, settings.seed, settings.random_share),
            pruner=make_pruner(settings.pruner, settings.epochs))
    if len(study.directions) != 1:
        raise StudyError(f"study {name!r} is multi-objective; hpsearch studies maximize one "
                         "value (choose another --study-name)")
    prov = provenance(preset, settings)
    old = study.user_attrs.get("provenance")
    if old is None:
        study.set_user_attr("provenance", prov)
        study.set_user_attr("dataset", settings.dataset)
        if preset.question:
            study.set_user_attr("question", preset.question)
    else:
        for key in _MUST_MATCH:
            was = old.get(key, old.get("settings", {}).get(key))
            now = prov.get(key, prov["settings"].get(key))
            if was != now:
                raise StudyError(f"study {name!r} in {mask(settings.storage)} was run with "
                                 f"{key}={was!r}, not {now!r}; use another --study-name")
    return study


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))
