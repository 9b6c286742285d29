"""Adapt ``train`` to Optuna: sample a config, report every epoch, prune, record user attrs.

This is the only module that touches an Optuna ``Trial`` while training. Under the paired
design (:mod:`hpsearch.optimize.designs`) one trial trains its config under every arm of the
question, in lockstep (:mod:`hpsearch.optimize.lockstep`), and reports the arms' mean.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import optuna
import torch

from hpsearch import schema
from hpsearch.optimize.designs import Arms
from hpsearch.optimize.lockstep import Lockstep
from hpsearch.optimize.signals import check
from hpsearch.settings import Settings
from hpsearch.space import Preset, TrialConfig, sample_config
from hpsearch.training import DeviceData, EpochMetrics, TrainResult, threads_for, train


class TrialFailure(Exception):
    """A trial that cannot produce a result (e.g. CUDA out of memory); the study goes on."""


def training_seed(settings: Settings, trial_number: int) -> int:
    """Each trial trains with its own seed, derived from the study's seed and its number."""
    return settings.seed * 1_000_003 + trial_number


class Objective:
    """``objective(trial) -> validation accuracy``; raises ``TrialPruned`` to prune."""

    def __init__(self, preset: Preset, settings: Settings, data: DeviceData,
                 arms: Arms | None = None) -> None:
        self.preset, self.settings, self.data = preset, settings, data
        self.paired = arms if arms is not None and arms.design == "paired" else None
        self.ceiling = torch.get_num_threads()  # run_worker set the worker's share

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = sample_config(trial, self.preset, arms=None if self.paired is None
                            else (self.paired.param, self.paired.values))
        # The worker's share of the cores is the ceiling; an MLP on a CPU takes one thread
        # (training.threads_for says why, docs/performance.md has the measurement).
        torch.set_num_threads(threads_for(cfg.model, self.data.device, self.ceiling))
        seed = training_seed(self.settings, trial.number)
        # Fixed params are not in trial.params: keep the whole config so `best` and
        # `verify` can retrain exactly this trial.
        schema.set_started(trial, cfg.as_dict(), seed)
        try:
            if self.paired is not None:
                result = self._train_arms(trial, cfg, seed, self.paired)
            else:
                result = self._train(trial, cfg, seed)
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            reason = f"out of memory: {str(exc).splitlines()[0][:200]}"
            schema.set_failure_reason(trial, reason)
            raise TrialFailure(reason) from None
        except Exception as exc:
            # The study goes on (Optuna fails the trial and logs the traceback); keep the
            # reason with the trial so the report and the failure limit can show it.
            schema.set_failure_reason(trial, f"{type(exc).__name__}: {exc}"[:300])
            raise

        # Two user attrs, not one per figure: Optuna commits each attr on its own, and a
        # commit is a few milliseconds of a trial that may train for a fraction of a second.
        h = result.history
        schema.set_learning_curve(trial, {
            "train_loss": [m.train_loss for m in h], "val_loss": [m.val_loss for m in h],
            "val_acc": [m.val_acc for m in h], "lr": [m.lr for m in h],
            "seconds": [round(m.seconds, 4) for m in h]})
        # The trainer says "stopped" when on_epoch asked it to: here that means pruned.
        reason = "pruned" if result.stop_reason == "stopped" else result.stop_reason
        d = self.data
        schema.set_run_info(trial, {"n_params": result.n_params, "device": result.device,
                                    "best_epoch": result.best_epoch, "stop_reason": reason,
                                    # `best` retrains the trial on as many: a CNN's float
                                    # sums (so its accuracy) depend on the thread count
                                    "threads": torch.get_num_threads(),
                                    # which machine and process: workers share studies
                                    "worker": f"{platform.node()}:{os.getpid()}",
                                    # the real sizes: val_size is clamped on small sets
                                    "splits": {"train": len(d.train_y),
                                               "validation": len(d.val_y),
                                               "test": len(d.test_y)}})
        if result.stop_reason == "diverged":
            # A diverged config is a bad config, not a broken trial: pruning keeps it in
            # the study (TPE and the report learn from it) with the reason stored.
            schema.set_failure_reason(trial, result.detail)
            raise optuna.TrialPruned(result.detail)
        if result.stop_reason == "stopped":
            raise optuna.TrialPruned(f"pruned after epoch {len(h)}")
        return result.val_acc

    def _train(self, trial: optuna.Trial, cfg: TrialConfig, seed: int) -> TrainResult:
        def on_epoch(epoch: int, m: EpochMetrics) -> bool:
            check()  # a Ctrl-C that landed in a finalizer and was swallowed
            trial.report(m.val_acc, epoch)
            return trial.should_prune()

        return train(cfg, self.data, epochs=self.settings.epochs,
                     patience=self.settings.patience, seed=seed, on_epoch=on_epoch)

    def _train_arms(self, trial: optuna.Trial, cfg: TrialConfig, seed: int,
                    arms: Arms) -> TrainResult:
        """Every arm on the same seed, in lockstep; the pruner sees the arms' mean.

        Returns a result whose history is the arms' mean per epoch (what was reported) and
        whose ``stop_reason`` is the joint one; each arm's curve and final value are the
        trial's user attr ``arms`` (what the paired analysis reads).
        """
        cfgs = [cfg.replace(**{arms.param: v}) for v in arms.values]
        best = [0.0] * len(cfgs)

        def decide(epoch: int, metrics: list[EpochMetrics]) -> bool:
            check()
            for j, m in enumerate(metrics):
                best[j] = max(best[j], m.val_acc)
            trial.report(sum(best) / len(best), epoch)
            return trial.should_prune()

        def arm(c: TrialConfig) -> Callable[[Callable[[int, EpochMetrics], bool]], TrainResult]:
            return lambda on_epoch: train(c, self.data, epochs=self.settings.epochs,
                                          patience=self.settings.patience, seed=seed,
                                          on_epoch=on_epoch)

        results = Lockstep([arm(c) for c in cfgs], decide, rng=_global_rng()).run()
        schema.set_arms(trial, {
            str(v): {"val_acc": [m.val_acc for m in r.history], "final": r.val_acc,
                     "stop_reason": r.stop_reason, "best_epoch": r.best_epoch}
            for v, r in zip(arms.values, results, strict=True)})
        top = max(range(len(results)), key=lambda j: results[j].val_acc)
        schema.set_config(trial, cfgs[top].as_dict())  # `best` retrains the best arm
        return _mean_result(results)


def _global_rng() -> tuple[Callable[[], object], Callable[[object], None]]:
    """Save and restore torch's global generators (CPU and every CUDA device)."""
    def save() -> object:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return torch.get_rng_state(), cuda

    def load(state: object) -> None:
        assert isinstance(state, tuple)
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state_all(state[1])

    return save, load


def _mean_result(results: list[TrainResult]) -> TrainResult:
    """One result standing for the arms: the mean curve, the joint stop, the mean value."""
    import dataclasses

    n = max(len(r.history) for r in results)
    history = []
    for e in range(n):
        ms = [r.history[min(e, len(r.history) - 1)] for r in results]
        history.append(dataclasses.replace(
            ms[0], **{k: sum(getattr(m, k) for m in ms) / len(ms)
                      for k in ("train_loss", "val_loss", "val_acc")}))
    diverged = [r for r in results if r.stop_reason == "diverged"]
    stopped = any(r.stop_reason == "stopped" for r in results)
    first = diverged[0] if diverged else results[0]
    return dataclasses.replace(
        first, history=history, val_acc=sum(r.val_acc for r in results) / len(results),
        stop_reason="diverged" if diverged else "stopped" if stopped else first.stop_reason,
        seconds=sum(r.seconds for r in results))
