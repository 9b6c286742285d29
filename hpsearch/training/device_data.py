"""Datasets, lookup, splits, and :class:`DeviceData` with batched augmentation.

A dataset is loaded once into uint8 tensors (:class:`RawDataset`), split into a seeded
train/validation hold-out and moved to the training device (:class:`DeviceData`). Batches
are index slices; :meth:`DeviceData.prepare` scales, augments and normalizes a whole batch
on the device, so the hot loop does no per-sample Python or PIL work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hpsearch.errors import ConfigError, DataError
from hpsearch.training.datasets import RawDataset

INPUT_NORMS = ("none", "standardize", "minmax")


AUGMENTATIONS = ("none", "shift", "affine", "resized_crop", "flip")


# ---------------------------------------------------------------------------- device data


@dataclass(eq=False)
class DeviceData:
    """Train/val/test splits as uint8 tensors on the training device, plus train statistics.

    ``mean``/``std``/``min``/``max`` are per channel, in [0, 1] units, from the train split
    only (the val split is held out from them too). Build it with :meth:`create`.
    """

    name: str
    classes: tuple[str, ...]
    device: torch.device
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor
    # RawDataset.fingerprint() of the data the splits came from (empty: not known).
    source: dict[str, object] = field(default_factory=dict, compare=False)
    # input_norm -> (scale, shift) with shape (C, 1, 1): normalized = x01 * scale + shift.
    _affine: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(init=False, repr=False,
                                                                  compare=False)

    def __post_init__(self) -> None:
        # A constant channel would divide by zero; one grey level is the smallest real spread.
        std = self.std.clamp_min(1 / 255)
        span = (self.max - self.min).clamp_min(1 / 255)
        scale = {"standardize": 1 / std, "minmax": 2 / span}
        shift = {"standardize": -self.mean / std, "minmax": -1 - 2 * self.min / span}
        self._affine = {k: (scale[k].view(-1, 1, 1), shift[k].view(-1, 1, 1)) for k in scale}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return c, h, w

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def chance(self) -> float:
        """The validation accuracy of a model that never learned: it predicts one class, at
        best the most common one (1 / n_classes when the classes are balanced)."""
        if len(self.val_y) == 0:
            return 1 / self.n_classes
        counts = torch.bincount(self.val_y, minlength=self.n_classes)
        return float(counts.max()) / len(self.val_y)

    @classmethod
    def create(cls, raw: RawDataset, *, val_size: int = 10_000, seed: int = 0,
               device: str | torch.device = "cpu", train_size: int | None = None,
               ) -> DeviceData:
        """Hold out ``val_size`` training examples (seeded) and move every split to ``device``.

        ``val_size`` is clamped to a fifth of the training set so small sets still train.
        ``train_size`` keeps a seeded subset of the rest for training (a quick look on a
        CPU); the validation split and the test set stay whole, so accuracies compare.
        """
        n = len(raw.train_y)
        n_val = min(val_size, n // 5)
        if n_val < 1:
            raise DataError(f"{raw.name}: {n} training examples are too few to hold out a "
                            "validation split (need at least 5)")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        # Sorted indices: the same examples in their file order, whatever the permutation.
        stop = None if train_size is None else n_val + train_size
        val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:stop].sort().values
        data = cls.from_splits(raw.name, raw.classes, device,
                               (raw.train_x[train_idx], raw.train_y[train_idx]),
                               (raw.train_x[val_idx], raw.train_y[val_idx]),
                               (raw.test_x, raw.test_y))
        data.source = raw.fingerprint()
        return data

    @classmethod
    def from_splits(cls, name: str, classes: tuple[str, ...], device: str | torch.device,
                    train: tuple[torch.Tensor, torch.Tensor],
                    val: tuple[torch.Tensor, torch.Tensor],
                    test: tuple[torch.Tensor, torch.Tensor] | None = None) -> DeviceData:
        """Splits given as they are, ``(uint8 (N, C, H, W) images, int64 labels)`` each
        (no test split: an empty one), moved to ``device``; statistics from ``train``."""
        dev = torch.device(device)
        if test is None:
            test = (train[0][:0], train[1][:0])
        train_x = train[0].to(dev)
        mean, std, lo, hi = _channel_stats(train_x)
        return cls(name, tuple(classes), dev, train_x, train[1].to(dev), val[0].to(dev),
                   val[1].to(dev), test[0].to(dev), test[1].to(dev), mean, std, lo, hi)

    def prepare(self, x: torch.Tensor, *, input_norm: str = "none", augmentation: str = "none",
                aug_strength: float = 0.0, generator: torch.Generator | None = None,
                ) -> torch.Tensor:
        """A uint8 batch ``(B, C, H, W)`` on the device -> float32 model input on the device.

        Scales to [0, 1], augments (train batches only; pass "none" for evaluation), then
        normalizes with the train split's statistics.
        """
        if input_norm not in INPUT_NORMS:
            raise ConfigError(f"input_norm = {input_norm!r}; choose from {', '.join(INPUT_NORMS)}")
        out = augment(x.float().div_(255), augmentation, aug_strength, generator)
        if input_norm != "none":
            scale, shift = self._affine[input_norm]
            out = out.mul_(scale).add_(shift)
        return out


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-channel mean, std, min, max of a uint8 (N, C, H, W) tensor, in [0, 1] units.

    Computed from a 256-bin histogram: exact, and no float copy of the whole train set.
    """
    levels = torch.arange(256, dtype=torch.float64, device=x.device) / 255
    stats = []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].flatten(), minlength=256).double()
        mean = (hist * levels).sum() / hist.sum()
        std = ((hist * (levels - mean) ** 2).sum() / hist.sum()).sqrt()
        seen = levels[hist > 0]
        stats.append(torch.stack([mean, std, seen.min(), seen.max()]))
    return tuple(torch.stack(stats).float().T)  # four tensors of shape (C,)


