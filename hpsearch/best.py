"""``hpsearch best``: the study's best config, retrained and measured on the test split.

The study optimized *validation* accuracy; this is the one place (with ``verify``) that
touches the test split. :func:`best` retrains the best trial's full config (with the
trial's own training seed, which reproduces the trial, or with seeds ``0..N-1`` for a
mean and spread), reports test accuracy, per-class accuracy and the confusion matrix, and
for batch-norm configs the accuracy with BN in train mode next to eval mode (seed 002:
forgetting ``model.eval()`` costs accuracy). The model's weights and the confusion matrix
are stored as artifacts of the best trial (shown on its page in ``hpsearch dashboard``),
in ``storage.artifact_dir``; a JSON-safe summary is stored as the study user attr ``best``.

The helpers at the top (a trial's config, the study's data) are shared with ``verify``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial
from torch import nn

from hpsearch import schema
from hpsearch.analysis import paired_stats
from hpsearch.errors import ConfigError, StudyError
from hpsearch.objectives import LoadedObjective, Params
from hpsearch.optuna_private import trial_id
from hpsearch.replay import (
    complete_trials,
    fallback_values,
    foreign_message,
    now_iso,
    own_data_message,
    rerun,
    study_data,
    study_objective,
    study_settings,
    trial_config,
    trial_params,
)
from hpsearch.space import TrialConfig, active_params
from hpsearch.storage import (
    SavedResult,
    artifact_dir,
    error_reason,
    load_study,
    save_result,
    upload,
)
from hpsearch.text import param_value, plural
from hpsearch.training import (
    bn_batch_stats_accuracy,
    confusion_matrix,
    evaluate,
    per_class_accuracy,
    train,
    train_seeds,
    training_threads,
)

# ---------------------------------------------------------------------------- result


@dataclass
class BestResult:
    """The best trial retrained. Test numbers of the first seed's model unless noted."""

    study_name: str
    trial_number: int
    config: TrialConfig | Params          # Params: a user's objective's
    val_acc: float                      # the study's value for the trial
    retrain_val_acc: float              # the first retrain's best validation accuracy
    seeds: list[int]
    test_accs: list[float]              # one per seed
    classes: tuple[str, ...]
    confusion: list[list[int]]          # [true][predicted], first seed's model
    per_class: dict[str, float | None]  # recall per class, first seed's model
    dataset: str
    epochs: int
    retrain: bool
    bn_train_vs_eval: dict[str, float] | None = None
    train_seconds: list[float] = field(default_factory=list)  # one per seed
    threads: int = 0                                           # torch intra-op threads
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> artifact id
    artifact_dir: str = ""
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    model: nn.Module | None = field(default=None, repr=False)  # first seed's, eval mode
    saved: SavedResult | None = None    # where the summary went (the study, or a side file)
    objective: str | None = None        # a user's objective: test values are its own
    direction: str = "maximize"
    filled: dict[str, str] = field(default_factory=dict)  # params the config lacked

    @property
    def test_acc(self) -> float:
        return float(np.mean(self.test_accs))

    @property
    def test_acc_std(self) -> float:
        return float(np.std(self.test_accs, ddof=1)) if len(self.test_accs) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; stored as the study user attr ``best``."""
        return {
            "study_name": self.study_name, "trial_number": self.trial_number,
            "config": self.config.as_dict(), "val_acc": self.val_acc,
            "retrain_val_acc": (self.retrain_val_acc if math.isfinite(self.retrain_val_acc)
                                else None),  # a user's objective: not measured
            "test_acc": self.test_acc, "test_acc_std": self.test_acc_std,
            "test_acc_n": len(self.test_accs), "test_accs": list(self.test_accs),
            "seeds": list(self.seeds), "retrain": self.retrain,
            "classes": list(self.classes), "per_class": dict(self.per_class),
            "confusion": self.confusion, "bn_train_vs_eval": self.bn_train_vs_eval,
            "artifacts": dict(self.artifacts), "artifact_dir": self.artifact_dir,
            "dataset": self.dataset, "epochs": self.epochs, "created": self.created,
            "train_seconds": [round(x, 3) for x in self.train_seconds],
            "threads": self.threads,
            **({"objective": self.objective, "direction": self.direction,
                "filled": dict(self.filled)} if self.objective else {}),
        }

    def lines(self) -> list[str]:
        """What ``hpsearch best`` prints."""
        if self.objective is not None:
            return self._own_lines()
        out = [f"best trial #{self.trial_number} of study {self.study_name} ({self.dataset}, "
               f"{plural(self.epochs, 'epoch')}): validation accuracy {self.val_acc:.4f}"]
        out += [f"  {k:16} {v}" for k, v in active_params(self.config.as_dict()).items()]
        n = len(self.test_accs)
        if self.retrain and n > 1 and len(set(self.test_accs)) == 1:
            # A zero spread reads as a bug unless it says why: every seed gave the same
            # count of correct test images (small test sets and easy configs do that).
            out.append(f"test accuracy {self.test_acc:.4f} on every seed "
                       f"({_seed_range(self.seeds)}, n={n}: all {n} seeds agreed, std 0)")
        elif self.retrain:
            out.append(f"test accuracy {self.test_acc:.4f} ± {self.test_acc_std:.4f} "
                       f"(mean ± std over seeds {_seed_range(self.seeds)}, n={n})")
        else:
            out.append(f"test accuracy {self.test_acc:.4f} (the trial's seed {self.seeds[0]}, "
                       f"n=1; retrained validation accuracy {self.retrain_val_acc:.4f}"
                       + (", as the study's" if self.retrain_val_acc == self.val_acc else
                          f", the study's {self.val_acc:.4f}: trained on another thread count "
                          "or torch version, whose float sums differ") + ")")
        if self.train_seconds:
            out.append(f"trained {plural(len(self.train_seconds), 'time')} in "
                       f"{sum(self.train_seconds):.1f} s "
                       f"({plural(self.threads or 1, 'torch thread')})")
        out += self._per_class_lines()
        if self.bn_train_vs_eval:
            bn = self.bn_train_vs_eval
            ci = ""
            if bn.get("shift") is not None:
                ci = (f"; paired over {bn['n']} seeds: shift {bn['shift']:+.2f} pts"
                      + (f" [{bn['ci_low']:+.2f}, {bn['ci_high']:+.2f}] (95%)"
                         if bn.get("ci_low") is not None else ", no interval yet")
                      + f", p={bn['p']:.2g}")
            out.append(f"batch norm: eval mode (running stats) {bn['eval_mode']:.4f} vs train "
                       f"mode (batch stats) {bn['train_mode']:.4f}: "
                       f"{100 * (bn['train_mode'] - bn['eval_mode']):+.2f} pts in train mode"
                       + ci)
        if self.artifacts:
            names = ", ".join(f"{k} {v}" for k, v in self.artifacts.items())
            out.append(f"artifacts of trial #{self.trial_number} in {self.artifact_dir}: "
                       f"{names}")
        if self.saved is None or self.saved.stored:
            out.append(f"stored as study user attr {schema.BEST!r}")
        return out

    def _own_lines(self) -> list[str]:
        """A user's objective: its params, its test value, how it was measured."""
        out = [f"best trial #{self.trial_number} of study {self.study_name} (objective "
               f"{self.objective}, {self.direction}): value {self.val_acc:.4f}"]
        out += [f"  {k:16} {param_value(k, v)}" for k, v in self.config.as_dict().items()]
        out += [f"  {k:16} {v}: it needs it and the trial lacks it"
                for k, v in self.filled.items()]
        if self.retrain:
            out.append(f"test value {self.test_acc:.4f} ± {self.test_acc_std:.4f} (mean ± std "
                       f"over seeds {_seed_range(self.seeds)}, n={len(self.test_accs)})")
        else:
            out.append(f"test value {self.test_acc:.4f} (the trial's seed {self.seeds[0]}, n=1)")
        out.append(f"ran {len(self.train_seconds)} time(s) in {sum(self.train_seconds):.1f} s "
                   "(split='test')")
        if self.saved is None or self.saved.stored:
            out.append(f"stored as study user attr {schema.BEST!r}")
        return out

    def _per_class_lines(self) -> list[str]:
        cm = np.asarray(self.confusion)
        width = max(5, *(len(c) for c in self.classes))
        seed = "" if len(self.seeds) == 1 else f", seed {self.seeds[0]}'s model"
        out = [f"per-class test accuracy{seed}:",
               f"  {'class':{width}}  {'acc':>6}  {'n':>6}  most confused with"]
        for i, name in enumerate(self.classes):
            acc = self.per_class.get(name)
            off = cm[i].copy()
            off[i] = 0
            worst = (f"{self.classes[int(off.argmax())]} ({int(off.max())})"
                     if off.max() > 0 else "-")
            shown = f"{acc:.3f}" if acc is not None else "n/a"
            out.append(f"  {name:{width}}  {shown:>6}  {int(cm[i].sum()):>6}  {worst}")
        return out


