"""K same-architecture models as one: stacked parameters, forward pass, optimizers, loss.

:class:`Stack` keeps the K members' parameters stacked, ``(K, *shape)`` each: torch's own
optimizers update them (or a block of members' rows of them) as they update ``train()``'s.
:class:`FusedNet` runs the layers of ``build_model``'s ``nn.Sequential`` on all members at
once, the way HFTA (MLSys 2021) fuses models:

- Linear: one batched matmul, activations ``(K, B, F)`` (member k's batch is its own rows).
- Conv2d: one grouped convolution, activations ``(B, K*C, H, W)`` (member k owns channels
  ``k*C .. k*C + C - 1``), so ReLU, max-pooling and BatchNorm2d act per member unchanged.
- BatchNorm: ``F.batch_norm`` over ``K*C`` channels. Its statistics are per channel, so
  each member's channels are normalized with that member's batch alone, running mean and
  (unbiased) variance are updated with the same momentum and eps, and eval mode uses the
  running statistics: torch's own BN kernel, not an approximation of it.
- Dropout: each member draws its masks from its own generator, in the same order and shape
  as ``train()`` draws them from the global one (on CPU: the same bits; see :mod:`.trainer`).

:class:`StackOptimizers` runs ``train()``'s optimizer and scheduler per block of members
that share them; :func:`member_loss` and :func:`evaluate_members` are ``train()``'s loss
and ``evaluate()`` per member. The trainer itself is :mod:`.trainer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.space import TrialConfig
from hpsearch.training.device import DeviceProfile
from hpsearch.training.device_data import DeviceData
from hpsearch.training.loop import EVAL_BATCH, Scheduler, make_optimizer, make_scheduler

BN_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)
EVAL_FLOATS = 2 ** 25    # activations of one fused evaluation chunk (128 MiB in fp32)
# Applied as they are, to (K, B, ...) or grouped (B, K*C, H, W) activations alike: each acts
# on one value or one channel's plane.
ELEMENTWISE = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.MaxPool2d,
               nn.AdaptiveAvgPool2d)


class Stack:
    """The members' parameters stacked: ``params[i]`` is ``(K, *shape)``, member j's row j.

    Contiguous, so conv and BN weights reshape to ``K*C`` channels as views, and autograd
    hands each one a fresh contiguous gradient as it does for ``train()``'s parameters.
    :meth:`rows` gives rows ``a..b-1`` of every parameter as leaves over the same memory,
    for a torch optimizer that updates only those members.
    """

    def __init__(self, stacked: Sequence[torch.Tensor]) -> None:
        self.k = stacked[0].shape[0]
        self.params = [nn.Parameter(t.detach().clone()) for t in stacked]

    def rows(self, a: int, b: int) -> list[nn.Parameter]:
        if (a, b) == (0, self.k):
            return self.params
        views = []
        for p in self.params:
            view = nn.Parameter(torch.empty(0, device=p.device))
            view.data = p.data[a:b]  # aliases p: an update in place is an update of p
            views.append(view)
        return views

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the members at positions ``keep`` (optimizers move their own state)."""
        for p in self.params:
            p.data, p.grad = p.data.index_select(0, keep), None
        self.k = len(keep)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _rate(layer: nn.Module) -> float:
    assert isinstance(layer, nn.Dropout | nn.Dropout2d)
    return float(layer.p)


@dataclass
class _Op:
    kind: str                      # linear, conv, bn, act, dropout, dropout2d, flatten
    module: nn.Module | None = None  # the template layer (activation, pool, conv geometry)
    weight: int = -1               # index into Stack.params
    bias: int = -1
    slot: int = -1                 # index into FusedNet.bn_stats / FusedNet.drop_p