# ---------------------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, kind: str, strength: float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random per-sample transforms of a float batch, in one grid_sample call on its device.

    ``strength`` in [0, 1] scales every magnitude; 0 is the identity. Every channel of a
    sample moves together. Areas moved in from outside the image are zero for one-channel
    images (the black background of the digit sets) and mirrored for colour ones (a black
    border is not what a photo's edge looks like). Any size; non-square images rotate and
    shear in pixel space, not in the stretched unit square.
    """
    if kind not in AUGMENTATIONS:
        raise ConfigError(f"augmentation = {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
    if kind == "none" or strength <= 0 or len(x) == 0:
        return x
    u = torch.rand(len(x), 5, generator=generator, device=x.device)
    aspect = x.shape[2] / x.shape[3]  # H / W
    theta = _theta(kind, min(float(strength), 1.0), u, aspect)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    pad = "zeros" if x.shape[1] == 1 else "reflection"
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=pad, align_corners=False)


def _theta(kind: str, s: float, u: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
    """Sampling matrices ``(B, 2, 3)`` from uniforms ``u`` in [0, 1) of shape (B, 5).

    affine_grid maps *output* to *input* coordinates (normalized to [-1, 1], so a shift of a
    fraction f of the image is 2f), hence forward transforms are inverted. ``aspect`` is
    H / W: a rotation or shear made in pixels is ``S^-1 A S`` in normalized coordinates,
    ``S = diag(W, H)``, which scales its off-diagonal terms (identity for square images).
    """
    sym = 2 * u - 1  # uniform in [-1, 1)
    one, zero = torch.ones_like(u[:, 0]), torch.zeros_like(u[:, 0])
    if kind == "shift":
        a, b, c, d = one, zero, zero, one
        tx, ty = 2 * 0.15 * s * sym[:, 0], 2 * 0.15 * s * sym[:, 1]
    elif kind == "flip":
        a, b, c, d = torch.where(u[:, 0] < 0.5 * s, -one, one), zero, zero, one
        tx, ty = zero, zero
    elif kind == "resized_crop":
        area = 1 - 0.5 * s * u[:, 0]
        ratio = torch.exp(s * np.log(4 / 3) * sym[:, 1])  # log-uniform in [3/4, 4/3]^s
        w, h = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
        a, b, c, d = w, zero, zero, h  # output spans the crop: sample a w x h window
        tx, ty = (1 - w) * sym[:, 2], (1 - h) * sym[:, 3]
    elif kind == "affine":
        angle = np.deg2rad(20) * s * sym[:, 0]
        shear = np.deg2rad(10) * s * sym[:, 1]
        scale = 1 + 0.15 * s * sym[:, 2]
        # Forward map M = rotation @ shear_x @ scale, then translate; theta is its inverse.
        cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
        m00, m01 = cos * scale, (cos * tan - sin) * scale
        m10, m11 = sin * scale, (sin * tan + cos) * scale
        det = m00 * m11 - m01 * m10
        a, b, c, d = m11 / det, -m01 / det * aspect, -m10 / det / aspect, m00 / det
        fx = 2 * 0.10 * s * sym[:, 3]
        fy = 2 * 0.10 * s * sym[:, 4]
        tx, ty = -(a * fx + b * fy), -(c * fx + d * fy)
    else:
        raise ConfigError(f"augmentation = {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)
