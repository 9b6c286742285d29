"""Adapt ``train`` to Optuna: sample a config, report every epoch, prune, record user attrs.

This is the only module that touches an Optuna ``Trial`` while training.
"""

from __future__ import annotations

import os
import platform

import optuna
import torch

from hpsearch.settings import Settings
from hpsearch.space import Preset, sample_config
from hpsearch.training import DeviceData, EpochMetrics, train


class TrialFailure(Exception):
    """A trial that cannot produce a result (e.g. CUDA out of memory); the study goes on."""


def training_seed(settings: Settings, trial_number: int) -> int:
    """Each trial trains with its own seed, derived from the study's seed and its number."""
    return settings.seed * 1_000_003 + trial_number


class Objective:
    """``objective(trial) -> validation accuracy``; raises ``TrialPruned`` to prune."""

    def __init__(self, preset: Preset, settings: Settings, data: DeviceData) -> None:
        self.preset, self.settings, self.data = preset, settings, data

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = sample_config(trial, self.preset)
        seed = training_seed(self.settings, trial.number)
        # Fixed params are not in trial.params: keep the whole config so `best` and
        # `verify` can retrain exactly this trial.
        trial.set_user_attr("config", cfg.as_dict())
        trial.set_user_attr("train_seed", seed)

        def on_epoch(epoch: int, m: EpochMetrics) -> bool:
            trial.report(m.val_acc, epoch)
            return trial.should_prune()

        try:
            result = train(cfg, self.data, epochs=self.settings.epochs,
                           patience=self.settings.patience, seed=seed, on_epoch=on_epoch)
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            reason = f"out of memory: {str(exc).splitlines()[0][:200]}"
            trial.set_user_attr("failure_reason", reason)
            raise TrialFailure(reason) from None
        except Exception as exc:
            # The study goes on (Optuna fails the trial and logs the traceback); keep the
            # reason with the trial so the report and the failure limit can show it.
            trial.set_user_attr("failure_reason", f"{type(exc).__name__}: {exc}"[:300])
            raise

        # Two user attrs, not one per figure: Optuna commits each attr on its own, and a
        # commit is a few milliseconds of a trial that may train for a fraction of a second.
        h = result.history
        trial.set_user_attr("learning_curve", {
            "train_loss": [m.train_loss for m in h], "val_loss": [m.val_loss for m in h],
            "val_acc": [m.val_acc for m in h], "lr": [m.lr for m in h],
            "seconds": [round(m.seconds, 4) for m in h]})
        # The trainer says "stopped" when on_epoch asked it to: here that means pruned.
        reason = "pruned" if result.stop_reason == "stopped" else result.stop_reason
        d = self.data
        trial.set_user_attr("run", {"n_params": result.n_params, "device": result.device,
                                    "best_epoch": result.best_epoch, "stop_reason": reason,
                                    # which machine and process: workers share studies
                                    "worker": f"{platform.node()}:{os.getpid()}",
                                    # the real sizes: val_size is clamped on small sets
                                    "splits": {"train": len(d.train_y),
                                               "validation": len(d.val_y),
                                               "test": len(d.test_y)}})
        if result.stop_reason == "diverged":
            # A diverged config is a bad config, not a broken trial: pruning keeps it in
            # the study (TPE and the report learn from it) with the reason stored.
            trial.set_user_attr("failure_reason", result.detail)
            raise optuna.TrialPruned(result.detail)
        if result.stop_reason == "stopped":
            raise optuna.TrialPruned(f"pruned after epoch {len(h)}")
        return result.val_acc
