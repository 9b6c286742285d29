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
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from hpsearch import __version__, schema
from hpsearch.errors import StudyError
from hpsearch.objectives import LoadedObjective, recorded_spec, split_spec
from hpsearch.optimize.designs import designed, resolve_design, study_arms
from hpsearch.optimize.samplers import make_pruner, make_sampler
from hpsearch.replay import check_data
from hpsearch.settings import Settings
from hpsearch.space import PARAM_BY_NAME, Preset
from hpsearch.storage import mask, open_storage, storage_errors, study_file, study_names

if TYPE_CHECKING:
    from hpsearch.training import DeviceData


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def default_study_name(preset: Preset, settings: Settings) -> str:
    """``--study-name``, else ``PRESET-DATASET``, or ``FILESTEM-NAME`` for ``--objective``."""
    if settings.study_name:
        return settings.study_name
    if settings.objective:
        target, name = split_spec(settings.objective)
        return f"{Path(target).stem if target.endswith('.py') else target}-{name}"
    from hpsearch.training import dataset_label

    return f"{preset.name}-{dataset_label(settings.dataset)}"


def provenance(preset: Preset, settings: Settings,
               objective: LoadedObjective | None = None) -> dict[str, Any]:
    """What a reader needs to reproduce the study (stored as study user attrs)."""
    import torch

    own = {"objective": objective.record(), "dataset": None} if objective else {}
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
        **own,
    }


# Settings that change what a trial means: resuming a study with other values would mix
# two experiments in one study.
# The seed picks the validation split: another seed scores trials on another split. The
# question decides which param a design assigns (and what the report answers first).
_MUST_MATCH = ("dataset", "epochs", "val_size", "train_size", "preset", "seed", "design",
               "question")


def open_study(preset: Preset, settings: Settings,
               objective: LoadedObjective | None = None,
               data: DeviceData | None = None) -> optuna.Study:
    """Create the study, or load it and check that it is the same experiment.

    A study that is already there is checked read-only first (one objective that it
    maximizes, only this search space's params, a provenance record of the same
    experiment): a study that is not this kind is refused before anything is written to
    its storage (no trial, no provenance, no switch of a SQLite file to WAL mode).
    ``objective``: the user's objective the study runs (:mod:`hpsearch.objectives`), recorded
    with the study (:data:`hpsearch.schema.OBJECTIVE`).
    ``data``: the study's splits, whose classes and chance level are recorded with it.
    """
    # a question it cannot design: before writing
    arms = study_arms(preset, settings.design, objective=objective is not None)
    name = default_study_name(preset, settings)
    _check_existing(preset, settings, name, objective, data)
    storage = open_storage(settings.storage, create=True, heartbeat=True)
    sampler = designed(make_sampler(settings.sampler, settings.seed, settings.random_share),
                       arms, settings.seed)
    with storage_errors(settings.storage):  # e.g. a SQLite file locked by another program
        study = optuna.create_study(
            storage=storage, study_name=name,
            direction="minimize" if settings.direction == "minimize" else "maximize",
            load_if_exists=True, sampler=sampler,
            pruner=make_pruner(settings.pruner, None if objective else settings.epochs))
        prov = provenance(preset, settings, objective)
        # Another worker may have created it since the check: check again (reads only).
        old = _check_compatible(study, prov, settings, preset)
        if old is None:
            # a user's objective brings its own data: no dataset then
            schema.set_provenance(study, prov, settings.dataset if objective is None else None,
                                  preset.question)
        if data is not None:
            check_data(study, data.source, "resume")  # another worker may have written it
        if data is not None and schema.N_CLASSES not in study.user_attrs:
            # The analysis tells a trial that never learned from one that learned little.
            study.set_user_attr(schema.N_CLASSES, data.n_classes)
            study.set_user_attr(schema.CHANCE, data.chance)
        if data is not None and data.source and schema.DATA not in study.user_attrs:
            study.set_user_attr(schema.DATA, data.source)
        if objective is not None and recorded_spec(study.user_attrs) != objective.record():
            study.set_user_attr(schema.OBJECTIVE, objective.record())
    return study


def _check_existing(preset: Preset, settings: Settings, name: str,
                    objective: LoadedObjective | None, data: DeviceData | None = None) -> None:
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
        _check_compatible(study, provenance(preset, settings, objective), settings, preset)
        if data is not None:
            check_data(study, data.source, "resume")