class FusedNet:
    """``build_model``'s layers applied to K members at once.

    Built from the K members' own ``nn.Sequential`` models (same layer types and shapes),
    whose weights it copies; :meth:`copy_to` writes member j's weights back into a model.
    ``forward`` takes ``(K, B, C, H, W)`` and returns logits ``(K, B, n_classes)``.
    """

    def __init__(self, models: Sequence[nn.Sequential], generators: list[torch.Generator],
                 profile: DeviceProfile | None = None) -> None:
        self.k = len(models)
        self.generators = generators   # per member, for dropout masks (the trainer's list)
        self.profile = profile or DeviceProfile()  # autocast, channels_last
        self.training = True
        self.act_floats = 1  # per sample, set by the trainer (sizes evaluation chunks)
        self.ops: list[_Op] = []
        stacked: list[torch.Tensor] = []
        self.bn_stats: list[tuple[torch.Tensor, torch.Tensor]] = []  # (mean, var) of K*C
        self.drop_p: list[list[float]] = []
        # (param index or -1, layer index, attribute) for copy_to, params before buffers
        self._where: list[tuple[int, int, str]] = []

        def param(layer: int, name: str) -> int:
            tensors = [getattr(m[layer], name) for m in models]
            if tensors[0] is None:
                return -1
            stacked.append(torch.stack([t.detach() for t in tensors]))
            self._where.append((len(stacked) - 1, layer, name))
            return len(stacked) - 1

        for i, layer in enumerate(models[0]):
            if isinstance(layer, nn.Linear | nn.Conv2d):
                kind = "linear" if isinstance(layer, nn.Linear) else "conv"
                self.ops.append(_Op(kind, layer, param(i, "weight"), param(i, "bias")))
            elif isinstance(layer, BN_LAYERS):
                self.bn_stats.append(tuple(  # type: ignore[arg-type]
                    torch.stack([getattr(m[i], s) for m in models]).reshape(-1).clone()
                    for s in ("running_mean", "running_var")))
                self._where += [(-1, i, "running_mean"), (-1, i, "running_var")]
                self.ops.append(_Op("bn", layer, param(i, "weight"), param(i, "bias"),
                                    slot=len(self.bn_stats) - 1))
            elif isinstance(layer, nn.Dropout | nn.Dropout2d):
                self.drop_p.append([_rate(m[i]) for m in models])
                kind = "dropout" if isinstance(layer, nn.Dropout) else "dropout2d"
                self.ops.append(_Op(kind, layer, slot=len(self.drop_p) - 1))
            elif isinstance(layer, nn.Flatten):
                self.ops.append(_Op("flatten"))
            elif isinstance(layer, ELEMENTWISE):
                self.ops.append(_Op("act", layer))
            else:
                raise ValueError(f"the fused trainer has no stacked form of {layer!r}")
        self.stack = Stack(stacked)
        self.weights = [op.weight for op in self.ops if op.kind in ("linear", "conv")]

    # ------------------------------------------------------------------------ forward

    def train(self, mode: bool = True) -> FusedNet:
        self.training = mode
        return self

    def eval(self) -> FusedNet:
        return self.train(False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, n_classes, B)`` for inputs ``(K, B, C, H, W)``: classes before the
        batch, because log-softmax over a middle dim is vectorized along the batch (over
        the last dim of size 10 it took 20x as long as over dim 0, 1024 rows, CPU)."""
        params = self.stack.params
        grouped = False  # (B, K*C, H, W) after the first conv; else (K, B, ...)
        k = self.k
        last = len(self.ops) - 1
        for i, op in enumerate(self.ops):
            w = params[op.weight] if op.weight >= 0 else None
            b = params[op.bias] if op.bias >= 0 else None
            if op.kind == "linear" and i == last:  # the output layer: (K, classes, B)
                assert w is not None and b is not None
                x = torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2))
            elif op.kind == "linear":
                assert w is not None
                wt = w.transpose(1, 2)
                x = torch.bmm(x, wt) if b is None else torch.baddbmm(b.unsqueeze(1), x, wt)
            elif op.kind == "conv":
                assert w is not None and isinstance(op.module, nn.Conv2d)
                if not grouped:  # (K, B, C, H, W) -> (B, K*C, H, W)
                    x = x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
                    if self.profile.channels_last:  # cuDNN's fast layout, as train() uses
                        x = x.contiguous(memory_format=torch.channels_last)
                    grouped = True
                c = op.module
                x = F.conv2d(x, w.reshape(-1, *w.shape[2:]),
                             None if b is None else b.reshape(-1), c.stride, c.padding,
                             c.dilation, groups=k)
            elif op.kind == "bn":
                x = self._batch_norm(op, x, w, b, grouped)
            elif op.kind == "flatten":
                if grouped:  # member k's C*H*W features are contiguous, as nn.Flatten's are
                    x = x.reshape(x.shape[0], k, -1).transpose(0, 1)
                    grouped = False
                else:
                    x = x.flatten(2)
            elif op.kind == "act" and x.dim() == 5:  # (K, B, C, H, W): the MLP's pooling
                assert op.module is not None
                x = op.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])
            elif op.kind == "act":
                assert op.module is not None
                x = op.module(x)
            elif self.training:
                x = self._dropout(op, x)
        return x

    def _batch_norm(self, op: _Op, x: torch.Tensor, w: torch.Tensor | None,
                    b: torch.Tensor | None, grouped: bool) -> torch.Tensor:
        bn = op.module
        assert isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d) and bn.momentum is not None
        mean, var = self.bn_stats[op.slot]
        flat_w = None if w is None else w.reshape(-1)
        flat_b = None if b is None else b.reshape(-1)
        if grouped:
            return F.batch_norm(x, mean, var, flat_w, flat_b, self.training, bn.momentum,
                                bn.eps)
        kk, batch, c = x.shape  # (K, B, C) -> (B, K*C): each member's C channels its own
        y = F.batch_norm(x.transpose(0, 1).reshape(batch, kk * c), mean, var, flat_w, flat_b,
                         self.training, bn.momentum, bn.eps)
        return y.view(batch, kk, c).transpose(0, 1)

    def _dropout(self, op: _Op, x: torch.Tensor) -> torch.Tensor:
        """The draws ``models.Dropout`` (rand >= p) and ``nn.Dropout2d`` (bernoulli_(1 - p)
        per channel) make for one member's batch, one generator per member."""
        ps = self.drop_p[op.slot]
        if op.kind == "dropout":  # x: (K, B, F)
            shape = x.shape[1:]
            masks = [torch.rand(shape, generator=g, device=x.device).ge_(p).div_(1 - p)
                     for g, p in zip(self.generators, ps, strict=True)]
            return x * torch.stack(masks).to(x.dtype)
        batch, kc = x.shape[:2]  # x: (B, K*C, H, W); a mask per (sample, channel)
        noise = (batch, kc // self.k, 1, 1)
        masks = [torch.empty(noise, device=x.device).bernoulli_(1 - p, generator=g)
                 .div_(1 - p) for g, p in zip(self.generators, ps, strict=True)]
        return x * torch.cat(masks, 1).to(x.dtype)

    def l1_terms(self) -> torch.Tensor:
        """Per member: the sum of |w| over Linear and Conv weights (``models.l1_penalty``)."""
        ws = [self.stack.params[i] for i in self.weights]
        return torch.stack([w.abs().flatten(1).sum(1) for w in ws]).sum(0)

    # ------------------------------------------------------------------------ members

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the members at positions ``keep`` (the trainer compacts the rest)."""
        self.stack.compact(keep)
        self.bn_stats = [tuple(s.view(self.k, -1).index_select(0, keep).reshape(-1)  # type: ignore[misc]
                               for s in stats) for stats in self.bn_stats]
        pos = keep.tolist()
        self.drop_p = [[ps[j] for j in pos] for ps in self.drop_p]
        self.k = len(pos)

    @torch.no_grad()
    def copy_to(self, j: int, model: nn.Sequential, steps: int) -> None:
        """Member ``j``'s current weights and BN statistics into its own ``model``.

        ``steps`` is what each BN's ``num_batches_tracked`` counts in ``train()``.
        """
        views = [p.detach() for p in self.stack.params]
        bn_iter = iter(s for stats in self.bn_stats for s in stats)
        for index, layer, name in self._where:
            target = getattr(model[layer], name)
            source = views[index][j] if index >= 0 else next(bn_iter).view(self.k, -1)[j]
            target.copy_(source.view_as(target))
        for m in model:
            if isinstance(m, BN_LAYERS) and m.num_batches_tracked is not None:
                m.num_batches_tracked.fill_(steps)


# ---------------------------------------------------------------------------- optimizers


def optimizer_key(cfg: TrialConfig) -> tuple[float, ...]:
    """What ``make_optimizer`` and ``make_scheduler`` read that fuse_key lets differ."""
    return (cfg.lr, cfg.momentum, cfg.l2, cfg.lr_gamma)


class StackOptimizers:
    """``train()``'s optimizer and scheduler, one pair per block of members sharing them.

    Members sharing an :func:`optimizer_key` sit in adjacent rows of the stack, so one
    torch optimizer (``make_optimizer``'s, fused kernel included) updates their rows of
    every parameter as ``train()``'s updates its parameters: a step costs one update per
    distinct key, and each member gets torch's own arithmetic. The schedulers are
    ``make_scheduler``'s, one per block.
    """

    def __init__(self, stack: Stack, cfgs: Sequence[TrialConfig], epochs: int,
                 steps_per_epoch: int, profile: DeviceProfile | None = None) -> None:
        self.stack = stack
        self.blocks: list[tuple[int, int]] = []   # rows [a, b) of the stack
        self.opts: list[torch.optim.Optimizer] = []
        self.scheds: list[Scheduler | None] = []
        self.per_batch = False
        a = 0
        while a < len(cfgs):
            b = a + 1
            while b < len(cfgs) and optimizer_key(cfgs[b]) == optimizer_key(cfgs[a]):
                b += 1
            opt = make_optimizer(cfgs[a], stack.rows(a, b), profile)
            sched, self.per_batch = make_scheduler(cfgs[a], opt, epochs, steps_per_epoch)
            self.blocks.append((a, b))
            self.opts.append(opt)
            self.scheds.append(sched)
            a = b
        self._states: list[list[dict[str, object]]] = []

    def step(self) -> None:
        stacked = self.stack.params
        for (a, b), opt in zip(self.blocks, self.opts, strict=True):
            params = opt.param_groups[0]["params"]
            if params[0] is not stacked[0]:  # a block's rows: their part of the gradient
                for view, p in zip(params, stacked, strict=True):
                    view.grad = None if p.grad is None else p.grad[a:b]
            opt.step()

    def schedule(self) -> None:
        for sched in self.scheds:
            if sched is not None:
                sched.step()

    def lrs(self) -> list[float]:
        """Each member's current learning rate, by row."""
        return [float(opt.param_groups[0]["lr"]) for (a, b), opt in
                zip(self.blocks, self.opts, strict=True) for _ in range(a, b)]

    def compact(self, keep: list[int]) -> None:
        """Keep the members in rows ``keep``: before the stack compacts, take each block's
        optimizer state for its kept rows; :meth:`bind` puts it on the new rows after."""
        blocks, opts, scheds, states = [], [], [], []
        row = 0
        for (a, b), opt, sched in zip(self.blocks, self.opts, self.scheds, strict=True):
            kept = [j - a for j in keep if a <= j < b]
            if not kept:
                continue
            local = torch.tensor(kept, device=self.stack.params[0].device)
            # per-row state (momentum, moments) keeps its kept rows; "step" stays as it is
            states.append([{name: v.index_select(0, local)
                            if isinstance(v, torch.Tensor) and v.dim() and len(v) == b - a
                            else v for name, v in opt.state.pop(p, {}).items()}
                           for p in opt.param_groups[0]["params"]])
            blocks.append((row, row + len(kept)))
            opts.append(opt)
            scheds.append(sched)
            row += len(kept)
        self.blocks, self.opts, self.scheds, self._states = blocks, opts, scheds, states

    def bind(self) -> None:
        """After the stack compacted: each block's optimizer on its new rows and state."""
        for (a, b), opt, states in zip(self.blocks, self.opts, self._states, strict=True):
            params = self.stack.rows(a, b)
            opt.param_groups[0]["params"] = params
            for p, state in zip(params, states, strict=True):
                if state:
                    opt.state[p] = state
        self._states = []


# ---------------------------------------------------------------------------- loss, evaluation


def member_loss(logits: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
    """Per member: ``nn.CrossEntropyLoss(label_smoothing=eps)`` of its batch, (K,).

    ``logits`` is ``(K, classes, B)``, ``y`` is ``(K, B)``. torch's formula for smoothing:
    ``(1 - e) * nll + e / classes * sum over classes of -log p``.
    """
    nll = F.cross_entropy(logits, y, reduction="none").mean(1)
    if eps is None:
        return nll
    smooth = -F.log_softmax(logits, 1).sum(1).mean(1)
    return (1 - eps) * nll + (eps / logits.shape[1]) * smooth


@torch.inference_mode()
def evaluate_members(net: FusedNet, data: DeviceData, cfgs: list[TrialConfig],
              ) -> tuple[list[float], list[float]]:
    """Per member: validation loss and accuracy in eval mode, as ``train.evaluate``."""
    net.eval()
    k, device = len(cfgs), data.device
    x_all, y_all = data.val_x, data.val_y
    norms = [c.input_norm for c in cfgs]
    # Members see the same images: one prepared chunk, expanded (a view) when they agree.
    chunk = max(1, min(EVAL_BATCH, EVAL_FLOATS // (k * net.act_floats)))
    loss_sum = torch.zeros(k, device=device)
    preds = []
    for i in range(0, len(y_all), chunk):
        raw, y = x_all[i:i + chunk], y_all[i:i + chunk]
        if len(set(norms)) == 1:
            one = data.prepare(raw, input_norm=norms[0])
            x = one.unsqueeze(0).expand(k, *one.shape)
        else:
            x = torch.stack([data.prepare(raw, input_norm=n) for n in norms])
        with net.profile.autocast(device):
            logits = net(x).float()
        target = y.expand(k, -1).contiguous()
        loss_sum += F.cross_entropy(logits, target, reduction="none").sum(1)
        preds.append(logits.argmax(1))
    n = max(1, len(y_all))
    acc = (torch.cat(preds, 1) == y_all).float().mean(1) if preds else torch.zeros(k)
    return [v / n for v in loss_sum.tolist()], acc.tolist()
