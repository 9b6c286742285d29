"""The trainer against seed 000's loop: epoch time, FLOP/s efficiency, time to accuracy,
torch threads, torch.compile, bf16 and the CNN's memory layout (rows epoch, efficiency,
accuracy, threads, compile, bf16, cnn_layout)."""

from __future__ import annotations

import functools
import os
import time
from typing import Any, cast

import torch
from torch import nn

from benchmarks.common import (
    BIG_BATCH,
    CNN004_CFG,
    SEED_CFG,
    STUDY_EPOCHS,
    Context,
    median,
    paired_ratio,
    seed_images,
    subset,
    timed,
    with_test_as_val,
)
from benchmarks.reference import SeedRun, seed_model
from hpsearch.space import TrialConfig
from hpsearch.training import (
    DeviceData,
    DeviceProfile,
    EpochMetrics,
    build_model,
    load_dataset,
    train,
)


def matmul_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer, in order."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def train_flops_per_sample(shapes: list[tuple[int, int]]) -> int:
    """Matmul FLOPs of one training sample: forward 2*P, backward 4*P minus the first
    layer's input gradient (the input needs none): (6*P - 2*P_first)."""
    p = sum(i * o for i, o in shapes)
    return 6 * p - 2 * shapes[0][0] * shapes[0][1]



# ---------------------------------------------------------------------------- rows


def row_epoch(ctx: Context) -> dict[str, Any]:
    """One epoch (50k train images + evaluation of the 10k validation images), both ways.

    Also hpsearch at batch 32 with torch's own ``nn.Dropout`` in place of
    ``hpsearch.training.models.Dropout``: the side-by-side baseline of that layer's faster mask.
    """
    data, dev = ctx.data, ctx.device
    seed_s: list[float] = []
    hps_s: dict[int, list[float]] = {SEED_CFG.batch_size: [], BIG_BATCH: []}
    torch_dropout_s: list[float] = []
    for rep in range(ctx.args.reps):  # interleaved, so load changes hit both sides alike
        run = SeedRun(data, dev, seed=rep)
        seconds, _ = timed(functools.partial(run.epoch_and_evaluate, data.val_x, data.val_y),
                           dev)
        seed_s.append(seconds)
        for bs, out in hps_s.items():
            out.append(train(SEED_CFG.replace(batch_size=bs), data, epochs=1,
                             seed=rep).history[0].seconds)
        torch_dropout_s.append(train(SEED_CFG, data, epochs=1, seed=rep,
                                     build=seed_model).history[0].seconds)
    seed = median(seed_s)
    ratio = {bs: paired_ratio(seed_s, v) for bs, v in hps_s.items()}
    dropout_gain = paired_ratio(torch_dropout_s, hps_s[32])
    return {
        "seed_s": seed, "hpsearch_b32_s": median(hps_s[32]),
        "hpsearch_b256_s": median(hps_s[BIG_BATCH]),
        "ratio_b32": ratio[32], "ratio_b256": ratio[BIG_BATCH],
        "hpsearch_b32_torch_dropout_s": median(torch_dropout_s), "dropout_gain": dropout_gain,
        "n_train": len(data.train_y), "n_eval": len(data.val_y),
        "pass": ratio[32] >= 3.0,
        "measured": f"seed {seed:.2f} s, hpsearch b32 {median(hps_s[32]):.2f} s "
                    f"({ratio[32]:.1f}x), b256 {median(hps_s[BIG_BATCH]):.2f} s "
                    f"({ratio[BIG_BATCH]:.1f}x); b32 with nn.Dropout "
                    f"{median(torch_dropout_s):.2f} s ({dropout_gain:.2f}x slower)",
        "raw": {"seed_s": seed_s, "hpsearch_b32_s": hps_s[32],
                "hpsearch_b256_s": hps_s[BIG_BATCH], "torch_dropout_b32_s": torch_dropout_s},
    }


