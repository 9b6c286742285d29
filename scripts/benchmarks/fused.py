"""The fused trainer (``hpsearch.training.fused``): trainings per minute at K models per
fused run, for a digits MLP, seed 000's MLP and seed 004's CNN, and whether fusing a study's
sampled trials would pay (rows fused_digits, fused_seed000, fused_cnn004, fused_optimize)."""

from __future__ import annotations

import functools
import time
from typing import Any

import optuna

from benchmarks.common import (
    CNN004_CFG,
    SEED_CFG,
    STUDY_EPOCHS,
    Context,
    median,
    paired_ratio,
    seed_images,
    subset,
    timed,
)
from hpsearch.space import Preset, TrialConfig, active_params, sample_config
from hpsearch.training import DeviceData, TrainResult, load_dataset, train
from hpsearch.training.fused import PER_MEMBER, fuse_groups, train_many

# The fused rows: the digits MLP of the threads row; seed 000's MLP on fuse_train images.
FUSED_DIGITS_CFG = TrialConfig(hidden_units=128, hidden_layers=2, optimizer="adam", lr=0.003)
FUSED_DIGITS_WIDTHS = ((64, 1), (256, 2), (512, 2))  # (hidden_units, hidden_layers), halving
CNN004_KS = (1, 2, 4)




def _trainings_per_minute(ctx: Context, cfg: TrialConfig, data: DeviceData, ks: tuple[int, ...],
                          epochs: int) -> dict[str, Any]:
    """Trainings per minute of ``cfg`` at every K in ``ks``: K = 1 is ``train()`` one run
    at a time, K > 1 one fused run of K seeds (``train_many(..., fuse=K)``). Each
    repetition runs every K back to back; ratios are paired per repetition. On a CPU the
    ratios of process CPU time are kept too: other processes on the machine stretch wall
    time, and stretch the two sides of a pair unequally."""
    secs: dict[int, list[float]] = {k: [] for k in ks}
    cpu: dict[int, list[float]] = {k: [] for k in ks}
    for rep in range(ctx.args.reps):
        for k in ks:
            jobs = [(cfg, 1000 * rep + s) for s in range(k)]
            c0 = time.process_time()
            seconds, _ = timed(functools.partial(train_many, jobs, data, epochs=epochs,
                                                 patience=epochs, fuse=k), ctx.device)
            secs[k].append(seconds / k)  # per training
            cpu[k].append((time.process_time() - c0) / k)
    rate = {k: 60 / median(v) for k, v in secs.items()}
    ratio = {k: paired_ratio(secs[1], v) for k, v in secs.items()}
    cpu_ratio = {k: paired_ratio(cpu[1], v) for k, v in cpu.items()}
    on_cpu = ctx.device.type == "cpu"
    return {"ks": list(ks), "epochs": epochs, "n_train": len(data.train_y),
            "n_val": len(data.val_y), "trainings_per_min": {str(k): v for k, v in rate.items()},
            "ratio_vs_k1": {str(k): v for k, v in ratio.items()},
            "cpu_time_ratio_vs_k1": {str(k): v for k, v in cpu_ratio.items()} if on_cpu else None,
            "measured": ", ".join(
                f"K={k} {rate[k]:.0f}/min" + (f" ({ratio[k]:.1f}x" + (
                    f"; {cpu_ratio[k]:.1f}x in CPU time)" if on_cpu else ")") if k > 1 else "")
                for k in ks),
            "raw": {"seconds_per_training": {str(k): v for k, v in secs.items()},
                    "cpu_seconds_per_training": {str(k): v for k, v in cpu.items()}}}


def row_fused_digits(ctx: Context) -> dict[str, Any]:
    """A digits-sized MLP (64-128-64-10, Adam; the threads row's 3-epoch trial) trained K at
    a time, fused, against one at a time; then smaller and bigger widths at the largest K."""
    data = subset(DeviceData.create(load_dataset("digits"), device=ctx.device), ctx.sizes)
    ks = ctx.sizes.fuse_ks
    row = _trainings_per_minute(ctx, FUSED_DIGITS_CFG, data, ks, STUDY_EPOCHS)
    k16 = row["ratio_vs_k1"].get("16")
    row["pass"] = None if k16 is None else k16 >= 4.0
    widths = {}
    for units, layers in FUSED_DIGITS_WIDTHS:
        cfg = FUSED_DIGITS_CFG.replace(hidden_units=units, hidden_layers=layers)
        other = _trainings_per_minute(ctx, cfg, data, (1, ks[-2]), STUDY_EPOCHS)
        widths["-".join(map(str, cfg.hidden_widths()))] = {
            "ratio": other["ratio_vs_k1"][str(ks[-2])],
            "cpu_time_ratio": (other["cpu_time_ratio_vs_k1"] or {}).get(str(ks[-2]))}
    row["other_widths"] = widths
    row["measured"] += f"; other widths at K={ks[-2]}: " + ", ".join(
        f"{w} {v['ratio']:.1f}x" for w, v in widths.items())
    return row