def bn_modes(eval_accs: list[float], train_accs: list[float]) -> dict[str, Any]:
    """Each seed's model measured in eval mode (running statistics) and in train mode (each
    test batch normalized by its own statistics): the means, and the paired statistics of
    train minus eval in points (one model, two modes; verify's signed-rank shift, its 95%
    interval and p, which need 6 seeds to reach 0.05)."""
    out: dict[str, Any] = {"eval_mode": float(np.mean(eval_accs)),
                           "train_mode": float(np.mean(train_accs)), "n": len(eval_accs),
                           "shift": None, "ci_low": None, "ci_high": None, "p": None}
    if len(eval_accs) >= 2:
        ps = paired_stats(100 * np.asarray(eval_accs), 100 * np.asarray(train_accs))
        lo, hi = ps.ci_low, ps.ci_high
        out.update(shift=ps.shift, p=ps.p_wilcoxon,
                   ci_low=lo if math.isfinite(lo) else None,
                   ci_high=hi if math.isfinite(hi) else None)
    return out


@contextlib.contextmanager
def _threads(n: int) -> Iterator[int]:
    """Train on ``n`` torch threads, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def _seed_range(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


# ---------------------------------------------------------------------------- best


def best(storage: str, *, study_name: str | None = None, retrain: bool = False,
         seeds: int = 1, device: str = "auto", data_dir: str | None = None,
         fuse: int | None = None, progress: Callable[[str], None] | None = None,
         objective: str | None = None, dataset: str | None = None) -> BestResult:
    """Retrain the study's best config, measure it on the test split, store and upload it.

    Without ``retrain`` the config is trained once with the trial's own ``train_seed``
    (reproducing the trial); with ``retrain`` it is trained on seeds ``0..seeds-1`` and the
    test accuracy is a mean ± std, the seeds trained as one fused model where that pays
    (:func:`hpsearch.training.train_seeds`; ``fuse`` caps how many, 1 trains them one by one).
    Data and epochs come from the study's provenance; ``dataset`` is where its ``.npz`` or
    image folder is now, when it moved (checked against the study's record of its data,
    :func:`hpsearch.replay.study_settings`). ``progress`` gets one line as the
    training starts and one per finished training. A study of a user's objective (it
    records it; ``objective`` points at it when it moved or for a study hpsearch did not
    make) is re-run through the objective with ``split="test"`` (:func:`best_own`).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    _check_device(device)
    study = load_study(storage, study_name)
    if len(study.directions) != 1:
        raise StudyError(f"study {study.study_name!r} is multi-objective ({len(study.directions)}"
                         " objectives): it has no single best trial, and hpsearch studies "
                         "maximize one value")
    loaded = study_objective(study, objective, "best")
    if loaded is not None and dataset is not None:
        raise ConfigError(own_data_message(study.study_name))
    if loaded is not None:
        return best_own(study, loaded, storage, retrain=retrain, seeds=seeds,
                        progress=progress)
    if schema.provenance(study) is None:
        raise StudyError(foreign_message(study.study_name, "best"))
    trial = complete_trials(study)[0]
    cfg = trial_config(trial)
    settings = study_settings(study, data_dir=data_dir, dataset=dataset)
    data = study_data(settings, device, study, dataset=dataset)
    if retrain:
        seed_list = list(range(seeds))
    else:
        seed_list = [int(trial.user_attrs.get(schema.TRAIN_SEED, settings.seed * 1_000_003
                                              + trial.number))]

    test_accs, train_mode_accs, seconds, first = [], [], [], None
    # The trial's own seed reproduces the trial on the trial's own thread count (recorded
    # by optimize; else this process's): a CNN's float sums, so its accuracy, depend on it
    # (a digits CNN trained on 2 threads gave 0.9554, on 1 thread 0.9442; MLPs agreed).
    # Fresh seeds use training_threads.
    run = trial.user_attrs.get(schema.RUN)
    own = run.get("threads") if isinstance(run, dict) else None
    threads = (training_threads(data.device) if retrain
               else _threads(own) if isinstance(own, int) and own > 0
               else contextlib.nullcontext(torch.get_num_threads()))
    say = progress or (lambda line: None)
    say(f"training trial #{trial.number}'s config on {plural(len(seed_list), 'seed')} "
        f"({_seed_range(seed_list)}), {plural(settings.epochs, 'epoch')} each, on "
        f"{data.device}")
    with threads as n_threads:
        runs = (train_seeds(cfg, data, seed_list, epochs=settings.epochs,
                            patience=settings.patience, fuse=fuse) if retrain
                else [train(cfg, data, epochs=settings.epochs, patience=settings.patience,
                            seed=seed_list[0])])
        for i, result in enumerate(runs):
            assert result.model is not None  # train always returns the model
            _, acc, pred = evaluate(result.model, data, cfg, "test")
            test_accs.append(acc)
            if cfg.batch_norm != "none":
                train_mode_accs.append(bn_batch_stats_accuracy(result.model, data, cfg))
            seconds.append(result.seconds)
            say(f"trained {i + 1}/{len(seed_list)} (seed {seed_list[i]}) in "
                f"{result.seconds:.1f} s: test accuracy {acc:.4f}")
            if first is None:
                first = (result, pred)
    assert first is not None
    result, pred = first
    model = result.model
    assert model is not None

    cm = confusion_matrix(data.test_y, pred, data.n_classes)
    out = BestResult(
        study_name=study.study_name, trial_number=trial.number, config=cfg,
        val_acc=float(trial.value or 0.0), retrain_val_acc=result.val_acc, seeds=seed_list,
        test_accs=test_accs, classes=data.classes, confusion=cm.tolist(),
        per_class=dict(zip(data.classes, per_class_accuracy(cm), strict=True)),
        dataset=settings.dataset, epochs=settings.epochs, retrain=retrain, model=model,
        train_seconds=seconds, threads=n_threads)
    if train_mode_accs:
        out.bn_train_vs_eval = bn_modes(test_accs, train_mode_accs)
    _upload(study, trial, storage, out)
    out.saved = save_result(study, schema.BEST, out.to_dict(), storage)
    if not out.saved.stored:  # the same cause cost the uploads: one message says it
        out.warnings = [w for w in out.warnings if not w.startswith("could not upload")]
    return out