def matmul_flops_per_second(shapes: list[tuple[int, int]], batch: int, steps: int,
                            device: torch.device) -> float:
    """The practical limit: the MLP's matmuls alone, fwd + bwd, back to back in a loop, in
    the dtype the trainer computes in (bf16 under CUDA autocast, else fp32)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    layers = [tuple(torch.randn(*shape, device=device, generator=g).to(dtype)
                    for shape in ((batch, i), (o, i), (batch, o))) for i, o in shapes]

    def step() -> None:
        for k, (x, w, gy) in enumerate(layers):
            x @ w.T                 # forward
            gy.T @ x                # weight gradient
            if k > 0:
                gy @ w              # input gradient (none for the first layer)

    def loop() -> None:
        for _ in range(steps):
            step()

    step()  # warm-up: first-call allocations and kernel selection
    seconds, _ = timed(loop, device)
    return train_flops_per_sample(shapes) * batch * steps / seconds


def row_efficiency(ctx: Context) -> dict[str, Any]:
    data, dev = ctx.data, ctx.device
    cfg = SEED_CFG.replace(batch_size=BIG_BATCH)
    shapes = matmul_shapes(build_model(cfg, data.input_shape, data.n_classes))
    p = sum(i * o for i, o in shapes)
    flops = (train_flops_per_sample(shapes) * len(data.train_y) + 2 * p * len(data.val_y))
    achieved, limit = [], []
    for rep in range(ctx.args.reps):
        achieved.append(flops / train(cfg, data, epochs=1, seed=rep).history[0].seconds)
        limit.append(matmul_flops_per_second(shapes, BIG_BATCH, ctx.sizes.mm_steps, dev))
    share = paired_ratio(achieved, limit)
    return {
        "trainer_gflops": median(achieved) / 1e9, "matmul_gflops": median(limit) / 1e9,
        "efficiency": share, "batch": BIG_BATCH, "matmul_params": p,
        "formula": "epoch FLOPs = (6P - 2P_first) * n_train + 2P * n_val; P = weights in "
                   "matmuls, P_first = the first layer's (its input needs no gradient)",
        "pass": share >= 0.5,
        "measured": f"{median(achieved) / 1e9:.1f} of {median(limit) / 1e9:.1f} GFLOP/s, "
                    f"{100 * share:.0f}% (batch {BIG_BATCH})",
        "raw": {"trainer_flops": achieved, "matmul_flops": limit},
    }


def row_accuracy(ctx: Context) -> dict[str, Any]:
    """Seconds until the seed's test accuracy after ``seed_epochs`` epochs, both ways."""
    data, dev, epochs = ctx.data, ctx.device, ctx.sizes.seed_epochs
    seed_s, hps_s, targets, hps_epochs = [], [], [], []
    for rep in range(ctx.args.reps):
        run = SeedRun(data, dev, seed=rep)
        elapsed, accs, times = 0.0, [], []
        for _ in range(epochs):
            seconds, acc = timed(functools.partial(run.epoch_and_evaluate, data.test_x,
                                                   data.test_y), dev)
            elapsed += seconds
            accs.append(acc)
            times.append(elapsed)
        target = accs[-1]
        targets.append(target)
        seed_s.append(next(t for t, a in zip(times, accs, strict=True) if a >= target))

        reached: list[float] = []
        start = time.perf_counter()

        def stop_at_target(epoch: int, m: EpochMetrics, start: float = start,
                           target: float = target, reached: list[float] = reached) -> bool:
            if m.val_acc >= target:  # val slot holds the test split here
                reached += [time.perf_counter() - start, epoch]
                return True
            return False

        # Up to 3x the seed's epochs; patience never stops it first.
        train(SEED_CFG, with_test_as_val(data), epochs=3 * epochs, patience=3 * epochs, seed=rep,
              on_epoch=stop_at_target)
        hps_s.append(reached[0] if reached else float("inf"))
        hps_epochs.append(int(reached[1]) if reached else None)
    seed, hps, ratio = median(seed_s), median(hps_s), paired_ratio(seed_s, hps_s)
    return {
        "target_acc": median(targets), "seed_epochs": epochs, "seed_s": seed,
        "hpsearch_s": hps, "hpsearch_epochs": hps_epochs, "ratio": ratio,
        "pass": ratio > 1,
        "measured": f"test acc {median(targets):.4f}: seed {seed:.1f} s ({epochs} ep), "
                    f"hpsearch {hps:.1f} s ({ratio:.1f}x)",
        "raw": {"seed_s": seed_s, "hpsearch_s": hps_s, "target_acc": targets},
    }


