"""Build the MLP (seeds 000-003) or the seed-004 CNN for one :class:`TrialConfig`.

Both take images of any channel count and size: the MLP flattens ``C*H*W`` inputs, the CNN
pools while a side is at least 2 pixels and averages large images down to a fixed grid.

Large images and the MLP: flattening a 256x256 colour photo would give the first Linear
layer 196,608 inputs, 200 million weights at the space's 1024 units, for a model that
cannot use the pixels' layout anyway. A user who brings photos expects both model families
to train on them, so ``--model any`` stays one study, rather than a refusal of every MLP
trial; so the MLP averages an image whose longer side exceeds :data:`MLP_SIDE` down to that
side (``AdaptiveAvgPool2d``, aspect ratio kept), as the CNN averages its last feature maps
down to its grid. Its size is then bounded by a 32x32 colour image's (3,072 inputs, 3.1M
weights at 1024 units), and images of CIFAR-10's size or smaller are flattened unchanged.

A model is one flat ``nn.Sequential``, so printing it shows every layer in order and code
finds layers by type (``[m for m in model if isinstance(m, nn.BatchNorm1d)]``). It takes a
normalized float batch ``(B, C, H, W)`` and returns logits ``(B, n_classes)``.

Every hidden block follows one rule, for Linear and Conv alike (``cfg.batch_norm``):

- ``none``:   layer(bias) -> act
- ``before``: layer(no bias) -> BN -> act    (BN's shift makes the bias redundant, seed 002)
- ``after``:  layer(bias) -> act -> BN

then pooling (CNN) and dropout, the latter only when its rate is > 0 (no no-op modules).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from hpsearch.space import TrialConfig

# Layers whose weights are initialised by ``cfg.init`` and penalised by :func:`l1_penalty`.
WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)
CNN_BLOCKS = 3  # channels c, 2c, 4c; each block halves H and W (28 -> 14 -> 7 -> 3)
CNN_GRID = 4    # the largest H, W the FC layer sees (32x32 inputs end at 4x4)
MLP_SIDE = 32   # the longest side the MLP flattens; larger images are averaged down to it
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default, named because the inits need it too
Nonlinearity = Literal["linear", "relu", "leaky_relu", "sigmoid", "tanh"]  # for torch's gains

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
}


def build_model(cfg: TrialConfig, input_shape: tuple[int, int, int], n_classes: int, *,
                dropout: type[nn.Dropout] | None = None) -> nn.Module:
    """The model ``cfg`` describes, for inputs of ``input_shape`` = (C, H, W).

    ``dropout``: the class of the dropout layers after Linear ones (default :class:`Dropout`;
    the bench builds seed 000's network with torch's own ``nn.Dropout``, as the seed did).
    The config was validated upstream, so an unknown model, activation, batch-norm
    placement or init is a programming error and raises ``ValueError``.
    """
    drop = Dropout if dropout is None else dropout
    if cfg.model == "mlp":
        layers = _mlp_layers(cfg, input_shape, n_classes, drop)
    elif cfg.model == "cnn":
        layers = _cnn_layers(cfg, input_shape, n_classes, drop)
    else:
        raise ValueError(f"unknown model {cfg.model!r}; expected 'mlp' or 'cnn'")
    model = nn.Sequential(*layers)
    _init_weights(model, cfg.init, cfg.activation)
    return model


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BN's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of ``|w|`` over the weights of Linear and Conv layers, for the trainer's L1 term.

    Biases and BN affine params are excluded: penalising them does not regularise the
    mapping's complexity, and shrinking BN's scale just fights the normalization.
    """
    weights = [m.weight for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    if not weights:
        return torch.zeros(())
    return torch.stack([w.abs().sum() for w in weights]).sum()


# ---------------------------------------------------------------------------- architectures


def _mlp_layers(cfg: TrialConfig, input_shape: tuple[int, int, int], n_classes: int,
                dropout: type[nn.Dropout]) -> list[nn.Module]:
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    if max(height, width) > MLP_SIDE:
        height, width = mlp_input_size(height, width)
        layers.append(nn.AdaptiveAvgPool2d((height, width)))
    layers.append(nn.Flatten())
    width_in = channels * height * width
    for width in cfg.hidden_widths():
        linear = nn.Linear(width_in, width, bias=_has_bias(cfg))
        layers += _block(linear, width, cfg, nn.BatchNorm1d)
        layers += _dropout(dropout, cfg.dropout)
        width_in = width
    layers.append(nn.Linear(width_in, n_classes))
    return layers


def mlp_input_size(height: int, width: int) -> tuple[int, int]:
    """The image size the MLP flattens: as it is, or averaged down so that its longer side
    is :data:`MLP_SIDE` (the shorter one scaled alike, at least 1 pixel)."""
    scale = MLP_SIDE / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _cnn_layers(cfg: TrialConfig, input_shape: tuple[int, int, int], n_classes: int,
                dropout: type[nn.Dropout]) -> list[nn.Module]:
    channels_in, height, width = input_shape
    layers: list[nn.Module] = []
    for i in range(CNN_BLOCKS):
        channels = cfg.cnn_channels * 2**i
        conv = nn.Conv2d(channels_in, channels, kernel_size=3, padding=1, bias=_has_bias(cfg))
        layers += _block(conv, channels, cfg, nn.BatchNorm2d)
        # padding=1 keeps the size through the conv; pooling halves it, flooring odd sizes
        # (7 -> 3). A side already down to 1 pixel is not pooled (tiny or thin images).
        pool = (2 if height >= 2 else 1, 2 if width >= 2 else 1)
        if pool != (1, 1):
            layers.append(nn.MaxPool2d(2 if pool == (2, 2) else pool))
            height, width = height // pool[0], width // pool[1]
        layers += _dropout(nn.Dropout2d, cfg.dropout2d)
        channels_in = channels
    if height > CNN_GRID or width > CNN_GRID:
        # Large images: average down to the grid 32x32 inputs reach, so the FC layer's
        # size does not grow with the image.
        layers.append(nn.AdaptiveAvgPool2d((min(height, CNN_GRID), min(width, CNN_GRID))))
        height, width = min(height, CNN_GRID), min(width, CNN_GRID)
    features = channels_in * height * width
    layers.append(nn.Flatten())
    layers += _block(nn.Linear(features, cfg.cnn_fc_units, bias=_has_bias(cfg)),
                     cfg.cnn_fc_units, cfg, nn.BatchNorm1d)
    layers += _dropout(dropout, cfg.dropout)
    layers.append(nn.Linear(cfg.cnn_fc_units, n_classes))
    return layers


def _has_bias(cfg: TrialConfig) -> bool:
    return cfg.batch_norm != "before"


def add_bias_before_bn(model: nn.Module, generator: torch.Generator,
                       ) -> list[nn.Linear | nn.Conv2d]:
    """Give every Linear or Conv layer that feeds a batch norm the bias it was built without.

    For seed 002's "a layer followed by BN needs no bias", tested rather than assumed
    (:mod:`hpsearch.bias`). The biases are PyTorch's default init, uniform in
    ``+-1/sqrt(fan_in)``, drawn from ``generator``: the global RNG is untouched, so a model
    built by ``build_model`` right after ``torch.manual_seed(s)`` and then given biases has
    the same weights, dropout masks and batches as its twin without them. Returns the layers
    given a bias, in order; a model with no such layer is a ``ValueError``.
    """
    modules = list(model.modules())
    added: list[nn.Linear | nn.Conv2d] = []
    for layer, after in zip(modules, modules[1:], strict=False):
        if isinstance(layer, WEIGHT_LAYERS) and layer.bias is None \
                and isinstance(after, (nn.BatchNorm1d, nn.BatchNorm2d)):
            fan_in = layer.weight[0].numel()
            bound = 1 / fan_in ** 0.5
            values = torch.empty(layer.weight.shape[0], device=layer.weight.device)
            layer.bias = nn.Parameter(values.uniform_(-bound, bound, generator=generator))
            added.append(layer)
    if not added:
        raise ValueError("no Linear or Conv layer without a bias feeds a batch norm here "
                         "(batch_norm must be 'before')")
    return added


def _block(layer: nn.Module, width: int, cfg: TrialConfig,
           norm: type[nn.BatchNorm1d] | type[nn.BatchNorm2d]) -> list[nn.Module]:
    """``layer`` with its BN and activation in the order ``cfg.batch_norm`` asks for."""
    act = _activation(cfg.activation)
    if cfg.batch_norm == "none":
        return [layer, act]
    if cfg.batch_norm == "before":
        return [layer, norm(width), act]
    if cfg.batch_norm == "after":
        return [layer, act, norm(width)]
    raise ValueError(f"unknown batch_norm {cfg.batch_norm!r}; expected none, before or after")


class Dropout(nn.Dropout):
    """``nn.Dropout`` with its mask drawn as ``rand >= p`` on CPU.

    The same layer: each unit is kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``, as torch's own CPU dropout does (a float mask times the input). Only
    the draw differs: torch's CPU ``bernoulli_(p)`` kernel takes 2.5x as long per call, fwd
    and bwd, as ``rand_like(x).ge_(p)`` (248 vs 98 us for a 32x512 batch, 1 thread), which
    was 10% of a seed-000 step at batch 32. CUDA keeps torch's fused kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.p >= 1 or x.device.type != "cpu":
            return super().forward(x)
        return x * torch.rand_like(x).ge_(self.p).div_(1 - self.p)


def _dropout(kind: type[nn.Dropout] | type[nn.Dropout2d], p: float) -> list[nn.Module]:
    return [kind(p)] if p > 0 else []


def _activation(name: str) -> nn.Module:
    # A fresh module per use: sharing one instance would make the printed model lie about
    # where activations sit, and hooks registered on it would fire for every block.
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of "
                         f"{', '.join([*_ACTIVATIONS, 'leaky_relu'])}")
    return _ACTIVATIONS[name]()


# ---------------------------------------------------------------------------- init


# activation -> (nonlinearity, param) for nn.init.calculate_gain and kaiming_normal_.
# GELU has no gain of its own in PyTorch; it is ReLU-shaped for positive inputs, so it takes
# ReLU's sqrt(2). Kaiming accepts sigmoid (gain 1) and tanh (gain 5/3) too: with them it is
# LeCun-normal scaled by the activation's gain, the same rule xavier uses for its gain.
_GAINS: dict[str, tuple[Nonlinearity, float]] = {
    "relu": ("relu", 0.0), "gelu": ("relu", 0.0), "leaky_relu": ("leaky_relu", LEAKY_SLOPE),
    "sigmoid": ("sigmoid", 0.0), "tanh": ("tanh", 0.0),
}


def _init_weights(model: nn.Sequential, init: str, activation: str) -> None:
    """Apply ``init`` to every Linear/Conv weight and zero their biases.

    The output layer is initialised with the same scheme but with the gain of the identity
    ("linear", gain 1), because no activation follows it: xavier keeps the logits' variance
    near the input's and kaiming gives std 1/sqrt(fan_in). "normal" ignores gains, so the
    output layer gets N(0, 0.02) like every other layer. BN weights stay at 1 and biases at 0.
    """
    if init == "default":
        return  # PyTorch's own init (kaiming_uniform with a=sqrt(5), uniform biases)
    if init not in ("normal", "xavier", "kaiming"):
        raise ValueError(f"unknown init {init!r}; expected default, normal, xavier or kaiming")
    if activation not in _GAINS:
        raise ValueError(f"unknown activation {activation!r}")
    hidden_gain = _GAINS[activation]
    layers = [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    nonlinearity: Nonlinearity
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        nonlinearity, param = ("linear", 0.0) if last else hidden_gain
        if init == "normal":
            nn.init.normal_(layer.weight, mean=0.0, std=0.02)
        elif init == "xavier":
            nn.init.xavier_uniform_(layer.weight,
                                    gain=nn.init.calculate_gain(nonlinearity, param))
        else:
            nn.init.kaiming_normal_(layer.weight, a=param, mode="fan_in",
                                    nonlinearity=nonlinearity)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