def best_own(study: optuna.Study, loaded: LoadedObjective, storage: str, *, retrain: bool,
             seeds: int, progress: Callable[[str], None] | None = None) -> BestResult:
    """The best trial of a user's objective, re-run with ``split="test"``: on its own seed
    (which reproduces the trial when the objective is seeded as docs/own-model.md says), or
    on seeds ``0..seeds-1`` for a mean ± std."""
    ranked = complete_trials(study)
    trial = ranked[0]
    params = trial_params(trial)
    seed_list = (list(range(seeds)) if retrain
                 else [int(trial.user_attrs.get(schema.TRAIN_SEED, trial.number))])
    say = progress or (lambda line: None)
    say(f"running trial #{trial.number}'s params through {loaded.spec} on seed(s) "
        f"{_seed_range(seed_list)}, split='test'")
    fallback = fallback_values(ranked, study)
    values, seconds, filled = [], [], {}
    for i, seed in enumerate(seed_list):
        start = time.perf_counter()
        value, note = rerun(loaded, params.as_dict(), seed=seed, split="test",
                            fallback=fallback)
        seconds.append(time.perf_counter() - start)
        values.append(value)
        filled.update({k: f"{v['value']!r} (from trial #{v['trial']})"
                       for k, v in note.get("filled", {}).items()})
        say(f"ran {i + 1}/{len(seed_list)} (seed {seed}) in {seconds[-1]:.1f} s: test value "
            f"{value:.4f}")
    out = BestResult(
        study_name=study.study_name, trial_number=trial.number, config=params,
        val_acc=float(trial.value or 0.0), retrain_val_acc=float("nan"), seeds=seed_list,
        test_accs=values, classes=(), confusion=[], per_class={}, dataset="", epochs=0,
        retrain=retrain, train_seconds=seconds, objective=loaded.spec,
        direction=study.direction.name.lower(), filled=filled)
    out.saved = save_result(study, schema.BEST, out.to_dict(), storage)
    return out


