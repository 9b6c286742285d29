"""Benchmark hpsearch's trainer and studies against seed 000's loop, side by side.

Every row is measured in one run on one machine, each figure the median of ``--reps``
repetitions, and reported as a ratio or a share (absolute seconds on a shared machine are
noise; ratios of interleaved repetitions are not). Prints a table and writes JSON.

    python scripts/bench.py                          # fashion-mnist when installed, else digits
    python scripts/bench.py --skip memory --reps 5   # leave out rows, more repetitions
    python scripts/bench.py --quick --out /tmp/b.json  # tiny sizes: the smoke test's run
    python scripts/bench.py --only fused_digits fused_seed000 fused_optimize

Rows (targets in TARGETS): epoch ratio vs seed 000's DataLoader loop, FLOP/s efficiency
against this machine's matmul speed, time to the seed's accuracy, study throughput and
Optuna's overhead per trial, memory growth over a 100-trial study, torch threads (1 vs all
cores, for information), torch.compile's break-even (for information) and, on CUDA or on
a CPU with native bf16, bf16 vs fp32 accuracy parity and speed; then the fused trainer
(``hpsearch.training.fused``): trainings per minute at K = 1, 4, 16, 64 models per fused run for a
digits MLP and for seed 000's MLP, and whether fusing a study's sampled trials would pay.
A row that fails with an exception is recorded as an error and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import optuna  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from hpsearch.optimize import optimize  # noqa: E402
from hpsearch.optimize.samplers import make_pruner, make_sampler  # noqa: E402
from hpsearch.optimize.study import FINISHED  # noqa: E402
from hpsearch.optimize.workers import run_worker  # noqa: E402
from hpsearch.settings import Settings  # noqa: E402
from hpsearch.space.params import TrialConfig, active_params  # noqa: E402
from hpsearch.space.presets import Preset  # noqa: E402
from hpsearch.space.suggest import sample_config  # noqa: E402
from hpsearch.storage.open import load_study  # noqa: E402
from hpsearch.training.datasets import DIGITS, RawDataset, available_datasets, load_dataset  # noqa: E402
from hpsearch.training.device_data import DeviceData  # noqa: E402
from hpsearch.training.fused.trainer import PER_MEMBER, fuse_groups, train_many  # noqa: E402
from hpsearch.training.loop import EpochMetrics, TrainResult, resolve_device, train  # noqa: E402
from hpsearch.training.models import build_model  # noqa: E402

SCHEMA = 1
# Seed 000: MLP 784-512-256-10, BN before ReLU, dropout 0.5, SGD lr 0.01 momentum 0.5, batch 32.
SEED_CFG = TrialConfig(hidden_units=512, hidden_layers=2, taper="halve", batch_norm="before",
                       dropout=0.5, optimizer="sgd", lr=0.01, momentum=0.5, batch_size=32,
                       input_norm="standardize")
SEED_NORM = ((0.1307,), (0.3081,))   # the seed's transforms.Normalize constants (MNIST's)
SEED_EVAL_BATCH = 1000               # the PyTorch MNIST example's test_batch_size
BIG_BATCH = 256                      # hpsearch's "default-ish" batch for throughput rows
# The memory row's study: a small MLP space, so 100 trials stay short (the study row runs
# the default space, as `hpsearch optimize --dataset digits --epochs 3` does).
STUDY_OVERRIDES = ("model=mlp", "hidden_layers=1..2", "hidden_units=64..256")
STUDY_EPOCHS, MEMORY_EPOCHS = 3, 1
# THREADS: every row runs with --threads torch threads per process (default 1), the seed's
# side and hpsearch's alike, study workers included. The rows compare code paths, not a
# machine's thread scaling; and on a machine whose cores are busy with other processes
# (CI, colleagues' tests), OpenMP threads beyond the idle cores stall every small op at
# each barrier. The "threads" row measures that effect on its own.
ROWS = ("epoch", "efficiency", "accuracy", "study", "memory", "threads", "compile", "bf16",
        "fused_digits", "fused_seed000", "fused_optimize", "verify_seeds")
TARGETS = {
    "epoch": "hpsearch >= 3x faster per epoch at batch 32",
    "efficiency": ">= 50% of this machine's matmul FLOP/s",
    "accuracy": "hpsearch reaches the seed's accuracy sooner",
    "study": "Optuna overhead < 5% of a 3-epoch digits trial",
    "memory": "RSS growth <= 10% from trial 10 to trial 100",
    "threads": "(information: 1 thread vs all cores)",
    "compile": "(information: torch.compile's break-even in epochs)",
    "bf16": "|bf16 - fp32| <= 0.5 accuracy points",
    "fused_digits": "fused K = 16 >= 4x the trainings/min of K = 1",
    "fused_seed000": "(information: trainings/min at K = 1, 4, 16, 64)",
    "fused_optimize": "(information: would fusing a study's trials pay?)",
    "verify_seeds": "verify at 32 seeds costs <= 2x verify at 8 seeds (whole process)",
}
# The fused rows: the digits MLP of the threads row; seed 000's MLP on fuse_train images.
FUSED_DIGITS_CFG = TrialConfig(hidden_units=128, hidden_layers=2, optimizer="adam", lr=0.003)
FUSED_DIGITS_WIDTHS = ((64, 1), (256, 2), (512, 2))  # (hidden_units, hidden_layers), halving
FUSED_EVAL = 1_000


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each row's work is; ``--quick`` shrinks everything for the smoke test."""

    n_train: int | None = None   # training images (None: the whole train split)
    n_eval: int | None = None    # validation / test images
    seed_epochs: int = 2         # epochs of the seed loop in the accuracy row
    study_trials: int = 40       # per --jobs setting in the study row
    memory_trials: int = 100
    mm_steps: int = 50           # fwd+bwd matmul iterations timed per repetition
    fuse_ks: tuple[int, ...] = (1, 4, 16, 64)  # models per fused run in the fused rows
    fuse_train: int = 3_000      # seed 000 MLP's training images per fused-row training (CPU)
    fuse_trials: int = 4         # sampled trials per repetition in the fused_optimize row


