"""Open (or resume) a study and record its provenance; the trial states that count.

Resuming checks that the stored study is the same experiment (:data:`MUST_MATCH`).
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpsearch import __version__
from hpsearch.errors import StudyError
from hpsearch.optimize.designs import designed, resolve_design, study_arms
from hpsearch.optimize.samplers import make_pruner, make_sampler
from hpsearch.settings import Settings
from hpsearch.space import PARAM_BY_NAME, Preset
from hpsearch.storage import mask, open_storage, storage_errors, study_file, study_names

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
        "design": resolve_design(settings.design, preset.question),
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
_MUST_MATCH = ("dataset", "epochs", "val_size", "train_size", "preset", "seed", "design")


def open_study(preset: Preset, settings: Settings) -> optuna.Study:
    """Create the study, or load it and check that it is the same experiment.

    A study that is already there is checked read-only first (one objective that it
    maximizes, only this search space's params, a provenance record of the same
    experiment): a study that is not this kind is refused before anything is written to
    its storage (no trial, no provenance, no switch of a SQLite file to WAL mode).
    """
    arms = study_arms(preset, settings.design)  # a question it cannot design: before writing
    name = default_study_name(preset, settings)
    _check_existing(preset, settings, name)
    storage = open_storage(settings.storage, create=True, heartbeat=True)
    sampler = designed(make_sampler(settings.sampler, settings.seed, settings.random_share),
                       arms, settings.seed)
    with storage_errors(settings.storage):  # e.g. a SQLite file locked by another program
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True,
            sampler=sampler, pruner=make_pruner(settings.pruner, settings.epochs))
        prov = provenance(preset, settings)
        # Another worker may have created it since the check: check again (reads only).
        old = _check_compatible(study, prov, settings)
        if old is None:
            study.set_user_attr("provenance", prov)
            study.set_user_attr("dataset", settings.dataset)
            if preset.question:
                study.set_user_attr("question", preset.question)
    return study


def _check_existing(preset: Preset, settings: Settings, name: str) -> None:
    """:func:`_check_compatible` on the study ``name`` if the storage holds it, opened
    read-only: nothing is written to a storage whose study is refused."""
    path = study_file(settings.storage)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        return  # a new file: nothing there to check
    try:
        storage = open_storage(settings.storage, create=False)
    except StudyError:  # an empty database: nothing to check
        return
    with storage_errors(settings.storage):
        if name not in study_names(storage):
            return
        study = optuna.load_study(study_name=name, storage=storage)
        _check_compatible(study, provenance(preset, settings), settings)


def _check_compatible(study: optuna.Study, prov: dict[str, Any],
                      settings: Settings) -> dict[str, Any] | None:
    """Refuse a stored study that is not this experiment; its provenance (None if none)."""
    name, where = study.study_name, mask(settings.storage)
    if len(study.directions) != 1:
        raise StudyError(f"study {name!r} in {where} is multi-objective; hpsearch studies "
                         "maximize one value (choose another --study-name)")
    if study.direction != StudyDirection.MAXIMIZE:
        raise StudyError(f"study {name!r} in {where} minimizes its value; hpsearch studies "
                         "maximize validation accuracy (choose another --study-name)")
    unknown = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params}
                     - set(PARAM_BY_NAME))
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise StudyError(f"study {name!r} in {where} has params that are not hpsearch's "
                         f"({shown}): it is not an hpsearch study (choose another "
                         "--study-name)")
    old = study.user_attrs.get("provenance")
    if old is None:
        return None
    if not isinstance(old, dict) or not isinstance(old.get("settings", {}), dict):
        raise StudyError(f"study {name!r} in {where} has a 'provenance' user attr that "
                         "hpsearch did not write (not a record of settings); choose another "
                         "--study-name")
    for key in _MUST_MATCH:
        was = old.get(key, old.get("settings", {}).get(key))
        now = prov.get(key, prov["settings"].get(key))
        if key == "design" and "design" not in old:
            continue  # a study from before designs: its design was "none" or none asked
        if was != now:
            raise StudyError(f"study {name!r} in {where} was run with {key}={was!r}, not "
                             f"{now!r}; use another --study-name")
    return old


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))
