"""What every benchmark area shares: the sizes, the context, timing and machine helpers."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import torch

from hpsearch.space import TrialConfig
from hpsearch.training import DeviceData, RawDataset
from hpsearch.training.datasets import DIGITS

SCHEMA = 1
# Seed 000: MLP 784-512-256-10, BN before ReLU, dropout 0.5, SGD lr 0.01 momentum 0.5, batch 32.
SEED_CFG = TrialConfig(hidden_units=512, hidden_layers=2, taper="halve", batch_norm="before",
                       dropout=0.5, optimizer="sgd", lr=0.01, momentum=0.5, batch_size=32,
                       input_norm="standardize")
# Seed 004's CNN as cnn_regularization trains it (a stored config of that study): its paired
# configs train 4 weight-penalty arms of this shape, so K = 4 is what fusing the arms of one
# config would be.
CNN004_CFG = TrialConfig(model="cnn", cnn_channels=16, cnn_fc_units=100, dropout2d=0.2,
                         optimizer="adamw", lr=0.0037, batch_size=128, weight_penalty="l2",
                         l2=1e-4, input_norm="standardize")
SEED_EVAL = 1_000  # evaluation images of the rows that train the seeds' models on a CPU
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


def seed_images(ctx: Context) -> DeviceData:
    """The seed rows' images: the loaded 1x28x28 set (else a generated one), ``fuse_train``
    of them on a CPU (all of them on CUDA), plus the evaluation images."""
    data = ctx.data if ctx.data.input_shape == (1, 28, 28) else mnist_sized(
        ctx.device, 1_000 if ctx.args.quick else 60_000)
    n = None if ctx.device.type == "cuda" and not ctx.args.quick else ctx.sizes.fuse_train
    return subset(data, Sizes(n_train=n, n_eval=ctx.sizes.n_eval or SEED_EVAL))


def mnist_sized(device: torch.device, n: int) -> DeviceData:
    """A generated set of ``n`` 1x28x28 images (the seed MLP's input) when no MNIST-sized set
    is loaded: random pixels and labels, since only the work is measured."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    raw = RawDataset("synthetic-28x28", x, y, x[:n // 6], y[:n // 6], classes=DIGITS,
                     source="generated")
    return DeviceData.create(raw, device=device)




@contextlib.contextmanager
def worker_threads(n: int) -> Iterator[None]:
    """Study workers started inside this block (in this process or spawned) train with ``n``
    torch threads: hpsearch honours ``OMP_NUM_THREADS`` (``threads_per_worker``), see
    THREADS."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(max(1, n))
    try:
        yield
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before


def machine_slug(info: dict[str, Any]) -> str:
    """A short file name for this machine: its GPU (else CPU) model and core count,
    e.g. ``nvidia-h100-80gb-hbm3-16c`` or ``amd-epyc-7763-64-core-processor-2c``."""
    name = info.get("gpu") or info["cpu"]
    name = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$", "", name.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40].strip("-")
    return f"{slug or 'unknown'}-{info['cores']}c"


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` other processes spinning on a core each, stopped (by their id) at the end: a
    machine whose cores are shared, as CI's and a laptop's are."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()
