"""Tiny datasets in the formats people bring: CIFAR-10 python batches, an .npz, a PNG folder.

Each writer returns what it wrote, so a test can compare the loaded tensors with it. The
images carry a class signal (a bright block whose place is the class), so a model learns
them in an epoch or two.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def images(n: int, shape: tuple[int, ...], n_classes: int, seed: int = 0,
           ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape`` (H, W) or (H, W, C) and their labels 0..n_classes-1;
    class c has a bright band in row block c, over noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    x = rng.integers(0, 96, (n, *shape), dtype=np.uint8)
    band = max(1, shape[0] // n_classes)
    for c in range(n_classes):
        x[y == c, c * band:(c + 1) * band] = 240
    return x, y.astype(np.int64)


def write_cifar(folder: Path, *, per_batch: int = 20, n_test: int = 20, meta: bool = True,
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``folder`` = a ``cifar-10-batches-py`` directory: five training batches and the test
    batch, ``per_batch`` (``n_test``) 32x32 colour images each; returns name -> (N x 3072
    data, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        x, y = images(n_test if name == "test_batch" else per_batch, (32, 32, 3), 10, seed)
        data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": y.tolist(),
                         b"data": data, b"filenames": [b"x.png"] * len(y)}, f)
        written[name] = (data, y)
    if meta:
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                                          b"dog", b"frog", b"horse", b"ship", b"truck"],
                         b"num_vis": 3072}, f)
    return written


def write_npz(path: Path, *, shape: tuple[int, ...] = (8, 8, 3), n_train: int = 120,
              n_test: int = 40, n_classes: int = 3, **replace: object) -> dict[str, object]:
    """An .npz dataset of ``shape`` images; ``replace`` swaps or (value None) drops arrays."""
    x_train, y_train = images(n_train, shape, n_classes, 0)
    x_test, y_test = images(n_test, shape, n_classes, 1)
    arrays: dict[str, object] = {"x_train": x_train, "y_train": y_train, "x_test": x_test,
                                 "y_test": y_test}
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


def write_folder(root: Path, *, classes: tuple[str, ...] = ("cat", "dog", "fox"),
                 per_class: int = 6, size: tuple[int, int] = (8, 8), mode: str = "RGB",
                 ) -> None:
    """``root/{train,test}/<class>/<i>.png``: ``per_class`` PNGs per class (test: half)."""
    from PIL import Image

    for split, n in (("train", per_class), ("test", max(1, per_class // 2))):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        x, y = images(n * len(classes), shape, len(classes), 0 if split == "train" else 1)
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).convert(mode).save(folder / f"{i:03}.png")
