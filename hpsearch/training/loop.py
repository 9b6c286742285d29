"""Train one config: ``train(cfg, data, on_epoch=...) -> TrainResult``. Knows nothing of Optuna.

The hot loop follows airbench's habits: the dataset is one uint8 tensor on the training
device, a batch is an index slice, normalization and augmentation run batched on that
device, the loss is accumulated on the device and read once per epoch (no host sync per
batch). Early stopping with best-epoch weights restored is trainer behaviour (seed 001);
evaluation always runs in ``model.eval()`` (seed 002).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from hpsearch.space import TrialConfig
from hpsearch.training.device import DeviceProfile, profile_for, resolve_device
from hpsearch.training.device_data import DeviceData
from hpsearch.training.models import build_model, count_params, l1_penalty

EVAL_BATCH = 2048  # evaluation has no backward pass, so bigger batches are free speed


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int          # 1-based
    train_loss: float   # mean over the epoch's batches (without the L1 term)
    val_loss: float
    val_acc: float
    lr: float           # learning rate at the end of the epoch
    seconds: float      # training + validation wall time


# on_epoch(epoch, metrics) -> True to stop now (the objective prunes through it)
EpochCallback = Callable[[int, EpochMetrics], bool]


@dataclass
class TrainResult:
    val_acc: float                     # best epoch's validation accuracy (its weights are kept)
    best_epoch: int                    # 0 when no epoch finished
    stop_reason: str                   # completed | early_stopping | stopped | diverged
    history: list[EpochMetrics] = field(default_factory=list)
    n_params: int = 0
    device: str = "cpu"
    seconds: float = 0.0
    detail: str = ""                   # e.g. which epoch diverged
    model: nn.Module | None = None     # best weights loaded, in eval mode
    test_acc: float | None = None      # the best weights on a test split, where one was given

    @property
    def curve(self) -> list[float]:
        """Validation accuracy after each epoch that finished."""
        return [m.val_acc for m in self.history]

    @property
    def stopped(self) -> bool:
        """Whether ``on_epoch`` asked to stop (an objective's pruner, say)."""
        return self.stop_reason == "stopped"


# build(cfg, input_shape, n_classes) -> model: build_model, or a variant of it (the bench
# trains seed 000's network with torch's own dropout, or compiled).
ModelBuilder = Callable[[TrialConfig, tuple[int, int, int], int], nn.Module]
__all__ = ["DeviceProfile", "EVAL_BATCH", "EpochMetrics", "ModelBuilder", "TrainResult",
           "evaluate", "make_optimizer", "make_scheduler", "resolve_device", "train"]


# Devices with a fused kernel per optimizer: one kernel per step instead of one per tensor
# and operation. On CPU the step is 1.5x (SGD) to 3-6x (Adam, AdamW, Adagrad) faster, a
# whole epoch 1.06x (SGD, batch 32) to 1.16-1.39x (Adam, batch 64; README "Performance").
# torch documents fused Adagrad as CPU-only.
FUSED_DEVICES = {"sgd": ("cpu", "cuda"), "adam": ("cpu", "cuda"), "adamw": ("cpu", "cuda"),
                 "adagrad": ("cpu",)}


def make_optimizer(cfg: TrialConfig, params: list[nn.Parameter],
                   profile: DeviceProfile | None = None) -> torch.optim.Optimizer:
    """L2 is the optimizer's weight decay (0 when weight_penalty has no l2)."""
    wd = cfg.l2
    device = params[0].device if params else torch.device("cpu")
    use_fused = profile_for(device, profile).fused_optimizer
    # None, not False, elsewhere: torch then keeps its own choice (foreach on GPUs).
    fused = True if use_fused and device.type in FUSED_DEVICES.get(cfg.optimizer, ()) else None
    match cfg.optimizer:
        case "sgd":
            # torch refuses nesterov without momentum; sampling may give momentum 0.
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, fused=fused,
                                   nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=wd)
        case "adagrad":
            return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=wd, fused=fused)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
        case "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=wd, fused=fused)
        case "adamw":
            # Decoupled decay; with no l2 sampled it is Adam (torch's own default is 0.01).
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=wd, fused=fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


Scheduler = torch.optim.lr_scheduler.LRScheduler