def _check_compatible(study: optuna.Study, prov: dict[str, Any], settings: Settings,
                      preset: Preset) -> dict[str, Any] | None:
    """Refuse a stored study that is not this experiment; its provenance (None if none)."""
    name, where = study.study_name, mask(settings.storage)
    if len(study.directions) != 1:
        raise StudyError(f"study {name!r} in {where} is multi-objective; hpsearch studies "
                         "maximize one value (choose another --study-name)")
    if study.direction.name.lower() != settings.direction:
        what = ("hpsearch's own objective maximizes validation accuracy"
                if settings.objective is None else f"this run {settings.direction}s")
        raise StudyError(f"study {name!r} in {where} {study.direction.name.lower()}s its "
                         f"value, and {what} (give --direction "
                         f"{study.direction.name.lower()} or choose another --study-name)")
    unknown = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params}
                     - set(PARAM_BY_NAME))
    if unknown and settings.objective is None:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise StudyError(f"study {name!r} in {where} has params that are not hpsearch's "
                         f"({shown}): it is not an hpsearch study (choose another "
                         "--study-name)")
    if settings.objective is None:
        _check_space(study, preset, where)
    old = study.user_attrs.get(schema.PROVENANCE)
    if old is None:
        return None
    if not isinstance(old, dict) or not isinstance(old.get("settings", {}), dict):
        raise StudyError(f"study {name!r} in {where} has a 'provenance' user attr that "
                         "hpsearch did not write (not a record of settings); choose another "
                         "--study-name")
    for key in _MUST_MATCH:
        was = old.get(key, old.get("settings", {}).get(key))
        now = prov.get(key, prov["settings"].get(key))
        if key in ("design", "question") and key not in old:
            continue  # a study from before designs: its design was "none" or none asked
        if was != now:
            raise StudyError(f"study {name!r} in {where} was run with {key}={was!r}, not "
                             f"{now!r}; use another --study-name")
    _check_objective(study, old, prov, where)
    return old


def _check_objective(study: optuna.Study, old: dict[str, Any], prov: dict[str, Any],
                     where: str) -> None:
    """The same objective as the stored study's (name and file), and a file that changed
    only while no trial had finished with it: the study must not mix two objectives."""
    was, now = old.get("objective"), prov.get("objective")
    name = study.study_name
    if (was is None) != (now is None) or (was and now and (
            was.get("name"), was.get("module") or was.get("path"))
            != (now.get("name"), now.get("module") or now.get("path"))):
        def shown(rec: Any) -> str:
            return f"the objective {rec.get('spec')}" if rec else "hpsearch's own objective"
        raise StudyError(f"study {name!r} in {where} runs {shown(was)}, not {shown(now)}; "
                         "use another --study-name")
    if not was or not now:
        return
    stored = recorded_spec(study.user_attrs) or was
    finished = count(study, FINISHED)
    if stored.get("sha256") != now.get("sha256") and finished:
        raise StudyError(
            f"study {name!r} in {where}: {now.get('path') or now.get('spec')} changed since "
            f"the study's {finished} finished trial(s) ran it (sha256 "
            f"{str(stored.get('sha256'))[:12]} then, {str(now.get('sha256'))[:12]} now), so "
            "the study would mix two objectives; restore the file, or start another study "
            "with --study-name NAME")


def _check_space(study: optuna.Study, preset: Preset, where: str) -> None:
    """Refuse a study whose trials sampled a param from another distribution than this
    run's space gives it (another ``--set`` range or preset, another hpsearch version).

    Optuna keeps a param's first distribution in a trial and ignores a second one with a
    warning (a retried trial carries its failed original's), and a sampler's search space
    leaves out a param whose trials disagree: the study would be two searches under one name.
    """
    space = {p.name: preset.param(p.name).distribution() for p in PARAM_BY_NAME.values()
             if p.name not in preset.fixed}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if name in space and dist != space[name]:
                raise StudyError(
                    f"study {study.study_name!r} in {where}: trial #{t.number} sampled {name} "
                    f"from {shown_distribution(dist)}, and this run's space samples it from "
                    f"{shown_distribution(space[name])}; one study must keep one search "
                    "space, so resume it with the preset and --set it was made with (or an "
                    "hpsearch whose space matches), or choose another --study-name")


def shown_distribution(dist: BaseDistribution) -> str:
    """``0.0..0.7 step 0.1``, ``1e-05..0.1 log``, ``{adam, sgd}``: a distribution in words."""
    if isinstance(dist, CategoricalDistribution):
        return "{" + ", ".join(str(c) for c in dist.choices) + "}"
    if isinstance(dist, FloatDistribution | IntDistribution):
        kind = "integers " if isinstance(dist, IntDistribution) else ""
        extra = (" log" if dist.log else "") + (
            f" step {dist.step:g}" if dist.step not in (None, 1) else
            " continuous" if isinstance(dist, FloatDistribution) else "")
        return f"{kind}{dist.low:g}..{dist.high:g}{extra}"
    return repr(dist)


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))