def row_fused_seed000(ctx: Context) -> dict[str, Any]:
    """Seed 000's MLP (784-512-256-10, BN, dropout 0.5, batch 32) trained K at a time: one
    epoch of ``fuse_train`` images (all of them on CUDA) plus the validation images."""
    data = seed_images(ctx)
    row = _trainings_per_minute(ctx, SEED_CFG, data, ctx.sizes.fuse_ks, 1)
    row["dataset"] = data.name
    row["pass"] = None
    return row


def row_fused_cnn004(ctx: Context) -> dict[str, Any]:
    """Seed 004's CNN (conv 16-32-64, FC 100) trained K at a time on the same images as
    ``fused_seed000``: would fusing the arms of a cnn_regularization config pay here?"""
    data = seed_images(ctx)
    ks = tuple(k for k in CNN004_KS if k <= max(ctx.sizes.fuse_ks))
    row = _trainings_per_minute(ctx, CNN004_CFG, data, ks, 1)
    row["dataset"] = data.name
    row["pass"] = None
    return row


def row_fused_optimize(ctx: Context) -> dict[str, Any]:
    """Would fusing trials inside ``optimize`` pay? Trials as a study samples its first ones
    (random sampler, the default space, digits, 3 epochs): how many of them could share a
    fused model (``fuse_groups``), and ``train_many`` against ``train()`` one by one. Then
    trials of a space whose architecture is fixed (every param ``fuse_key`` compares, and
    the dropout rates, fixed to a sampled trial's; the rest sampled, as in a study of one
    question), fused all together against one by one: a new architecture per repetition."""
    data = subset(DeviceData.create(load_dataset("digits"), device=ctx.device), ctx.sizes)
    n = ctx.sizes.fuse_trials
    alone: dict[str, list[float]] = {"default": [], "fixed": []}
    fused: dict[str, list[float]] = {"default": [], "fixed": []}
    groups, fixed_groups, archs = [], [], []
    for rep in range(ctx.args.reps):
        cfgs = _sampled(Preset(), n, seed=rep)
        groups.append([len(g) for g in fuse_groups(cfgs)])
        first = _sampled(Preset(), 1, seed=100 + rep)[0]
        archs.append(_architecture(first))
        # Dropout rates too: a rate of 0 has no layer, so sampled rates would rarely fuse.
        fixed = Preset(name="bench-fused", fixed={
            k: v for k, v in active_params(first.as_dict()).items()
            if k not in PER_MEMBER or k in ("dropout", "dropout2d")})
        same = _sampled(fixed, n, seed=rep)
        fixed_groups.append([len(g) for g in fuse_groups(same)])
        for name, trials, fuse in (("default", cfgs, None), ("fixed", same, n)):
            jobs = [(c, rep) for c in trials]
            alone[name].append(timed(functools.partial(_one_by_one, jobs, data), ctx.device)[0])
            fused[name].append(timed(functools.partial(
                train_many, jobs, data, epochs=STUDY_EPOCHS, patience=STUDY_EPOCHS, fuse=fuse),
                ctx.device)[0])
    speedup = {k: paired_ratio(alone[k], fused[k]) for k in alone}
    each = [a / f for a, f in zip(alone["fixed"], fused["fixed"], strict=True)]
    return {
        "trials": n, "epochs": STUDY_EPOCHS, "default_groups": groups,
        "default_speedup": speedup["default"], "fixed_architecture_speedup": speedup["fixed"],
        "fixed_architectures": archs, "fixed_architecture_groups": fixed_groups,
        "pass": None,
        "measured": f"{n} random trials of the default space form groups of "
                    f"{max(max(g) for g in groups)} at most ({len(groups)} draws): "
                    f"train_many {speedup['default']:.2f}x one by one; {n} trials of one "
                    f"architecture fused: " + ", ".join(
                        f"{a} {x:.1f}x" for a, x in zip(archs, each, strict=True)),
        "raw": {"alone_s": alone, "fused_s": fused},
    }


def _architecture(cfg: TrialConfig) -> str:
    if cfg.model == "mlp":
        return f"mlp {'-'.join(map(str, cfg.hidden_widths()))} b{cfg.batch_size}"
    return f"cnn {cfg.cnn_channels}ch b{cfg.batch_size}"


def _one_by_one(jobs: list[tuple[TrialConfig, int]], data: DeviceData) -> list[TrainResult]:
    return [train(c, data, epochs=STUDY_EPOCHS, patience=STUDY_EPOCHS, seed=s) for c, s in jobs]


def _sampled(preset: Preset, n: int, seed: int) -> list[TrialConfig]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [sample_config(study.ask(), preset) for _ in range(n)]