def make_scheduler(cfg: TrialConfig, opt: torch.optim.Optimizer, epochs: int,
                   steps_per_epoch: int) -> tuple[Scheduler | None, bool]:
    """The scheduler and whether it steps per batch (onecycle) rather than per epoch."""
    sched = torch.optim.lr_scheduler
    match cfg.scheduler:
        case "none":
            return None, False
        case "step":
            return sched.StepLR(opt, step_size=max(1, epochs // 3), gamma=cfg.lr_gamma), False
        case "multistep":
            milestones = sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)})
            return sched.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma), False
        case "exponential":
            return sched.ExponentialLR(opt, gamma=cfg.lr_gamma), False
        case "cosine":
            return sched.CosineAnnealingLR(opt, T_max=epochs), False
        case "onecycle":
            # cycle_momentum off: momentum is its own sampled param (and Adagrad has none,
            # so cycling it would crash); onecycle here schedules the learning rate only.
            return sched.OneCycleLR(opt, max_lr=cfg.lr, total_steps=epochs * steps_per_epoch,
                                    cycle_momentum=False), True
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}")


@torch.inference_mode()
def evaluate(model: nn.Module, data: DeviceData, cfg: TrialConfig, split: str = "val", *,
             profile: DeviceProfile | None = None) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and predictions on ``split`` (val or test), in eval mode."""
    profile = profile_for(data.device, profile)
    x_all, y_all = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    model.eval()
    loss_sum = torch.zeros((), device=data.device)
    preds = []
    for i in range(0, len(y_all), EVAL_BATCH):
        x = data.prepare(x_all[i:i + EVAL_BATCH], input_norm=cfg.input_norm)
        y = y_all[i:i + EVAL_BATCH]
        with profile.autocast(data.device):
            logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum")
        preds.append(logits.argmax(1))
    pred = torch.cat(preds)
    n = max(1, len(y_all))
    return loss_sum.item() / n, (pred == y_all).float().mean().item(), pred


def train(cfg: TrialConfig, data: DeviceData, *, epochs: int = 10, patience: int = 3,
          seed: int = 0, on_epoch: EpochCallback | None = None,
          profile: DeviceProfile | None = None, build: ModelBuilder = build_model,
          ) -> TrainResult:
    """Train ``cfg`` on ``data.train``, validate each epoch, keep the best epoch's weights.

    ``seed`` fixes the init, the data order, dropout and the augmentation draws, so two
    configs trained with the same seed are paired (``verify`` relies on this). ``profile``:
    the device's fast paths (default: ``DeviceProfile.for_device``); ``build``: what makes
    the model from the config (default ``build_model``), called right after the seeding.
    """
    start = time.perf_counter()
    device = data.device
    profile = profile_for(device, profile)
    torch.manual_seed(seed)  # init and dropout
    order_gen = torch.Generator(device=device).manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1)

    model = build(cfg, data.input_shape, data.n_classes).to(device)
    if profile.channels_last and cfg.model == "cnn":
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, params, profile)
    n_train = len(data.train_y)
    bs = min(cfg.batch_size, n_train)
    steps = math.ceil(n_train / bs)
    scheduler, per_batch = make_scheduler(cfg, opt, epochs, steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    result = TrainResult(val_acc=0.0, best_epoch=0, stop_reason="completed",
                         n_params=count_params(model), device=str(device))
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        perm = torch.randperm(n_train, generator=order_gen, device=device)
        for i in range(0, n_train, bs):
            idx = perm[i:i + bs]
            # index_select, not train_x[idx]: the same rows, 5-8x faster on CPU (uint8 NCHW).
            x = data.prepare(data.train_x.index_select(0, idx), input_norm=cfg.input_norm,
                             augmentation=cfg.augmentation, aug_strength=cfg.aug_strength,
                             generator=aug_gen)
            with profile.autocast(device):
                loss = loss_fn(model(x).float(), data.train_y[idx])
            loss_sum += loss.detach()
            if cfg.l1 > 0:
                loss = loss + cfg.l1 * l1_penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if scheduler is not None and per_batch:
                scheduler.step()
        if scheduler is not None and not per_batch:
            scheduler.step()
        train_loss = loss_sum.item() / steps  # the epoch's one host sync for training
        val_loss, val_acc, _ = evaluate(model, data, cfg, "val", profile=profile)
        metrics = EpochMetrics(epoch, train_loss, val_loss, val_acc,
                               opt.param_groups[0]["lr"], time.perf_counter() - t0)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            result.stop_reason = "diverged"
            result.detail = f"non-finite loss at epoch {epoch} (lr={cfg.lr:g}, l2={cfg.l2:g})"
            break
        result.history.append(metrics)
        if val_acc > result.val_acc or best_state is None:
            result.val_acc, result.best_epoch = val_acc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None and on_epoch(epoch, metrics):
            result.stop_reason = "stopped"
            break
        if epoch - result.best_epoch >= patience and epoch < epochs:
            result.stop_reason = "early_stopping"
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.model = model
    result.seconds = time.perf_counter() - start
    return result
