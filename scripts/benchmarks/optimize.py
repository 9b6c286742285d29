"""Studies: trials per minute, Optuna's and the storage's cost per trial, memory over a
study (rows study and memory)."""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks.common import (
    MEMORY_EPOCHS,
    SEED_CFG,
    STUDY_EPOCHS,
    STUDY_OVERRIDES,
    Context,
    median,
    paired_ratio,
    rss_mb,
    timed,
    worker_threads,
)
from hpsearch import schema
from hpsearch.optimize import make_pruner, make_sampler, optimize
from hpsearch.optimize.study import FINISHED, open_study
from hpsearch.optimize.workers import run_trials, run_worker
from hpsearch.settings import Settings
from hpsearch.space import Preset, active_params, sample_config
from hpsearch.storage import HEARTBEAT_GRACE, HEARTBEAT_INTERVAL, load_study
from hpsearch.training import resolve_device

BENCH = Path(__file__).resolve().parent.parent / "bench.py"  # the memory row's child process


def _study_settings(ctx: Context, directory: Path, name: str, suffix: str = ".db",
                    **changes: Any) -> Settings:
    return Settings(dataset="digits", epochs=STUDY_EPOCHS, trials=ctx.sizes.study_trials,
                    device=ctx.args.device, storage=str(directory / f"{name}{suffix}"),
                    study_name=name, **changes)


def _per_trial(study: optuna.Study) -> tuple[float, float]:
    """(seconds per finished trial in steady state, training seconds per trial).

    Steady state: from the moment every worker has finished its first trial to the last
    finished trial, so process start-up, imports and data loading are left out; with
    several workers it is the study's combined rate while all of them run.
    """
    trials = [t for t in study.get_trials(deepcopy=False, states=FINISHED)
              if t.datetime_complete]
    training = sum(sum((schema.learning_curve(t) or {}).get("seconds", []))
                   for t in trials)
    first: dict[str, datetime.datetime] = {}
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        first.setdefault((schema.run_info(t) or {}).get("worker", "?"), t.datetime_complete)
    start = max(first.values(), default=None)
    after = [t.datetime_complete for t in trials if start and t.datetime_complete > start]
    if not after:
        return float("nan"), training / max(1, len(trials))
    return (max(after) - start).total_seconds() / len(after), training / len(trials)


def _stored(settings: Settings) -> optuna.Study:
    return load_study(settings.storage, settings.study_name)


class StubObjective:
    """What ``hpsearch optimize``'s objective sends to Optuna per trial, with no training:
    it samples the config from the space, stores the same user attrs (config, train_seed,
    learning_curve, run), reports every epoch and asks the pruner, so the sampler, pruner,
    storage and hpsearch's worker loop (``run_trials``) all do their work."""

    def __init__(self, preset: Preset, settings: Settings) -> None:
        self.preset, self.settings = preset, settings

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = sample_config(trial, self.preset)
        schema.set_started(trial, cfg.as_dict(), trial.number)
        rng = random.Random(trial.number)
        curve: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": [],
                                         "lr": [], "seconds": []}
        pruned = False
        for epoch in range(1, self.settings.epochs + 1):
            acc = rng.random()
            for key, value in zip(curve, (1 / epoch, 1 / epoch, acc, cfg.lr, 0.0),
                                  strict=True):
                curve[key].append(value)
            trial.report(acc, epoch)
            if trial.should_prune():
                pruned = True
                break
        schema.set_learning_curve(trial, curve)
        schema.set_run_info(trial, {"n_params": 0, "device": "cpu", "best_epoch": 1,
                                    "stop_reason": "pruned" if pruned else "completed",
                                    "worker": f"{platform.node()}:{os.getpid()}"})
        if pruned:
            raise optuna.TrialPruned()
        return max(curve["val_acc"])


def _stub_study(settings: Settings, storage: str, name: str) -> optuna.Study:
    """The study the stub runs on: hpsearch's own (``open_study``: SQLite in WAL mode, or a
    journal file), Optuna's plain RDBStorage on SQLite (the rollback journal, SQLite's
    default, with hpsearch's heartbeats) or Optuna's in-memory storage."""
    if storage in ("sqlite", "journal"):
        return open_study(Preset(), settings)
    sampler = make_sampler(settings.sampler, settings.seed)
    pruner = make_pruner(settings.pruner, settings.epochs)
    rdb: optuna.storages.BaseStorage | None = None
    if storage == "sqlite-rollback":
        rdb = optuna.storages.RDBStorage(
            f"sqlite:///{settings.storage}", engine_kwargs={"connect_args": {"timeout": 60}},
            heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=HEARTBEAT_GRACE)
    return optuna.create_study(storage=rdb, direction="maximize", study_name=name,
                               sampler=sampler, pruner=pruner)