FULL = Sizes()
QUICK = Sizes(n_train=256, n_eval=128, seed_epochs=1, study_trials=2, memory_trials=4,
              mm_steps=3, fuse_ks=(1, 2, 4), fuse_train=256, fuse_trials=2)


@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    device: torch.device
    data: DeviceData   # train/val/test on the device, cut to ``sizes``


# ---------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def paired_ratio(top: list[float], bottom: list[float]) -> float:
    """Median of per-repetition ratios: each pair ran back to back, so a change in the
    machine's load between repetitions cancels out (a ratio of medians would mix them)."""
    return median([a / b for a, b in zip(top, bottom, strict=True)])


def matmul_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer, in order."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def train_flops_per_sample(shapes: list[tuple[int, int]]) -> int:
    """Matmul FLOPs of one training sample: forward 2*P, backward 4*P minus the first
    layer's input gradient (the input needs none): (6*P - 2*P_first)."""
    p = sum(i * o for i, o in shapes)
    return 6 * p - 2 * shapes[0][0] * shapes[0][1]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB, from /proc when present."""
    try:
        fields = dict(line.split(":", 1) for line in
                      Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return peak, peak


def machine_info(device: torch.device) -> dict[str, Any]:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown"
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "optuna": optuna.__version__,
            "python": platform.python_version(), "device": str(device),
            "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def pinned_workers(threads: int) -> contextlib.AbstractContextManager[Any]:
    """Study workers in this process use ``threads // jobs`` threads (see THREADS) instead of
    hpsearch's all-cores choice; spawned workers keep hpsearch's own ``cores // jobs``."""
    return mock.patch("hpsearch.optimize.workers.threads_per_worker",
                      lambda jobs: max(1, threads // jobs))


def torch_dropout() -> contextlib.AbstractContextManager[Any]:
    """``build_model`` with torch's own ``nn.Dropout`` (seed 000's layer) in place of
    ``hpsearch.training.models.Dropout``, whose faster CPU mask is part of hpsearch's trainer."""
    import hpsearch.training.models as models

    return mock.patch.object(models, "Dropout", nn.Dropout)


def subset(data: DeviceData, sizes: Sizes) -> DeviceData:
    if sizes.n_train is None and sizes.n_eval is None:
        return data
    n, m = sizes.n_train, sizes.n_eval
    return dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n],
                               val_x=data.val_x[:m], val_y=data.val_y[:m],
                               test_x=data.test_x[:m], test_y=data.test_y[:m])


