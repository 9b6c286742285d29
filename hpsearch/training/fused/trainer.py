"""Train K same-architecture configs as one stacked model: seeds, twins, sampled trials.

The fused trainer keeps ``train()``'s contract per member: the same ``TrainResult`` (its
model a plain ``nn.Sequential`` with its best epoch's weights, in eval mode, so
``evaluate(model, data, cfg, "test")`` works unchanged), the same early stopping, best-epoch
weights and divergence handling, each member on its own. Callers use one function::

    train_many([(cfg, seed), ...], data, epochs=10, patience=3)  # groups, fuses, falls back

It groups the jobs (:func:`fuse_groups`), trains each group fused in chunks of at most K
members (:func:`max_fuse` sizes K to the device; ``fuse`` overrides it, ``fuse=1`` trains
one by one), halves a chunk that runs out of memory and retries it, and trains whatever
fuses with nothing else with ``train()`` itself.

Equivalence with ``train()``: a member draws its random numbers as ``train()`` does for
its seed: the init from ``torch.manual_seed(seed)`` (``build_model`` of its own config),
the data order and augmentation from generators seeded ``seed`` and ``seed + 1``, dropout
from a generator that continues the global stream where the init left it. On CPU these are
the same bits, so a member matches ``train()`` to float rounding (batched matmuls, BN over
K*C channels, the optimizer's arithmetic; tests/training/test_fused.py states the tolerance).
On CUDA ``train()``'s dropout is torch's fused kernel, which a generator cannot reproduce:
there (``DeviceProfile.member_generators``) a member's dropout masks come from a generator
seeded with its seed (the same distribution, not the same bits), and bf16 autocast applies
to both. ``HPSEARCH_DEVICE_PROFILE=cuda-like`` runs those branches on a CPU.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from hpsearch.space import TrialConfig
from hpsearch.training.device import DeviceProfile, profile_for
from hpsearch.training.device_data import DeviceData
from hpsearch.training.fused.modules import (
    FusedNet,
    StackOptimizers,
    evaluate_members,
    member_loss,
    optimizer_key,
)
from hpsearch.training.loop import EpochMetrics, TrainResult, train
from hpsearch.training.models import build_model, count_params

# What may differ between the members of one fused model: the continuous hyperparameters,
# the init (it only sets starting weights), the weight penalty and the input pipeline
# (each member's batch is prepared on its own). Everything else is its shape or its loop.
PER_MEMBER = frozenset({"lr", "momentum", "l2", "l1", "weight_penalty", "dropout",
                        "dropout2d", "label_smoothing", "aug_strength", "augmentation",
                        "input_norm", "lr_gamma", "init"})
MAX_FUSE = 64            # the largest K scripts/bench.py measures
MEMORY_SHARE = 0.5       # of the free device memory (MemAvailable on CPU) one group may take
# On a CPU a fused step costs what K steps' matmuls cost, and saves the per-op overhead: it
# pays for small models only. scripts/bench.py, digits, 1 thread, K = 16 vs train() one at
# a time: 5k params 5.0-5.5x, 17k 2.6-3.6x, 41k 1.4-1.7x, 165k 0.9-1.0x; seed 000's
# 535k-param MLP at batch 32 0.6-1.0x, and 0.4-0.7x at K = 64 (its copies spill the caches).
CPU_FUSE_PARAMS = 100_000
CPU_FUSE_FLOATS = 2 ** 22  # 16 MB of stacked weights

# on_epoch(member, epoch, metrics) -> True stops that member (the others go on)
MemberCallback = Callable[[int, int, EpochMetrics], bool]
Job = tuple[TrialConfig, int]  # (config, seed)


# ---------------------------------------------------------------------------- grouping


def fuse_key(cfg: TrialConfig) -> tuple[object, ...]:
    """Configs with equal keys train as one fused model (see PER_MEMBER)."""
    d: dict[str, object] = dict(cfg.as_dict())
    # A dropout layer exists only at rate > 0 (models._dropout): its presence is structure.
    d["dropout"], d["dropout2d"] = cfg.dropout > 0, cfg.dropout2d > 0
    d["hidden"] = tuple(cfg.hidden_widths()) if cfg.model == "mlp" else ()
    for name in PER_MEMBER - {"dropout", "dropout2d"}:
        del d[name]
    for name in ("hidden_units", "hidden_layers", "taper"):
        del d[name]  # the widths they give are the structure
    return tuple(sorted(d.items()))


def fusable(a: TrialConfig, b: TrialConfig) -> bool:
    """Whether ``a`` and ``b`` can be members of one fused model."""
    return fuse_key(a) == fuse_key(b)


def fuse_groups(cfgs: Sequence[TrialConfig]) -> list[list[int]]:
    """Indices of ``cfgs`` grouped by :func:`fuse_key`, in order of first appearance."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(fuse_key(cfg), []).append(i)
    return list(groups.values())