def _stub_seconds(ctx: Context, directory: Path, storage: str, rep: int) -> float:
    """Seconds per trial of the study row's study with :class:`StubObjective` in place of
    the training, on ``storage``: ``sqlite`` (hpsearch's default, WAL), ``sqlite-rollback``
    (SQLite's default journal, the baseline WAL replaced), ``journal`` (a .log file) or
    ``memory`` (Optuna's in-memory storage: the sampler, pruner and hpsearch's loop alone,
    no storage cost)."""
    name = f"stub-{storage}-{rep}"
    settings = _study_settings(ctx, directory, name, ".log" if storage == "journal" else ".db",
                               seed=rep)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = _stub_study(settings, storage, name)
        run_trials(study, StubObjective(Preset(), settings), settings.trials)
    return _per_trial(study)[0]


STUBS = ("sqlite", "sqlite-rollback", "journal", "memory")


def row_study(ctx: Context) -> dict[str, Any]:
    """``hpsearch optimize --dataset digits --epochs 3`` (the default search space): finished
    trials per minute at --jobs 1 and 2, and what Optuna costs per trial.

    Optuna's share = seconds per trial of the same study with ``train`` replaced by a stub
    that reports the same epochs (so sampler, pruner, storage, user attrs and hpsearch's
    worker loop all run) over seconds per trial of the real study at --jobs 1. The stub runs
    on every storage in STUBS; ``memory`` is the floor that no storage can go below.
    """
    per_trial: dict[str, list[float]] = {"jobs1": [], "jobs2": [], "fixed1": [], "fixed2": [],
                                         "train": [], **{f"stub_{k}": [] for k in STUBS}}
    end_to_end: dict[str, list[float]] = {"jobs1": [], "jobs2": []}
    # Every param fixed (seed 000's MLP): the same work per trial at --jobs 1 and 2, so this
    # pair measures the scaling alone (the default space's pair also varies in its configs).
    fixed = Preset(name="bench-fixed", fixed=active_params(SEED_CFG.as_dict()))
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(ctx.args.reps):
            for jobs in (1, 2):
                with worker_threads(ctx.args.threads // jobs):  # see THREADS
                    settings = _study_settings(ctx, Path(tmp), f"jobs{jobs}-{rep}", jobs=jobs,
                                               seed=rep)
                    wall, summary = timed(functools.partial(optimize, Preset(), settings,
                                                            progress=False), ctx.device)
                    end_to_end[f"jobs{jobs}"].append(60 * summary.ran_here / wall)
                    seconds, training = _per_trial(_stored(settings))
                    per_trial[f"jobs{jobs}"].append(seconds)
                    if jobs == 1:
                        per_trial["train"].append(training)
                    same = _study_settings(ctx, Path(tmp), f"fixed{jobs}-{rep}", jobs=jobs,
                                           seed=rep)
                    optimize(fixed, same, progress=False)
                    per_trial[f"fixed{jobs}"].append(_per_trial(_stored(same))[0])
            for storage in STUBS:
                per_trial[f"stub_{storage}"].append(
                    _stub_seconds(ctx, Path(tmp), storage, rep))
    trial_s = median(per_trial["jobs1"])
    stub = {k: median(per_trial[f"stub_{k}"]) for k in STUBS}
    share = {k: paired_ratio(per_trial[f"stub_{k}"], per_trial["jobs1"]) for k in STUBS}
    wal_speedup = paired_ratio(per_trial["stub_sqlite-rollback"], per_trial["stub_sqlite"])
    rate = {j: 60 / median(per_trial[j]) for j in ("jobs1", "jobs2")}
    scaling = paired_ratio(per_trial["jobs1"], per_trial["jobs2"])
    fixed_scaling = paired_ratio(per_trial["fixed1"], per_trial["fixed2"])
    return {
        "trials": ctx.sizes.study_trials, "epochs": STUDY_EPOCHS, "dataset": "digits",
        "preset": "full (the default search space)",
        "trials_per_min_jobs1": rate["jobs1"], "trials_per_min_jobs2": rate["jobs2"],
        "jobs2_scaling": scaling, "jobs2_scaling_fixed_config": fixed_scaling,
        "end_to_end_trials_per_min": {j: median(v) for j, v in end_to_end.items()},
        "seconds_per_trial": trial_s, "optuna_seconds_per_trial": stub["sqlite"],
        "training_seconds_per_trial": median(per_trial["train"]),
        "stub_seconds_per_trial": stub, "stub_share": share, "wal_speedup": wal_speedup,
        "optuna_share": share["sqlite"], "pass": share["sqlite"] < 0.05,
        "measured": f"{rate['jobs1']:.0f} trials/min (jobs 1), {rate['jobs2']:.0f} (jobs 2; "
                    f"{scaling:.1f}x paired, {fixed_scaling:.1f}x on one fixed config); "
                    f"Optuna per {1000 * trial_s:.0f} ms trial: SQLite "
                    f"{1000 * stub['sqlite']:.0f} ms ({100 * share['sqlite']:.0f}%; rollback "
                    f"journal {1000 * stub['sqlite-rollback']:.0f} ms, {wal_speedup:.1f}x more), "
                    f"journal file {1000 * stub['journal']:.0f} ms "
                    f"({100 * share['journal']:.0f}%), no storage "
                    f"{1000 * stub['memory']:.0f} ms ({100 * share['memory']:.0f}%)",
        "raw": {**per_trial, "end_to_end_trials_per_min": end_to_end},
    }


def memory_child(params: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process: a study on digits, RSS recorded after every trial."""
    torch.set_num_threads(params["threads"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rss: list[float] = []
    cuda: list[float] = []  # memory held by live CUDA tensors, when the study runs there
    on_cuda = resolve_device(params["device"]).type == "cuda"

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state not in FINISHED:  # index k of rss = after finished trial k + 1
            return
        rss.append(rss_mb()[0])
        if on_cuda:
            cuda.append(torch.cuda.memory_allocated() / 2**20)

    preset = Preset(name="bench").with_overrides(list(STUDY_OVERRIDES), source="bench")
    settings = Settings(dataset="digits", epochs=MEMORY_EPOCHS, trials=params["trials"],
                        device=params["device"], storage=params["storage"], study_name="mem")
    before = rss_mb()[0]  # torch, Optuna and this script imported, nothing run yet
    with worker_threads(params["threads"]):
        run_worker(preset, settings, on_trial=record)
    return {"before_mb": before, "rss_mb": rss, "peak_mb": rss_mb()[1],
            "cuda_allocated_mb": cuda}


def row_memory(ctx: Context) -> dict[str, Any]:
    n = ctx.sizes.memory_trials
    early = max(1, n // 10)  # trial 10 of 100
    with tempfile.TemporaryDirectory() as tmp:
        params = {"trials": n, "device": ctx.args.device, "threads": ctx.args.threads,
                  "storage": str(Path(tmp) / "mem.db")}
        out = subprocess.run([sys.executable, str(BENCH), "--memory-child", json.dumps(params)],
                             capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed: {out.stderr.strip()[-2000:]}")
    child = json.loads(out.stdout.strip().splitlines()[-1])
    rss = child["rss_mb"]
    growth = (rss[-1] - rss[early - 1]) / rss[early - 1]
    return {
        "trials": len(rss), "epochs": MEMORY_EPOCHS, "early_trial": early,
        "rss_early_mb": rss[early - 1], "rss_last_mb": rss[-1], "peak_rss_mb": child["peak_mb"],
        "rss_after_imports_mb": child["before_mb"],
        "growth": growth, "pass": growth <= 0.10,
        "measured": f"peak {child['peak_mb']:.0f} MiB ({child['before_mb']:.0f} after "
                    f"imports); trial {early} {rss[early - 1]:.0f} -> trial {len(rss)} "
                    f"{rss[-1]:.0f} MiB ({100 * growth:+.1f}%)",
        "raw": {"rss_mb": rss, "cuda_allocated_mb": child["cuda_allocated_mb"]},
    }
