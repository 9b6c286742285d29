"""A finished study's configs, settings and data, to train its trials again.

Shared by ``best`` and ``verify``, which retrain configs on the test split: hpsearch's own
(a :class:`TrialConfig`), or through the user's objective a study records
(:func:`study_objective`, :func:`rerun`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.errors import DataError, ObjectiveError, StudyError
from hpsearch.objectives import (
    LoadedObjective,
    Params,
    TrialView,
    call_objective,
    describe,
    load_objective,
    load_recorded,
    recorded_spec,
)
from hpsearch.settings import Settings, check_spec, is_named, resolve_spec, validate
from hpsearch.space import TrialConfig, config_from_params
from hpsearch.training import (
    DeviceData,
    load_dataset,
    training_device,
    training_threads,
)

# ---------------------------------------------------------------------------- shared helpers


def trial_config(trial: FrozenTrial) -> TrialConfig:
    """The trial's full config: its ``config`` user attr, else rebuilt from ``trial.params``.

    ``trial.params`` lacks the params a preset fixed, so it is only the fallback for
    trials that another tool wrote.
    """
    stored = schema.config(trial)
    return config_from_params(stored if stored is not None else trial.params)


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials, best value first (ties: lower trial number first); best is the
    lowest for a study that minimizes (a user's loss)."""
    if len(study.directions) != 1:  # t.value raises for them
        raise StudyError(f"study {study.study_name!r} is multi-objective "
                         f"({len(study.directions)} objectives): it has no single best trial "
                         "to retrain, and verify and best need a study with one objective")
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.value is not None and math.isfinite(t.value)]
    if not trials:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet; run "
                         "`hpsearch optimize` until one finishes")
    sign = -1.0 if study.direction.name == "MINIMIZE" else 1.0
    return sorted(trials, key=lambda t: (-sign * float(t.value or 0.0), t.number))


def study_settings(study: optuna.Study, *, epochs: int | None = None,
                   data_dir: str | None = None, dataset: str | None = None) -> Settings:
    """The settings the study was run with (its ``provenance``), with overrides applied.

    ``dataset`` is where the study's data is now (``--dataset PATH`` of ``verify`` and
    ``best``, after its ``.npz`` or image folder moved): the settings keep the recorded spec,
    which names the data, and :func:`study_data` loads from ``dataset`` and checks it
    against the study's record (:data:`hpsearch.schema.DATA`). A recorded path that is gone,
    with no ``dataset``, is one :class:`DataError` that names the option.
    """
    stored = schema.stored_settings(study)
    if stored is None or "dataset" not in stored:
        raise StudyError(foreign_message(study.study_name, "best"))
    names = {f.name for f in dataclasses.fields(Settings)} - {"storage"}
    settings = Settings(**{k: v for k, v in stored.items() if k in names})
    if epochs is not None:
        settings = settings.replace(epochs=epochs)
    if data_dir is not None:
        settings = settings.replace(data_dir=data_dir)
    where = settings.dataset
    if dataset is not None:
        if schema.data_record(study) is None:
            instead = (f"use --data-dir DIR for {where}" if is_named(where)
                       else f"put the data back at {where}")
            raise StudyError(
                f"study {study.study_name!r} records no fingerprint of its data (made before "
                f"hpsearch recorded one), so --dataset cannot be checked against it; {instead}")
        try:
            check_spec(dataset)
        except DataError as exc:
            raise DataError(f"--dataset: {exc}") from None
        where = resolve_spec(dataset)
    elif isinstance(where, str) and not is_named(where) and \
            not Path(where).expanduser().exists():
        raise DataError(
            f"the data study {study.study_name!r} ran on is no longer at {where} (moved or "
            "deleted): give where it is now with --dataset PATH (it is checked against the "
            "study's record of its data, so only the same data is accepted)")
    validate(settings.replace(dataset=where), source="study provenance and flags")
    return settings


def study_data(settings: Settings, device: str | torch.device = "auto",
               study: optuna.Study | None = None, *, dataset: str | None = None,
               ) -> DeviceData:
    """The study's splits: same dataset, validation hold-out, train subset and split seed;
    with ``study``, refused unless the data is what the study was run on. ``dataset``:
    where that data is now (``--dataset``), instead of the study's recorded spec."""
    dev = device if isinstance(device, torch.device) else training_device(device)
    raw = load_dataset(resolve_spec(dataset) if dataset else settings.dataset,
                       settings.data_dir)
    data = DeviceData.create(raw, val_size=settings.val_size, seed=settings.seed, device=dev,
                             train_size=settings.train_size)
    if study is not None:
        check_data(study, data.source, "re-run", given=dataset)
    return data