def row_threads(ctx: Context) -> dict[str, Any]:
    """A 3-epoch digits trial (the study row's kind) with --threads vs all cores."""
    data = subset(DeviceData.create(load_dataset("digits"), device=ctx.device), ctx.sizes)
    cfg = TrialConfig(hidden_units=128, hidden_layers=2, optimizer="adam", lr=0.003)
    counts = sorted({ctx.args.threads, os.cpu_count() or 1})
    secs: dict[int, list[float]] = {n: [] for n in counts}
    try:
        for rep in range(ctx.args.reps):
            for n in counts:
                torch.set_num_threads(n)
                secs[n].append(train(cfg, data, epochs=STUDY_EPOCHS, seed=rep).seconds)
    finally:
        torch.set_num_threads(ctx.args.threads)
    few, many = counts[0], counts[-1]
    slowdown = paired_ratio(secs[many], secs[few])
    return {
        "seconds": {str(n): median(v) for n, v in secs.items()}, "slowdown": slowdown,
        "pass": None,
        "measured": f"3-epoch digits trial: {few} thread(s) {median(secs[few]):.2f} s, "
                    f"{many} {median(secs[many]):.2f} s ({slowdown:.1f}x)",
        "raw": {str(n): v for n, v in secs.items()},
    }


def row_compile(ctx: Context) -> dict[str, Any]:
    """Does ``torch.compile`` pay back its compile time within a trial? The seed's MLP at
    batch 256, eager vs compiled (inductor), 2 epochs each way per repetition.

    Each repetition compiles a new model after ``torch._dynamo.reset()``, as every trial
    of a study builds a new one; the first compile of a process fills inductor's on-disk
    cache, later ones of the same shapes hit it, so both costs are reported. Break-even:
    compile seconds over the seconds a compiled epoch saves (never, when it saves none).
    """
    def compiled(cfg: TrialConfig, shape: tuple[int, int, int], n: int) -> nn.Module:
        return cast(nn.Module, torch.compile(build_model(cfg, shape, n)))

    cfg, epochs = SEED_CFG.replace(batch_size=BIG_BATCH), 2
    steady: dict[str, list[float]] = {"eager": [], "compiled": []}
    compile_s: list[float] = []
    for rep in range(ctx.args.reps):
        torch._dynamo.reset()
        for kind in steady:
            r = train(cfg, ctx.data, epochs=epochs, patience=epochs, seed=rep,
                      build=compiled if kind == "compiled" else build_model)
            first, last = r.history[0].seconds, r.history[-1].seconds
            steady[kind].append(last)
            if kind == "compiled":
                compile_s.append(max(0.0, first - last))
    eager, comp = median(steady["eager"]), median(steady["compiled"])
    speedup = paired_ratio(steady["eager"], steady["compiled"])
    first_compile = compile_s[0]
    later = median(compile_s[1:]) if len(compile_s) > 1 else first_compile
    saved = eager - comp
    break_even = later / saved if saved > 0 else float("inf")
    pays = f"pays back after {break_even:.0f} epochs" if saved > 0 else "never pays back"
    return {
        "eager_epoch_s": eager, "compiled_epoch_s": comp, "speedup": speedup,
        "first_compile_s": first_compile, "cached_compile_s": later,
        "break_even_epochs": break_even, "pass": None,
        "measured": f"epoch eager {eager:.2f} s, compiled {comp:.2f} s ({speedup:.2f}x); "
                    f"compile {first_compile:.1f} s first, {later:.1f} s cached: {pays}",
        "raw": {"steady_s": steady, "compile_s": compile_s},
    }


