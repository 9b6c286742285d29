"""The training device: which of its fast paths a training takes, and how many CPU threads.

A :class:`DeviceProfile` names every branch that depends on the device (bf16 autocast,
channels-last CNNs, fused optimizer kernels, per-member generators for the fused trainer's
dropout, CUDA's memory query and cache). ``DeviceProfile.for_device(device)`` picks them
from the device; ``HPSEARCH_DEVICE_PROFILE=cuda-like`` makes a CPU take every CUDA branch
that torch can run on a CPU (all but the memory query), so the suite runs the GPU code
paths on a machine with no GPU; ``plain`` turns the fast paths off on any device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from hpsearch.errors import ConfigError

PROFILE_ENV = "HPSEARCH_DEVICE_PROFILE"
PROFILES = ("auto", "cuda-like", "plain")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, then MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


@dataclass(frozen=True)
class DeviceProfile:
    """Which device-dependent branches a training takes (see the module docstring)."""

    # bf16 autocast in training and evaluation: same exponent range as fp32, so no loss
    # scaling. On by default on CUDA only: hpsearch trains in fp32 on CPUs (README
    # "Performance"; scripts/bench.py's bf16 row measures what a CPU would give).
    bf16: bool = False
    # CNN weights and the fused trainer's conv input in channels_last: cuDNN's fast layout,
    # and oneDNN's on a CPU (seed 004's CNN trains about 1.4x as fast there: scripts/bench.py
    # --only cnn_layout), so every device but MPS takes it.
    channels_last: bool = False
    # Fused optimizer kernels where torch has them for the device (loop.FUSED_DEVICES).
    fused_optimizer: bool = True
    # The fused trainer's members draw dropout masks from a generator seeded with their
    # seed (CUDA: train()'s dropout is torch's kernel, which no generator reproduces),
    # not from the global CPU stream that train() continues (the same bits on a CPU).
    member_generators: bool = False
    # Free memory from torch.cuda.mem_get_info, cache emptied after an OOM (CUDA only).
    cuda_memory: bool = False
    # Fuse small models only: a CPU step is bound by its matmuls beyond (fused.max_fuse).
    cpu_fuse_cap: bool = True

    @classmethod
    def for_device(cls, device: torch.device, name: str | None = None) -> DeviceProfile:
        """The profile for ``device``; ``name`` (default ``$HPSEARCH_DEVICE_PROFILE``, else
        ``auto``) is one of PROFILES."""
        name = name if name is not None else os.environ.get(PROFILE_ENV, "auto") or "auto"
        if name not in PROFILES:
            raise ConfigError(f"{PROFILE_ENV}={name!r} is not a device profile; "
                              f"choose from {', '.join(PROFILES)}")
        cuda = device.type == "cuda"
        if name == "plain":
            return cls(fused_optimizer=False, cuda_memory=cuda, cpu_fuse_cap=not cuda)
        if name == "cuda-like" or cuda:
            # The memory query stays the device's own: a CPU has no mem_get_info.
            return cls(bf16=True, channels_last=True, member_generators=True,
                       cuda_memory=cuda, cpu_fuse_cap=False)
        return cls(channels_last=device.type == "cpu", cpu_fuse_cap=device.type == "cpu")

    def replace(self, **changes: bool) -> DeviceProfile:
        return dataclasses.replace(self, **changes)

    def autocast(self, device: torch.device) -> torch.autocast:
        """bf16 autocast on ``device`` when the profile asks for it (else a no-op)."""
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def release_memory(self) -> None:
        """After an out-of-memory error: hand the failed run's cached blocks back."""
        if self.cuda_memory:
            torch.cuda.empty_cache()


def profile_for(device: torch.device, profile: DeviceProfile | None) -> DeviceProfile:
    """``profile``, or the device's own when None."""
    return profile if profile is not None else DeviceProfile.for_device(device)


def training_device(name: str) -> torch.device:
    """``resolve_device`` with the CLI's errors for a device that is not here."""
    try:
        device = resolve_device(name)
    except RuntimeError as exc:  # torch: "Invalid device string: 'cuda:x'"
        raise ConfigError(f"--device {name}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here")
    return device


def threads_for(model: str, device: torch.device, ceiling: int) -> int:
    """Torch intra-op threads for one training of ``model`` (``mlp`` or ``cnn``) on
    ``device``, at most ``ceiling`` (the worker's share of the cores); ``OMP_NUM_THREADS``
    wins.

    An MLP's steps are small matmuls: a second thread saves it little on an idle machine and
    costs it a lot when another process holds that core (every step waits for the thread
    that was descheduled). 10 quick-start digits trials: ``scripts/bench_threads.py``,
    figures in docs/performance.md. So an MLP trains on one thread on a CPU; a CNN's
    convolutions use the worker's share (one thread cost it ~1.8x on an idle machine).
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if device.type != "cpu" or model != "mlp":
        return max(1, ceiling)
    return 1


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