def check_data(study: optuna.Study, now: dict[str, object], what: str,
               given: str | None = None) -> None:
    """StudyError when the study recorded other data than ``now`` (a file changed or
    replaced since): its trials, or re-runs of them, would not be one experiment.
    ``given``: the ``--dataset`` the user pointed at; the message says what differs."""
    was = schema.data_record(study)
    if was is None or not now or was.get("hash") == now.get("hash"):
        return

    def shown(d: dict[str, Any]) -> str:
        shape = "x".join(str(v) for v in d.get("shape", []) or ["?"])
        return (f"{shape} images, {d.get('classes', '?')} classes, {d.get('train', '?')} "
                f"train / {d.get('test', '?')} test")

    if given is not None:
        raise StudyError(f"--dataset {given} is not the data study {study.study_name!r} ran "
                         f"on: {data_differences(was, now)}; point --dataset at that data, "
                         "or start a new study on this one")
    raise StudyError(
        f"the data of study {study.study_name!r} changed since it ran (then {shown(was)}; now "
        f"{shown(now)}{', same sizes but other contents' if shown(was) == shown(now) else ''}"
        f"): to {what} it would mix two datasets; point --dataset (or --data-dir) at the "
        "data the study used, or start a new study")


def data_differences(was: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """What differs between two data records (:data:`hpsearch.schema.DATA`), in words:
    ``image shape 3x8x8 then, 1x8x8 now; 120 train examples then, 100 now``."""
    def value(d: Mapping[str, Any], key: str) -> str:
        v = d.get(key)
        return "x".join(str(x) for x in v) if isinstance(v, list) else str(v)

    parts = [f"{label} {value(was, k)} then, {value(now, k)} now" if k == "shape" else
             f"{value(was, k)} {label} then, {value(now, k)} now"
             for k, label in (("shape", "image shape"), ("classes", "classes"),
                              ("train", "train examples"), ("test", "test examples"))
             if value(was, k) != value(now, k)]
    return "; ".join(parts) or ("the same image shape, classes and split sizes, but other "
                                "images or labels")


# ---------------------------------------------------------------------------- a user's objective


def foreign_message(study: str, command: str) -> str:
    return (f"study {study!r} was not made by `hpsearch optimize` and records no objective, "
            f"so hpsearch cannot train it again; give the objective that made it: `hpsearch "
            f"{command} STORAGE --objective FILE.py:NAME` (def NAME(trial) -> float; seed= "
            "and split= as keywords if it takes them; docs/own-model.md)")


def own_data_message(study: str) -> str:
    return (f"--dataset is for a study of hpsearch's own models; study {study!r} runs a user's "
            "objective, which loads its own data (point the objective at it, or give the "
            "moved objective with --objective)")


def study_objective(study: optuna.Study, override: str | None, command: str,
                    ) -> LoadedObjective | None:
    """The user's objective a study runs (None: hpsearch's own), found from its record or
    from ``--objective``; one message when it moved or changed."""
    record = recorded_spec(study.user_attrs)
    if record is None:
        return None if override is None else load_objective(override)
    return load_recorded(record, override, study=study.study_name, command=command)


def trial_params(t: FrozenTrial) -> Params:
    """The params a trial ran (a paired trial: its best arm's)."""
    stored = schema.config(t)
    return Params.of(stored if stored is not None else t.params)


def fallback_values(ranked: Sequence[FrozenTrial], study: optuna.Study,
                    ) -> dict[str, tuple[Any, int]]:
    """{param: (value, trial number)} from the best complete trial that has each param,
    else the pruned trial that went furthest (the first of them)."""
    pruned = sorted(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)),
                    key=lambda t: (-len(t.intermediate_values), t.number))
    out: dict[str, tuple[Any, int]] = {}
    for t in [*ranked, *pruned]:
        for p, v in trial_params(t).as_dict().items():
            out.setdefault(p, (v, t.number))
    return out


def rerun(loaded: LoadedObjective, params: Mapping[str, Any], *, seed: int, split: str,
          fallback: Mapping[str, tuple[Any, int]], takes: Sequence[str] | None = None,
          ) -> tuple[float, dict[str, Any]]:
    """One call of a user's objective with ``params`` fixed: its value and a note of the
    params it needed that ``params`` lacked (``{"filled": {param: {"value", "trial"}}}``).
    Whatever goes wrong is one :class:`ObjectiveError` that names the params and seed."""
    view = TrialView(None, params, fallback=fallback)
    what = f"{loaded.spec} with {_shown(params)}, seed {seed}"
    # One intra-op thread on a CPU, as hpsearch's own re-runs (training_threads says why).
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with training_threads(device):
            value = call_objective(loaded.fn, view, seed=seed, split=split, takes=takes)
    except ObjectiveError as exc:
        raise ObjectiveError(f"{what}: {exc}") from None
    except optuna.TrialPruned:
        raise ObjectiveError(f"{what}: it pruned itself with no pruner asking (should_prune "
                             "is False when hpsearch re-runs it)") from None
    except Exception as exc:
        raise ObjectiveError(f"{what} failed: {describe(exc, loaded.path)}") from None
    filled = {k: {"value": v, "trial": n} for k, (v, n) in view.filled.items()}
    return value, ({"filled": filled} if filled else {})


def _shown(params: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= 120 else text[:117] + "..."


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
