"""Seed 002's "a Linear layer followed by BN needs no bias", measured on twins.

Batch norm subtracts each batch's mean, so a bias added just before it cancels: its gradient
is zero up to rounding, and the block computes the same function with or without it. hpsearch
builds those layers without one (the design's rule), so no study can compare the two;
:func:`bias_twins` tests the rule instead of assuming it.

The study's best config with ``batch_norm="before"`` (the placement the rule is about; for a
best config with BN after, this is verify's "before" twin) is trained on each seed twice: as
hpsearch builds it, and with every layer that feeds a BN given a bias
(:func:`hpsearch.training.models.add_bias_before_bn`, PyTorch's default init). The twins
start from the same weights and see the same batches and dropout masks, so the bias, and the
rounding it brings, is all that differs between them. In eval mode BN subtracts its running
mean instead, which takes the bias in as it converges (momentum 0.1: within a few dozen
steps); a model trained for a handful of steps can still tell the twins apart.

Reported, one model pair per seed: the paired shift of test accuracy (with minus without;
verify's signed-rank shift, its 95% interval and p, for which 6 seeds are the fewest that
reach 0.05), the share of test images both twins predict alike (next to the share two seeds'
models predict alike: rounding differences grow over training like a change of seed, only
less), and the largest gradient the bias got next to its layer's weight's (zero up to
rounding, where the rule holds). Stored as the study user attr
:data:`hpsearch.schema.BIAS_TWINS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from hpsearch import schema
from hpsearch.analysis import paired_stats
from hpsearch.errors import ConfigError, StudyError
from hpsearch.replay import (
    complete_trials,
    foreign_message,
    now_iso,
    study_data,
    study_settings,
    trial_config,
)
from hpsearch.space import TrialConfig
from hpsearch.storage import load_study, save_result
from hpsearch.text import plural
from hpsearch.training import (
    DeviceData,
    add_bias_before_bn,
    build_model,
    evaluate,
    train,
    training_threads,
)

MIN_SEEDS = 6  # the fewest with which a two-sided signed-rank p reaches 0.05


def bias_twins(storage: str, *, study_name: str | None = None, seeds: int = MIN_SEEDS,
               device: str = "auto", data_dir: str | None = None,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the best config (BN before the activation) with and without a bias before each
    BN on seeds ``0..seeds-1``; store and return the comparison (JSON-safe)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < MIN_SEEDS:
        raise ConfigError(f"seeds must be an integer >= {MIN_SEEDS} (the fewest a paired "
                          f"signed-rank test reaches p < 0.05 with), got {seeds!r}")
    study = load_study(storage, study_name)
    if schema.provenance(study) is None:
        raise StudyError(foreign_message(study.study_name, "the bias check"))
    trial = complete_trials(study)[0]
    cfg = trial_config(trial).replace(batch_norm="before")
    settings = study_settings(study, data_dir=data_dir)
    data = study_data(settings, device, study)
    say = progress or (lambda line: None)
    say(f"training trial #{trial.number}'s config (batch_norm=before) with and without a "
        f"bias before each BN on {plural(seeds, 'seed')}, {plural(settings.epochs, 'epoch')} "
        f"each, on {data.device}")
    rows = []
    with training_threads(data.device):
        for seed in range(seeds):
            rows.append(_twins(cfg, data, seed, settings.epochs, settings.patience))
            r = rows[-1]
            say(f"seed {seed}: without {r['without']:.4f}, with {r['with']:.4f}, "
                f"{100 * r['agreement']:.2f}% of predictions alike")
    without = [r["without"] for r in rows]
    with_ = [r["with"] for r in rows]
    ps = paired_stats(100 * np.asarray(without), 100 * np.asarray(with_))
    out: dict[str, Any] = {
        "study_name": study.study_name, "trial_number": trial.number,
        "config": cfg.as_dict(), "seeds": list(range(seeds)), "epochs": settings.epochs,
        "dataset": settings.dataset, "device": str(data.device),
        "without_bias": without, "with_bias": with_,
        "agreement": [r["agreement"] for r in rows],
        # the yardstick: how alike two seeds' models (without the bias) predict
        "seed_agreement": [float((a["pred"] == b["pred"]).float().mean())
                           for a, b in zip(rows, rows[1:], strict=False)],
        "grad_ratio": max((r["grad_ratio"] for r in rows if r["grad_ratio"] is not None),
                          default=None),
        "shift": ps.shift, "p": ps.p_wilcoxon, "n": ps.n,
        "ci_low": ps.ci_low if math.isfinite(ps.ci_low) else None,
        "ci_high": ps.ci_high if math.isfinite(ps.ci_high) else None,
        "seconds": sum(r["seconds"] for r in rows), "created": now_iso(),
    }
    saved = save_result(study, schema.BIAS_TWINS, out, storage)
    if not saved.stored:
        say(saved.message())
    return out


def _twins(cfg: TrialConfig, data: DeviceData, seed: int, epochs: int, patience: int,
           ) -> dict[str, Any]:
    """One seed's pair: hpsearch's model and the same one with biases before its BNs."""
    # The largest |gradient| each added bias and its layer's weight got over training
    # (kept on the device; a backward hook reads every step's gradient).
    peak = {"bias": torch.zeros(()), "weight": torch.zeros(())}

    def track(kind: str) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            peak[kind] = torch.maximum(peak[kind].to(grad.device), grad.detach().abs().max())
        return hook

    def with_bias(c: TrialConfig, shape: tuple[int, int, int], n: int) -> nn.Module:
        model = build_model(c, shape, n)
        for layer in add_bias_before_bn(model, torch.Generator().manual_seed(seed)):
            assert layer.bias is not None  # it was just given one
            layer.weight.register_hook(track("weight"))
            layer.bias.register_hook(track("bias"))
        return model

    plain = train(cfg, data, epochs=epochs, patience=patience, seed=seed)
    twin = train(cfg, data, epochs=epochs, patience=patience, seed=seed, build=with_bias)
    assert plain.model is not None and twin.model is not None  # train returns its model
    _, acc_without, pred_without = evaluate(plain.model, data, cfg, "test")
    _, acc_with, pred_with = evaluate(twin.model, data, cfg, "test")
    weight = float(peak["weight"])
    return {"without": acc_without, "with": acc_with, "pred": pred_without,
            "agreement": float((pred_without == pred_with).float().mean()),
            "grad_ratio": float(peak["bias"]) / weight if weight > 0 else None,
            "seconds": plain.seconds + twin.seconds}
