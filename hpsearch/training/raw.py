"""A dataset as it comes off the disk (:class:`RawDataset`), where files are looked for,
and the checks every image array and label array passes before it becomes one.

Every reader (IDX, CIFAR-10 batches, ``.npz``, an image folder, the Python API's arrays)
ends in :func:`images_nchw` and :func:`labels_int64`, so bad input gets the same one-line
:class:`DataError` whichever door it came in by.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpsearch.errors import DataError


# eq=False: tensors have no truth value, so field-wise equality would raise.
@dataclass(frozen=True, eq=False)
class RawDataset:
    """A whole dataset as uint8 images ``(N, C, H, W)`` and int64 labels, on the CPU."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str  # a directory or file path, "scikit-learn" or "generated"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return c, h, w

    def fingerprint(self) -> dict[str, object]:
        """What identifies this data: shape, split sizes, classes and a hash of every image
        and label (BLAKE2b; about 1 GB/s, so MNIST takes 0.05 s). A study records it, so a
        file changed since would not be mixed into its trials or its re-runs."""
        h = hashlib.blake2b(digest_size=16)
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        h.update("\n".join(self.classes).encode())
        return {"hash": h.hexdigest(), "shape": list(self.input_shape),
                "train": len(self.train_y), "test": len(self.test_y),
                "classes": len(self.classes)}

    def describe(self) -> str:
        """One line: shape, classes and split sizes (``hpsearch datasets NAME``)."""
        c, h, w = self.input_shape
        return (f"{self.name}: {c}x{h}x{w} images, {len(self.classes)} classes, "
                f"{len(self.train_y)} train / {len(self.test_y)} test, from {self.source}")


# ---------------------------------------------------------------------------- lookup


def cache_dir() -> Path:
    """The user cache dir: ``$XDG_CACHE_HOME/hpsearch`` or ``~/.cache/hpsearch``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hpsearch"


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for dataset files, in order: data_dir, $HPSEARCH_DATA_DIR, cache."""
    env = os.environ.get("HPSEARCH_DATA_DIR")
    dirs = [Path(d).expanduser() for d in (data_dir, env) if d] + [cache_dir()]
    return list(dict.fromkeys(dirs))


# ---------------------------------------------------------------------------- checks


def images_nchw(x: Any, where: str, *, channels_last: bool) -> torch.Tensor:
    """uint8 images ``(N, H, W)``, ``(N, H, W, C)`` (``channels_last``) or ``(N, C, H, W)``
    -> one contiguous uint8 tensor ``(N, C, H, W)`` on the CPU.

    Float images in [0, 1] (what torchvision's ``ToTensor`` gives) are accepted and
    turned back into 0..255 levels; anything else is a :class:`DataError` naming ``where``.
    """
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    layout = "N x H x W x C" if channels_last else "N x C x H x W"
    if arr.ndim not in (3, 4):
        raise DataError(f"{where}: images must be N x H x W or {layout}, got shape "
                        f"{_shape(arr)}")
    if arr.ndim == 4 and channels_last and arr.shape[1] <= 4 < arr.shape[3]:
        raise DataError(f"{where}: shape {_shape(arr)} looks channels-first (N x C x H x W); "
                        f"arrays here are {layout}: x.transpose(0, 2, 3, 1)")
    if arr.dtype.kind == "f":
        arr = _float_levels(arr, where)
    elif arr.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 (0..255), got {arr.dtype}; convert "
                        "with x.astype(np.uint8) once the values are 0..255")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif channels_last:
        arr = arr.transpose(0, 3, 1, 2)
    if 0 in arr.shape[1:]:
        raise DataError(f"{where}: images of shape {_shape(arr)[1:]} hold no pixels")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _float_levels(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.size and not np.isfinite(arr).all():
        raise DataError(f"{where}: float images hold NaN or infinite values")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo < 0 or hi > 1:
        raise DataError(f"{where}: float images must be in [0, 1] (as ToTensor gives), got "
                        f"values in [{lo:.3g}, {hi:.3g}]; pass the images before any "
                        "normalization (hpsearch normalizes per channel: input_norm)")
    return np.rint(arr * 255).astype(np.uint8)


def labels_int64(y: Any, n: int, where: str) -> torch.Tensor:
    """Class indices 0..K-1 for ``n`` images -> int64 tensor; a one-line DataError else."""
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{where}: labels must be one class index per image (shape (N,)), "
                        f"got shape {_shape(arr)}")
    if len(arr) != n:
        raise DataError(f"{where}: {len(arr)} labels for {n} images")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            raise DataError(f"{where}: labels must be integers; label {bad[0]} is "
                            f"{arr[bad[0]].item()!r}")
    elif arr.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers (class indices), got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise DataError(f"{where}: labels must be class indices >= 0; label "
                        f"{int(np.argmin(arr))} is {arr.min()}")
    return torch.from_numpy(arr.astype(np.int64))


def check_splits(name: str, train_x: torch.Tensor, test_x: torch.Tensor,
                 train_y: torch.Tensor, test_y: torch.Tensor,
                 classes: tuple[str, ...] | None) -> tuple[str, ...]:
    """Both splits have one image size and labels within the classes; returns the classes
    (``0``..``K-1`` as text when none are named)."""
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{name}: train images are {_shape(train_x)[1:]} (C, H, W) but test "
                        f"images are {_shape(test_x)[1:]}")
    if len(train_y) == 0:
        raise DataError(f"{name}: the training split is empty")
    top = int(max(train_y.max(), test_y.max() if len(test_y) else 0))
    if classes is None:
        classes = tuple(str(i) for i in range(top + 1))
    elif top >= len(classes):
        raise DataError(f"{name}: label {top} is out of range for {len(classes)} classes")
    if len(classes) < 2:
        raise DataError(f"{name}: every label is {top}; a classifier needs at least 2 classes")
    return classes


def _shape(arr: Any) -> str:
    return "(" + ", ".join(str(int(d)) for d in arr.shape) + ")"
