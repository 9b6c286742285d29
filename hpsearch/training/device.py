"""The training device and how many CPU threads a training gets."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from hpsearch.errors import ConfigError
from hpsearch.training.loop import resolve_device


def training_device(name: str) -> torch.device:
    """``resolve_device`` with the CLI's errors for a device that is not here."""
    try:
        device = resolve_device(name)
    except RuntimeError as exc:  # torch: "Invalid device string: 'cuda:x'"
        raise ConfigError(f"--device {name}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here")
    return device


@contextlib.contextmanager
def training_threads(device: torch.device) -> Iterator[int]:
    """Train with one intra-op thread on a CPU (``OMP_NUM_THREADS`` wins), restored after.

    On a machine whose cores are shared, torch's default (one thread per core) makes every
    step wait for the thread that another process has descheduled: `best --retrain` of a
    digits config took 37-43 s with 2 threads next to another busy process, 14 s with one
    (`scripts/bench_best.py`), and on an idle machine one thread costs these models at most
    ~1.8x (a CNN; MLPs 1.0-1.4x). Set ``OMP_NUM_THREADS`` to use more on an idle machine.
    """
    before = torch.get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "")
    n = int(env) if env.isdigit() and int(env) > 0 else (1 if device.type == "cpu" else before)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