def with_test_as_val(data: DeviceData) -> DeviceData:
    """The same data with the test split in the validation slot (for the accuracy row)."""
    return dataclasses.replace(data, val_x=data.test_x, val_y=data.test_y)


# ---------------------------------------------------------------------------- seed 000's loop


class SeedDataset(Dataset):
    """What ``torchvision.datasets.FashionMNIST`` does per sample, over the same uint8 images:
    a PIL image per index, then the transform (no download: the images are given)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        # Imported here: the memory row's child process must not load torchvision (~160 MiB).
        from PIL import Image
        from torchvision import transforms

        self.fromarray = Image.fromarray
        self.data, self.targets = images[:, 0].cpu(), labels.cpu()  # (N, H, W) uint8
        self.transform = transforms.Compose([transforms.ToTensor(),
                                             transforms.Normalize(*SEED_NORM)])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[index], int(self.targets[index])
        return self.transform(self.fromarray(img.numpy())), target


class SeedRun:
    """Seed 000's model, optimizer and loops. The model is hpsearch's ``build_model`` of the
    same config with torch's own ``nn.Dropout``, as the seed wrote it, in place of
    ``hpsearch.training.models.Dropout`` (whose faster CPU mask is part of hpsearch's trainer): the
    same network and weights, so the two sides differ in how data reaches the model, the
    loop, and that mask."""

    def __init__(self, data: DeviceData, device: torch.device, seed: int) -> None:
        torch.manual_seed(seed)
        self.device = device
        with torch_dropout():
            self.model = build_model(SEED_CFG, data.input_shape, data.n_classes).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=SEED_CFG.lr,
                                         momentum=SEED_CFG.momentum)
        self.criterion = nn.CrossEntropyLoss()
        self.train_loader = DataLoader(SeedDataset(data.train_x, data.train_y),
                                       batch_size=SEED_CFG.batch_size, shuffle=True)

    def train_epoch(self) -> None:
        self.model.train()
        for x, y in self.train_loader:
            x, y = x.to(self.device), y.to(self.device)
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(x), y)
            loss.backward()
            self.optimizer.step()

    def epoch_and_evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One training epoch, then the accuracy on ``images``: what the seed's loop runs."""
        self.train_epoch()
        return self.evaluate(images, labels)

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        loader = DataLoader(SeedDataset(images, labels), batch_size=SEED_EVAL_BATCH)
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loader:
                pred = self.model(x.to(self.device)).argmax(1)
                correct += int((pred == y.to(self.device)).sum())
        return correct / max(1, len(labels))


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
        with torch_dropout():
            torch_dropout_s.append(train(SEED_CFG, data, epochs=1, seed=rep).history[0].seconds)
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


def _fake_train(cfg: TrialConfig, data: DeviceData, *, epochs: int, patience: int, seed: int,
                on_epoch: Callable[[int, EpochMetrics], bool] | None = None) -> TrainResult:
    """``train`` without the training: the same reports, prunes and result shape."""
    rng = random.Random(seed)
    result = TrainResult(val_acc=0.0, best_epoch=0, stop_reason="completed", device="cpu")
    for epoch in range(1, epochs + 1):
        m = EpochMetrics(epoch, 1 / epoch, 1 / epoch, rng.random(), cfg.lr, 0.0)
        result.history.append(m)
        if m.val_acc > result.val_acc:
            result.val_acc, result.best_epoch = m.val_acc, epoch
        if on_epoch is not None and on_epoch(epoch, m):
            result.stop_reason = "stopped"
            break
    return result


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
    training = sum(sum(t.user_attrs.get("learning_curve", {}).get("seconds", []))
                   for t in trials)
    first: dict[str, datetime.datetime] = {}
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        first.setdefault(t.user_attrs.get("run", {}).get("worker", "?"), t.datetime_complete)
    start = max(first.values(), default=None)
    after = [t.datetime_complete for t in trials if start and t.datetime_complete > start]
    if not after:
        return float("nan"), training / max(1, len(trials))
    return (max(after) - start).total_seconds() / len(after), training / len(trials)


def _stored(settings: Settings) -> optuna.Study:
    return load_study(settings.storage, settings.study_name)


def _stub_seconds(ctx: Context, directory: Path, storage: str, rep: int) -> float:
    """Seconds per trial of the study row's study with ``train`` stubbed out, on ``storage``:
    ``sqlite`` (hpsearch's default, WAL), ``sqlite-rollback`` (SQLite's default journal, the
    baseline WAL replaced), ``journal`` (a .log file) or ``memory`` (Optuna's in-memory
    storage: the sampler, pruner and hpsearch's loop alone, no storage cost)."""
    name = f"stub-{storage}-{rep}"
    settings = _study_settings(ctx, directory, name, ".log" if storage == "journal" else ".db",
                               seed=rep)
    rollback = mock.patch("hpsearch.storage.open._TunedSQLiteConnection", sqlite3.Connection)
    with mock.patch("hpsearch.optimize.objective.train", _fake_train), \
            rollback if storage == "sqlite-rollback" else contextlib.nullcontext():
        if storage != "memory":
            run_worker(Preset(), settings)
            return _per_trial(_stored(settings))[0]
        study = optuna.create_study(direction="maximize", study_name=name,
                                    sampler=make_sampler(settings.sampler, settings.seed),
                                    pruner=make_pruner(settings.pruner, settings.epochs))
        run_worker(Preset(), settings, study=study)  # the same worker, on this study
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
    with tempfile.TemporaryDirectory() as tmp, pinned_workers(ctx.args.threads):
        for rep in range(ctx.args.reps):
            for jobs in (1, 2):
                settings = _study_settings(ctx, Path(tmp), f"jobs{jobs}-{rep}", jobs=jobs,
                                           seed=rep)
                wall, summary = timed(functools.partial(optimize, Preset(), settings,
                                                        progress=False), ctx.device)
                end_to_end[f"jobs{jobs}"].append(60 * summary.ran_here / wall)
                seconds, training = _per_trial(_stored(settings))
                per_trial[f"jobs{jobs}"].append(seconds)
                if jobs == 1:
                    per_trial["train"].append(training)
                same = _study_settings(ctx, Path(tmp), f"fixed{jobs}-{rep}", jobs=jobs, seed=rep)
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
    with pinned_workers(params["threads"]):
        run_worker(preset, settings, on_trial=record)
    return {"before_mb": before, "rss_mb": rss, "peak_mb": rss_mb()[1],
            "cuda_allocated_mb": cuda}


def row_memory(ctx: Context) -> dict[str, Any]:
    n = ctx.sizes.memory_trials
    early = max(1, n // 10)  # trial 10 of 100
    with tempfile.TemporaryDirectory() as tmp:
        params = {"trials": n, "device": ctx.args.device, "threads": ctx.args.threads,
                  "storage": str(Path(tmp) / "mem.db")}
        out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(params)],
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
    import hpsearch.training.loop as trainer

    def compiled(*args: Any, **kwargs: Any) -> nn.Module:
        return cast(nn.Module, torch.compile(build_model(*args, **kwargs)))

    cfg, epochs = SEED_CFG.replace(batch_size=BIG_BATCH), 2
    steady: dict[str, list[float]] = {"eager": [], "compiled": []}
    compile_s: list[float] = []
    for rep in range(ctx.args.reps):
        torch._dynamo.reset()
        for kind in steady:
            patch = mock.patch.object(trainer, "build_model", compiled) if kind == "compiled" \
                else contextlib.nullcontext()
            with patch:
                r = train(cfg, ctx.data, epochs=epochs, patience=epochs, seed=rep)
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
    import hpsearch.training.loop as trainer

    def autocast(enabled: bool) -> Callable[[torch.device], torch.autocast]:
        return lambda device: torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                             enabled=enabled)

    cfg, epochs = SEED_CFG.replace(batch_size=BIG_BATCH), ctx.sizes.seed_epochs
    acc: dict[str, list[float]] = {"bf16": [], "fp32": []}
    secs: dict[str, list[float]] = {"bf16": [], "fp32": []}
    for rep in range(ctx.args.reps):
        for kind in acc:
            with mock.patch.object(trainer, "autocast", autocast(kind == "bf16")):
                r = train(cfg, ctx.data, epochs=epochs, patience=epochs, seed=rep)
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