def max_fuse(cfg: TrialConfig, data: DeviceData, profile: DeviceProfile | None = None) -> int:
    """How many members of ``cfg``'s shape to fuse on ``data``'s device (at most MAX_FUSE).

    Memory: MEMORY_SHARE of the device's free memory over what a member needs, its weights
    six times (stacked, gradient, two optimizer states, its own model, slack) and a
    batch's activations four times (outputs, their gradients, masks). On a CPU also speed:
    fusing pays only while a step is bound by per-op overhead, not by the matmuls
    (CPU_FUSE_PARAMS, CPU_FUSE_FLOATS).
    """
    profile = profile_for(data.device, profile)
    model = build_model(cfg, data.input_shape, data.n_classes)
    assert isinstance(model, nn.Sequential)
    n_params = count_params(model)
    activations, macs = _per_sample(model, data)
    per_member = 4 * (6 * n_params + 4 * cfg.batch_size * activations)
    k = int(MEMORY_SHARE * _free_bytes(data.device, profile)) // per_member
    if profile.cpu_fuse_cap:
        # An MLP's multiply-adds per sample are its weights; a CNN's are its weights times
        # every position they slide over (seed 004's: 82k weights, millions of multiply-adds;
        # fused K = 2 ran at 0.9x and K = 4 at 0.8x, docs/fused.md).
        k = 1 if max(n_params, macs) > CPU_FUSE_PARAMS else min(k, CPU_FUSE_FLOATS // n_params)
    return max(1, min(MAX_FUSE, k))


def _per_sample(model: nn.Sequential, data: DeviceData) -> tuple[int, int]:
    """One sample's forward pass: the floats it leaves behind (every layer's output) and
    the multiply-adds of its Linear and Conv2d layers."""
    x = torch.zeros(1, *data.input_shape, device=next(model.parameters()).device)
    floats = macs = 0
    with torch.no_grad():
        for layer in model.eval():
            y = layer(x)
            if isinstance(layer, nn.Linear):
                macs += layer.in_features * layer.out_features
            elif isinstance(layer, nn.Conv2d):
                kh, kw = layer.kernel_size
                macs += y.numel() * layer.in_channels // layer.groups * kh * kw
            x = y
            floats += x.numel()
    return floats, macs


def _free_bytes(device: torch.device, profile: DeviceProfile) -> int:
    if profile.cuda_memory:
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


# ---------------------------------------------------------------------------- many jobs


def train_many(jobs: Sequence[Job], data: DeviceData, *, epochs: int = 10, patience: int = 3,
               fuse: int | None = None, on_epoch: MemberCallback | None = None,
               profile: DeviceProfile | None = None) -> list[TrainResult]:
    """Train every ``(cfg, seed)`` job; results in job order, each as ``train()`` gives it.

    Jobs that can share a model (:func:`fuse_groups`) train fused, at most ``fuse`` at a
    time (None: :func:`max_fuse`; 1: every job alone with ``train()``). A fused run that
    runs out of device memory is split in two and each half retried. ``on_epoch`` gets the
    job's index in ``jobs``; after such a split it may see a job's first epochs again.
    ``profile``: the device's fast paths (default: ``DeviceProfile.for_device``).
    """
    results: list[TrainResult | None] = [None] * len(jobs)
    for j, result in iter_many(jobs, data, epochs=epochs, patience=patience, fuse=fuse,
                               on_epoch=on_epoch, profile=profile):
        results[j] = result
    return [r for r in results if r is not None]


def iter_many(jobs: Sequence[Job], data: DeviceData, *, epochs: int = 10, patience: int = 3,
              fuse: int | None = None, on_epoch: MemberCallback | None = None,
              profile: DeviceProfile | None = None) -> Iterator[tuple[int, TrainResult]]:
    """:func:`train_many` as ``(job index, result)`` pairs, each the moment its training is
    over (a fused chunk's members together, when the chunk is): a caller that stores each
    one loses only the chunk in progress to an interruption. Chunks run in group order."""
    profile = profile_for(data.device, profile)
    if fuse is not None and fuse < 1:
        raise ValueError(f"fuse must be >= 1, got {fuse}")
    for group in fuse_groups([cfg for cfg, _ in jobs]):
        if fuse is not None:
            cap = fuse
        else:  # a job that fuses with nothing needs no sizing (max_fuse builds a model)
            cap = max_fuse(jobs[group[0]][0], data, profile) if len(group) > 1 else 1
        n_chunks = math.ceil(len(group) / cap)
        for c in range(n_chunks):  # near-equal chunks: 20 at cap 16 is 10 + 10, not 16 + 4
            chunk = group[c * len(group) // n_chunks:(c + 1) * len(group) // n_chunks]
            yield from _train_chunk(chunk, jobs, data, epochs, patience, on_epoch, profile)


def train_seeds(cfg: TrialConfig, data: DeviceData, seeds: Sequence[int], *,
                epochs: int = 10, patience: int = 3, fuse: int | None = None,
                on_epoch: MemberCallback | None = None, profile: DeviceProfile | None = None,
                ) -> list[TrainResult]:
    """``cfg`` trained once per seed (``best --retrain``): :func:`train_many` of one config.
    ``on_epoch`` gets the seed's index in ``seeds``."""
    return train_many([(cfg, s) for s in seeds], data, epochs=epochs, patience=patience,
                      fuse=fuse, on_epoch=on_epoch, profile=profile)


def _train_chunk(chunk: list[int], jobs: Sequence[Job], data: DeviceData, epochs: int,
                 patience: int, on_epoch: MemberCallback | None, profile: DeviceProfile,
                 ) -> Iterator[tuple[int, TrainResult]]:
    if len(chunk) == 1:
        j = chunk[0]
        cfg, seed = jobs[j]
        callback = None if on_epoch is None else (lambda e, m: on_epoch(j, e, m))
        yield j, train(cfg, data, epochs=epochs, patience=patience, seed=seed,
                       on_epoch=callback, profile=profile)
        return
    member_cb = None if on_epoch is None else (lambda k, e, m: on_epoch(chunk[k], e, m))
    out = None
    try:
        out = train_fused([jobs[j][0] for j in chunk], data, epochs=epochs, patience=patience,
                          seeds=[jobs[j][1] for j in chunk], on_epoch=member_cb,
                          profile=profile)
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            raise
    if out is None:
        # Out of memory. Retried outside the except clause: its traceback holds the failed
        # run's frames, and with them every tensor the retry needs the memory of.
        gc.collect()
        profile.release_memory()
        half = len(chunk) // 2
        for part in (chunk[:half], chunk[half:]):
            yield from _train_chunk(part, jobs, data, epochs, patience, on_epoch, profile)
        return
    yield from zip(chunk, out, strict=True)


def _is_oom(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or \
        "can't allocate memory" in text


# ---------------------------------------------------------------------------- fused run


@dataclasses.dataclass
class _Member:
    index: int                   # in the caller's list
    cfg: TrialConfig
    model: nn.Sequential         # its own network: init weights, then its best epoch's
    order: torch.Generator       # data order (train(): seed)
    aug: torch.Generator         # augmentation draws (train(): seed + 1)
    drop: torch.Generator        # dropout masks (train(): the global stream after init)
    result: TrainResult


def _member(index: int, cfg: TrialConfig, seed: int, data: DeviceData,
            profile: DeviceProfile) -> _Member:
    device = data.device
    # train() calls torch.manual_seed(seed); the init and (on CPU) dropout draw from the CPU
    # generator it seeds. Seeding that one alone skips the CUDA seeding that manual_seed
    # also queues (with a stack trace) on a CUDA build of torch: 0.12 ms of a member's 0.5.
    torch.default_generator.manual_seed(seed)
    model = build_model(cfg, data.input_shape, data.n_classes)
    assert isinstance(model, nn.Sequential)
    drop = torch.Generator(device=device)
    if profile.member_generators or device.type != "cpu":  # a CPU state fits CPU generators
        drop.manual_seed(seed)
    else:
        drop.set_state(torch.get_rng_state())
    model = model.to(device)
    result = TrainResult(val_acc=0.0, best_epoch=0, stop_reason="completed",
                         n_params=count_params(model), device=str(device))
    return _Member(index, cfg, model, torch.Generator(device=device).manual_seed(seed),
                   torch.Generator(device=device).manual_seed(seed + 1), drop, result)


def train_fused(cfgs: Sequence[TrialConfig], data: DeviceData, *, epochs: int = 10,
                patience: int = 3, seeds: Sequence[int],
                on_epoch: MemberCallback | None = None, profile: DeviceProfile | None = None,
                ) -> list[TrainResult]:
    """Train ``cfgs[k]`` with ``seeds[k]`` for every k as one fused model.

    Every config must be :func:`fusable` with the first. Each member stops on its own
    (early stopping, ``on_epoch`` returning True, divergence) and is then dropped from the
    fused model; the others go on. ``TrainResult.seconds`` is the wall time from the start
    until that member stopped (members' times overlap), ``EpochMetrics.seconds`` the fused
    epoch's.
    """
    if len(cfgs) != len(seeds) or not cfgs:
        raise ValueError(f"need one seed per config, got {len(cfgs)} configs, {len(seeds)} seeds")
    bad = [i for i, c in enumerate(cfgs) if not fusable(cfgs[0], c)]
    if bad:
        raise ValueError(f"configs {bad} cannot be fused with config 0: see fuse_groups()")
    start, device = time.perf_counter(), data.device
    profile = profile_for(device, profile)
    # Rows ordered so that members sharing an optimizer are adjacent (StackOptimizers).
    first: dict[tuple[float, ...], int] = {}
    for c in cfgs:
        first.setdefault(optimizer_key(c), len(first))
    rows = sorted(range(len(cfgs)), key=lambda i: first[optimizer_key(cfgs[i])])
    members = [_member(i, cfgs[i], seeds[i], data, profile) for i in rows]
    net = FusedNet([m.model for m in members], [m.drop for m in members], profile)
    net.act_floats = _per_sample(members[0].model, data)[0]
    if profile.channels_last and cfgs[0].model == "cnn":
        for m in members:
            m.model = m.model.to(memory_format=torch.channels_last)  # as train() returns it
    n_train = len(data.train_y)
    bs = min(cfgs[0].batch_size, n_train)
    steps = math.ceil(n_train / bs)
    opts = StackOptimizers(net.stack, [m.cfg for m in members], epochs, steps, profile)
    _fit(members, net, opts, data, bs, epochs, patience, on_epoch, start)
    for m in members:
        m.result.model = m.model.eval()
    return [m.result for m in sorted(members, key=lambda m: m.index)]


def _fit(members: list[_Member], net: FusedNet, opts: StackOptimizers, data: DeviceData, bs: int,
         epochs: int, patience: int, on_epoch: MemberCallback | None, start: float) -> None:
    """The epochs of :func:`train_fused`: each stopped member leaves the fused model."""
    live = list(members)
    steps = math.ceil(len(data.train_y) / bs)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_loss = _train_epoch(net, opts, live, data, bs)
        if not opts.per_batch:
            opts.schedule()
        val_loss, val_acc = evaluate_members(net, data, [m.cfg for m in live])
        lrs, seconds = opts.lrs(), time.perf_counter() - t0
        keep = []
        for j, m in enumerate(live):
            metrics = EpochMetrics(epoch, train_loss[j], val_loss[j], val_acc[j], lrs[j],
                                   seconds)
            if _record(m, j, epoch, metrics, net, epoch * steps, epochs, patience, on_epoch):
                m.result.seconds = time.perf_counter() - start
            else:
                keep.append(j)
        if not keep:
            return
        if len(keep) < len(live):
            opts.compact(keep)
            net.compact(torch.tensor(keep, device=data.device))
            opts.bind()
            live = [live[j] for j in keep]
            net.generators[:] = [m.drop for m in live]
    for m in live:
        m.result.seconds = time.perf_counter() - start


def _record(m: _Member, j: int, epoch: int, metrics: EpochMetrics, net: FusedNet, steps: int,
            epochs: int, patience: int, on_epoch: MemberCallback | None) -> bool:
    """``train()``'s end-of-epoch logic for member ``m`` in row ``j``; True: it stopped."""
    result = m.result
    if not (math.isfinite(metrics.train_loss) and math.isfinite(metrics.val_loss)):
        result.stop_reason = "diverged"
        result.detail = f"non-finite loss at epoch {epoch} (lr={m.cfg.lr:g}, l2={m.cfg.l2:g})"
        if result.best_epoch == 0:
            net.copy_to(j, m.model, steps)  # train() returns the last weights then
        return True
    result.history.append(metrics)
    if metrics.val_acc > result.val_acc or result.best_epoch == 0:
        result.val_acc, result.best_epoch = metrics.val_acc, epoch
        net.copy_to(j, m.model, steps)
    if on_epoch is not None and on_epoch(m.index, epoch, metrics):
        result.stop_reason = "stopped"
        return True
    if epoch - result.best_epoch >= patience and epoch < epochs:
        result.stop_reason = "early_stopping"
        return True
    return False


def _train_epoch(net: FusedNet, opts: StackOptimizers, live: list[_Member], data: DeviceData,
                 bs: int) -> list[float]:
    """One epoch of every live member; returns each one's mean training loss."""
    device, n_train = data.device, len(data.train_y)
    cfgs = [m.cfg for m in live]
    k = len(live)
    smoothing = [c.label_smoothing for c in cfgs]
    eps = torch.tensor(smoothing, device=device) if any(smoothing) else None
    l1 = torch.tensor([c.l1 for c in cfgs], device=device) if any(c.l1 > 0 for c in cfgs) \
        else None
    shared_input = len({c.input_norm for c in cfgs}) == 1 and all(
        c.augmentation == "none" or c.aug_strength <= 0 for c in cfgs)
    net.train()
    loss_sum = torch.zeros(k, device=device)
    perms = torch.stack([torch.randperm(n_train, generator=m.order, device=device)
                         for m in live])
    for i in range(0, n_train, bs):
        flat = perms[:, i:i + bs].reshape(-1)
        raw = data.train_x.index_select(0, flat)
        if shared_input:
            x = data.prepare(raw, input_norm=cfgs[0].input_norm)
        else:
            x = torch.cat([data.prepare(part, input_norm=c.input_norm,
                                        augmentation=c.augmentation,
                                        aug_strength=c.aug_strength, generator=m.aug)
                           for part, c, m in zip(raw.chunk(k), cfgs, live, strict=True)])
        x = x.view(k, -1, *x.shape[1:])
        with net.profile.autocast(device):
            logits = net(x).float()
        per_member = member_loss(logits, data.train_y.index_select(0, flat).view(k, -1), eps)
        loss_sum += per_member.detach()
        loss = per_member.sum()
        if l1 is not None:
            loss = loss + (l1 * net.l1_terms()).sum()
        net.stack.zero_grad()
        loss.backward()
        opts.step()
        if opts.per_batch:
            opts.schedule()
    steps = math.ceil(n_train / bs)
    return [v / steps for v in loss_sum.tolist()]  # train(): loss_sum.item() / steps