def native_bf16(device: torch.device) -> bool:
    """CUDA, or a CPU whose oneDNN computes bf16 natively (AVX512-BF16, AMX)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def row_bf16(ctx: Context) -> dict[str, Any]:
    """bf16 autocast against fp32, same seeds, same epochs: the trainer's CUDA default, and
    on a CPU with native bf16 what that default would give there (hpsearch trains in fp32
    on CPUs: see README "Performance")."""
    own = DeviceProfile.for_device(ctx.device)
    cfg, epochs = SEED_CFG.replace(batch_size=BIG_BATCH), ctx.sizes.seed_epochs
    acc: dict[str, list[float]] = {"bf16": [], "fp32": []}
    secs: dict[str, list[float]] = {"bf16": [], "fp32": []}
    for rep in range(ctx.args.reps):
        for kind in acc:
            r = train(cfg, ctx.data, epochs=epochs, patience=epochs, seed=rep,
                      profile=own.replace(bf16=kind == "bf16"))
            acc[kind].append(r.val_acc)
            secs[kind].append(r.seconds)
    diffs = [100 * (b - f) for b, f in zip(acc["bf16"], acc["fp32"], strict=True)]
    diff, speedup = median(diffs), paired_ratio(secs["fp32"], secs["bf16"])
    return {
        "bf16_acc": median(acc["bf16"]), "fp32_acc": median(acc["fp32"]),
        "diff_points": diff, "speedup": speedup,
        "pass": abs(diff) <= 0.5,
        "measured": f"val acc bf16 {median(acc['bf16']):.4f} vs fp32 {median(acc['fp32']):.4f}"
                    f" ({diff:+.2f} pts), bf16 {speedup:.1f}x faster",
        "raw": {"acc": acc, "seconds": secs},
    }


# The layouts' configs: seed 004's CNN as the fused rows train it, and with BN before tanh at
# batch 256 (cnn_regularization's tuned best has that shape).
LAYOUT_CFGS = {"no BN, batch 128": CNN004_CFG,
               "BN before tanh, batch 256": CNN004_CFG.replace(
                   batch_norm="before", activation="tanh", batch_size=256)}
LAYOUT_EPOCHS = 2


def row_cnn_layout(ctx: Context) -> dict[str, Any]:
    """Seed 004's CNN trained by ``train()`` with its weights (so its activations) in
    channels_last, against the default NCHW layout: same seeds, same images, back to back.
    Decides ``DeviceProfile.channels_last`` on a CPU; the accuracy is there to show that the
    layout changes only the order of the float sums (trainings diverge from rounding, as
    they do between torch thread counts), not what is learned."""
    data = seed_images(ctx)
    own = DeviceProfile.for_device(ctx.device)
    secs: dict[str, dict[bool, list[float]]] = {c: {False: [], True: []} for c in LAYOUT_CFGS}
    acc: dict[str, dict[bool, list[float]]] = {c: {False: [], True: []} for c in LAYOUT_CFGS}
    for rep in range(ctx.args.reps):
        for name, cfg in LAYOUT_CFGS.items():
            for last in (False, True):
                r = train(cfg, data, epochs=LAYOUT_EPOCHS, patience=LAYOUT_EPOCHS, seed=rep,
                          profile=own.replace(channels_last=last))
                secs[name][last].append(r.seconds)
                acc[name][last].append(r.val_acc)
    bn_error = {("channels_last" if last else "NCHW"): bn_statistics_error(last)
                for last in (False, True)}
    speedup = {c: paired_ratio(v[False], v[True]) for c, v in secs.items()}
    diff = {c: median([100 * (b - a) for a, b in zip(v[False], v[True], strict=True)])
            for c, v in acc.items()}
    layout = "channels_last" if own.channels_last else "NCHW"
    return {
        "n_train": len(data.train_y), "n_val": len(data.val_y), "epochs": LAYOUT_EPOCHS,
        "speedup": speedup, "diff_points": diff, "profile_channels_last": own.channels_last,
        "bn_max_error": bn_error, "pass": None,
        "measured": "; ".join(f"{c}: channels_last {speedup[c]:.2f}x as fast as NCHW "
                              f"(val acc {diff[c]:+.2f} pts)" for c in LAYOUT_CFGS)
                    + "; BN's largest error (NCHW / channels_last): "
                    + " / ".join(f"{v:.0e}" for v in bn_error.values())
                    + f"; this device's profile: {layout}",
        "raw": {"seconds": {c: {str(k): v for k, v in d.items()} for c, d in secs.items()},
                "acc": {c: {str(k): v for k, v in d.items()} for c, d in acc.items()}},
    }


def bn_statistics_error(channels_last: bool) -> float:
    """The largest error of train-mode BatchNorm2d's output against float64, on the first
    conv block's activations of a batch of 256 (16 channels of 28x28: 200k values a
    channel, mean 0.5, sd 0.3), on the CPU, where the two layouts' kernels sum the
    statistics differently."""
    x = 0.5 + 0.3 * torch.randn(256, 16, 28, 28, generator=torch.Generator().manual_seed(0))
    exact = nn.functional.batch_norm(x.double(), None, None, training=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    got = nn.functional.batch_norm(x.contiguous(memory_format=fmt), None, None, training=True)
    return float((got.double() - exact).abs().max())
