"""Measurements of a trained model: confusion matrix, per-class accuracy, BN modes."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from hpsearch.space import TrialConfig
from hpsearch.training.device import DeviceProfile, profile_for
from hpsearch.training.device_data import DeviceData
from hpsearch.training.models import build_model

# ---------------------------------------------------------------------------- measurements


def confusion_matrix(y: torch.Tensor, pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Counts ``[true, predicted]`` as an int64 CPU tensor (one bincount, no sklearn)."""
    flat = y.to(torch.int64) * n_classes + pred.to(torch.int64)
    return torch.bincount(flat, minlength=n_classes ** 2).reshape(n_classes, n_classes).cpu()


def per_class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Recall per class (diagonal / row sum); None for a class absent from the split."""
    totals = confusion.sum(1)
    return [float(confusion[i, i] / totals[i]) if totals[i] else None
            for i in range(len(confusion))]


_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def bn_batch_stats_accuracy(model: nn.Module, data: DeviceData, cfg: TrialConfig,
                            split: str = "test", *, profile: DeviceProfile | None = None,
                            ) -> float:
    """Accuracy with the BN layers in train mode: each batch normalized by its own statistics.

    Works on a deep copy, because train-mode BN updates its running statistics. Only the BN
    layers switch mode (dropout stays off), so the difference to :func:`evaluate` is BN's
    alone. Batches are about the config's ``batch_size`` (the model evaluated as it was
    trained: batches of 2,048 have statistics close to the running ones and hide what the
    mode changes), of near-equal size, so no batch is a single example (train-mode BN
    cannot normalize that).
    """
    profile = profile_for(data.device, profile)
    twin = copy.deepcopy(model).eval()
    for module in twin.modules():
        if isinstance(module, _BN):
            module.train()
    x_all, y_all = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    n_batches = max(1, min(len(y_all) // 2, math.ceil(len(y_all) / max(2, cfg.batch_size))))
    correct = torch.zeros((), device=data.device)
    for idx in torch.arange(len(y_all), device=data.device).tensor_split(n_batches):
        x = data.prepare(x_all[idx], input_norm=cfg.input_norm)
        with profile.autocast(data.device):
            logits = twin(x).float()
        correct += (logits.argmax(1) == y_all[idx]).sum()
    return (correct / max(1, len(y_all))).item()  # float32, as evaluate() computes it


def load_model(weights: str | Path, cfg: TrialConfig, input_shape: tuple[int, int, int],
               n_classes: int, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild ``cfg``'s model and load a ``best`` weights artifact (tensors only)."""
    model = build_model(cfg, input_shape, n_classes)
    state = torch.load(weights, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