def _check_device(name: str) -> None:
    """``--device mps`` where torch has no MPS backend: one message, not torch's error."""
    mps = getattr(torch.backends, "mps", None)
    if name.split(":", 1)[0].strip().lower() == "mps" and (mps is None
                                                           or not mps.is_available()):
        raise ConfigError(f"--device {name}: MPS (Apple's GPU) is not available here; use "
                          "--device cpu, cuda or auto")


def _upload(study: optuna.Study, trial: FrozenTrial, storage: str, out: BestResult) -> None:
    """Weights (.pt) and confusion matrix (.json, .csv) as artifacts of the best trial.

    optuna-dashboard shows them on the trial's page (see ``storage.put_artifact``: Optuna
    itself refuses to change a finished trial); a re-run replaces them in place. The file
    names (``best-trial-N-...``) and the ``best`` attr's ``trial_number`` tie them to it.
    An artifact store that cannot be written costs the upload, not the measurements: the
    failure becomes a warning and the summary is still stored.
    """
    assert out.model is not None
    store_dir = artifact_dir(storage)
    out.artifact_dir = str(store_dir)
    stem = f"best-trial-{trial.number}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp, f"{stem}-weights.pt")
            torch.save({k: v.detach().cpu() for k, v in out.model.state_dict().items()},
                       weights)
            summary = Path(tmp, f"{stem}-confusion.json")
            summary.write_text(json.dumps({
                "classes": list(out.classes), "confusion": out.confusion,
                "per_class": out.per_class, "test_acc": out.test_accs[0],
                "seed": out.seeds[0], "config": out.config.as_dict(),
                "note": "rows: true class, columns: predicted class"}, indent=1))
            table = Path(tmp, f"{stem}-confusion.csv")
            with table.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["true \\ predicted", *out.classes])
                writer.writerows([name, *row] for name, row in zip(out.classes, out.confusion,
                                                                   strict=True))
            for key, path, mimetype in (("weights", weights, "application/octet-stream"),
                                        ("confusion_json", summary, "application/json"),
                                        ("confusion_csv", table, "text/csv")):
                out.artifacts[key] = upload(study, storage, path, mimetype=mimetype,
                                            trial_id=trial_id(trial))
    except Exception as exc:  # read-only directory, full disk, storage write refused
        out.warnings.append(f"could not upload artifacts to {store_dir}: "
                            f"{error_reason(exc, storage)}")