# ---------------------------------------------------------------------------- fused rows


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
    data = ctx.data if ctx.data.input_shape == (1, 28, 28) else mnist_sized(
        ctx.device, 1_000 if ctx.args.quick else 60_000)
    n = None if ctx.device.type == "cuda" and not ctx.args.quick else ctx.sizes.fuse_train
    data = subset(data, Sizes(n_train=n, n_eval=ctx.sizes.n_eval or FUSED_EVAL))
    row = _trainings_per_minute(ctx, SEED_CFG, data, ctx.sizes.fuse_ks, 1)
    row["dataset"] = data.name
    row["pass"] = None
    return row


def mnist_sized(device: torch.device, n: int) -> DeviceData:
    """A generated set of ``n`` 1x28x28 images (the seed MLP's input) when no MNIST-sized set
    is loaded: random pixels and labels, since only the work is measured."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    raw = RawDataset("synthetic-28x28", x, y, x[:n // 6], y[:n // 6], classes=DIGITS,
                     source="generated")
    return DeviceData.create(raw, device=device)


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


def row_verify_seeds(ctx: Context) -> dict[str, Any]:
    """``hpsearch verify`` in a fresh process on a digits study (the README's quick start,
    smaller): one question, 8 seeds against 32, fused (the default) and one by one
    (``--fuse 1``, what verify did before). Whole-process wall time, start-up included."""
    small, big = (6, 12) if ctx.args.quick else (8, 32)  # 6: the least one row can use
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "v.db")
        run = [sys.executable, "-m", "hpsearch"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([*run, "optimize", "--dataset", "digits", "--storage", db, "-q",
                        "--trials", "4" if ctx.args.quick else "12", "--epochs", "3"],
                       check=True, capture_output=True, env=env)
        secs: dict[str, dict[int, list[float]]] = {"fused": {}, "one by one": {}}
        for _ in range(ctx.args.reps):
            for how, extra in (("fused", []), ("one by one", ["--fuse", "1"])):
                for n in (small, big):
                    args = [*run, "verify", db, "--question", "batch_norm", "--seeds", str(n),
                            "-q", *extra]
                    start = time.perf_counter()
                    subprocess.run(args, check=True, capture_output=True, env=env)
                    secs[how].setdefault(n, []).append(time.perf_counter() - start)
    ratio = {how: statistics.median(b / s for s, b in zip(v[small], v[big], strict=True))
             for how, v in secs.items()}
    med = {how: {n: statistics.median(x) for n, x in v.items()} for how, v in secs.items()}
    return {
        "seeds": [small, big], "ratio": ratio, "pass": ratio["fused"] <= 2.0,
        "measured": "; ".join(
            f"{how}: {small} seeds {med[how][small]:.1f} s ({med[how][small] / small:.2f} "
            f"s/seed), {big} seeds {med[how][big]:.1f} s ({med[how][big] / big:.2f} s/seed), "
            f"{ratio[how]:.2f}x" for how in secs),
        "raw": {how: {str(n): x for n, x in v.items()} for how, v in secs.items()},
    }


ROW_FUNCS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "epoch": row_epoch, "efficiency": row_efficiency, "accuracy": row_accuracy,
    "study": row_study, "memory": row_memory, "threads": row_threads,
    "compile": row_compile, "bf16": row_bf16, "fused_digits": row_fused_digits,
    "fused_seed000": row_fused_seed000, "fused_optimize": row_fused_optimize,
    "verify_seeds": row_verify_seeds,
}
ROW_TITLES = {"epoch": "epoch ratio", "efficiency": "efficiency", "accuracy": "time to accuracy",
              "study": "study throughput", "memory": "memory", "threads": "threads",
              "compile": "torch.compile", "bf16": "bf16 parity",
              "fused_digits": "fused, digits MLP", "fused_seed000": "fused, seed 000 MLP",
              "fused_optimize": "fused trials", "verify_seeds": "verify 8 vs 32 seeds"}


# ---------------------------------------------------------------------------- main


def default_dataset() -> str:
    rows = {r["name"]: r["available"] for r in available_datasets()}
    return "fashion-mnist" if rows.get("fashion-mnist") == "yes" else "digits"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=None,
                    help="default: fashion-mnist when installed, else digits")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per figure (median)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process, both sides (0: all cores); see THREADS")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    ap.add_argument("--out", type=Path, default=Path("bench.json"))
    ap.add_argument("--skip", nargs="+", default=[], choices=ROWS, metavar="ROW",
                    help=f"rows to leave out: {', '.join(ROWS)}")
    ap.add_argument("--only", nargs="+", default=[], choices=ROWS, metavar="ROW",
                    help="run only these rows (e.g. --only fused_digits fused_seed000)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only and args.skip:
        ap.error("--only and --skip do not go together")
    if args.reps < 1:
        ap.error(f"--reps must be >= 1, got {args.reps}")
    return args


def warm_up(ctx: Context) -> None:
    """One tiny pass each way first: library initialisation (oneDNN, cuBLAS) is not a row."""
    small = subset(ctx.data, Sizes(n_train=256, n_eval=256))
    train(SEED_CFG, small, epochs=1)
    SeedRun(small, ctx.device, seed=0).train_epoch()


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Measure every row not skipped; returns the JSON document."""
    threads = args.threads or os.cpu_count() or 1
    args.threads = threads
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = resolve_device(args.device)
    args.dataset = args.dataset or default_dataset()
    sizes = QUICK if args.quick else FULL
    data = subset(DeviceData.create(load_dataset(args.dataset), device=device), sizes)
    ctx = Context(args, sizes, device, data)
    warm_up(ctx)
    doc: dict[str, Any] = {
        "schema": SCHEMA, "command": command,
        "dataset": args.dataset, "device": str(device), "reps": args.reps,
        "quick": args.quick, "machine": machine_info(device), "targets": TARGETS, "rows": {},
    }
    for name in ROWS:
        if name in args.skip or (args.only and name not in args.only) or (
                name == "bf16" and not native_bf16(device)):
            continue
        t0 = time.perf_counter()
        try:
            row = ROW_FUNCS[name](ctx)
        except Exception as exc:  # keep the other rows of a long run
            row = {"error": repr(exc), "pass": False, "measured": f"error: {exc!r}"[:200]}
        torch.set_num_threads(threads)  # a study's workers set their own thread count
        row["target"], row["bench_seconds"] = TARGETS[name], time.perf_counter() - t0
        doc["rows"][name] = row
        print(f"  {ROW_TITLES[name]}: {row['measured']} ({row['bench_seconds']:.0f} s)",
              file=sys.stderr, flush=True)
    doc["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def format_table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    head = [f"hpsearch bench: {doc['dataset']} on {doc['device']}, median of {doc['reps']} "
            f"rep(s){' (--quick)' if doc['quick'] else ''}",
            f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}{', ' + m['gpu'] if 'gpu' in m else ''}; load avg "
            f"{m['load_avg_start'][0]} -> {m.get('load_avg_end', ['?'])[0]}", ""]
    rows = [("row", "measured", "target", "result")]
    for name, row in doc["rows"].items():
        rows.append((ROW_TITLES[name], row["measured"], row["target"],
                     {True: "PASS", False: "FAIL", None: "info"}[row["pass"]]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(head + lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return {}
    command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = run(args, command.strip())
    print(format_table(doc))
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
