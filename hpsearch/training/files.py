"""The data people bring: an ``.npz`` of arrays, or a folder of images by class.

- ``PATH.npz`` holds ``x_train``, ``y_train``, ``x_test``, ``y_test``: uint8 images
  ``N x H x W`` or ``N x H x W x C`` and integer labels 0..K-1; an optional ``classes``
  array names the classes.
- ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``: torchvision's ``ImageFolder``
  conventions (classes sorted by folder name, the same extensions, hidden files skipped),
  read once with PIL. All grey images give one channel, anything else RGB.

Both end in one uint8 tensor per split; every image has the same size, or the load fails
with one line naming two files that differ.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from hpsearch.errors import DataError
from hpsearch.training.raw import cache_dir, images_nchw, labels_int64

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
SPLITS = ("train", "test")
# torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...] | None]


def read_npz(path: Path) -> Arrays:
    """``(train_x, train_y, test_x, test_y, classes or None)`` from an ``.npz`` file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_ARRAYS if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; an .npz "
                                f"dataset holds {', '.join(NPZ_ARRAYS)} (it has "
                                f"{', '.join(npz.files) or 'none'})")
            arrays = {k: npz[k] for k in NPZ_ARRAYS}
            names = npz["classes"] if "classes" in npz.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # ValueError: an object array (allow_pickle=False) or a damaged member
        raise DataError(f"{path}: cannot read as .npz ({exc})") from None
    out = []
    for split in SPLITS:
        x = images_nchw(arrays[f"x_{split}"], f"{path}: x_{split}", channels_last=True)
        y = labels_int64(arrays[f"y_{split}"], len(x), f"{path}: y_{split}")
        out += [x, y]
    classes = None
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "USiu":
            raise DataError(f"{path}: classes must be a 1-D array of names, got "
                            f"{names.dtype} {names.shape}")
        classes = tuple(str(n) for n in names.tolist())
    return out[0], out[1], out[2], out[3], classes


def read_folder(root: Path) -> Arrays:
    """``(train_x, train_y, test_x, test_y, classes)`` from ``root/{train,test}/<class>/*``.

    Decoding is the slow part (about half a millisecond an image), so the decoded arrays are
    kept in the cache dir, keyed by every file's path, size and modification time: a
    second load (another worker, ``verify``) reads one file, and any change decodes again.
    """
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"{root}: an image folder dataset needs {root / split}/<class>/* "
                            "(folders train/ and test/, one subfolder per class)")
    classes = _class_dirs(root / "train")
    test_classes = _class_dirs(root / "test")
    extra = sorted(set(test_classes) - set(classes))
    if extra:
        raise DataError(f"{root / 'test'}: class folder(s) {', '.join(extra)} have no "
                        f"counterpart in {root / 'train'}")
    listed = {"train": _list_split(root / "train", classes, classes),
              "test": _list_split(root / "test", test_classes, classes)}
    cached = _cache_path(root, listed)
    arrays = _read_cache(cached)
    if arrays is None:
        arrays = {}
        for split, (files, labels) in listed.items():
            arrays[f"x_{split}"] = _decode(files, root / split)
            arrays[f"y_{split}"] = np.asarray(labels, dtype=np.int64)
        _write_cache(cached, arrays)
    train_x, test_x = (images_nchw(arrays[f"x_{s}"], str(root / s), channels_last=True)
                       for s in SPLITS)
    if train_x.shape[1:] != test_x.shape[1:] and train_x.shape[2:] == test_x.shape[2:]:
        # One split all grey, the other colour: the grey one becomes RGB too.
        train_x, test_x = (t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t
                           for t in (train_x, test_x))
    return (train_x, torch.from_numpy(arrays["y_train"]), test_x,
            torch.from_numpy(arrays["y_test"]), tuple(classes))


def _class_dirs(split: Path) -> list[str]:
    names = sorted(d.name for d in split.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(f"{split}: no class folders (expected {split}/<class>/*)")
    return names


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMG_EXTENSIONS)


def _list_split(split: Path, present: list[str], classes: list[str],
                ) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    for name in present:
        found = _image_files(split / name)
        if not found:
            raise DataError(f"{split / name}: an empty class folder (no "
                            f"{'/'.join(e.lstrip('.') for e in IMG_EXTENSIONS)} files)")
        files += found
        labels += [classes.index(name)] * len(found)
    return files, labels


def _decode(files: list[Path], split: Path) -> np.ndarray:
    """Every image as uint8 ``N x H x W`` (all grey) or ``N x H x W x 3``; one size."""
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for path in files:
        try:
            with Image.open(path) as img:
                grey = img.mode in ("1", "L", "I", "I;16", "F") and "transparency" not in img.info
                pixels = np.asarray(img.convert("L" if grey else "RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the image ({exc})") from None
        size = (pixels.shape[1], pixels.shape[0])
        if first is None:
            first = (path, size)
        elif size != first[1]:
            raise DataError(f"images of mixed sizes: {first[0]} is {first[1][0]}x{first[1][1]} "
                            f"but {path} is {size[0]}x{size[1]}; resize them to one size first")
        images.append(pixels)
    if any(a.ndim == 3 for a in images):  # some colour: every image RGB
        images = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in images]
    return np.stack(images)


# ---------------------------------------------------------------------------- the cache


def _cache_path(root: Path, listed: dict[str, tuple[list[Path], list[int]]]) -> Path:
    """``<cache>/folders/NAME-<folder's path hash>-<listing hash>.npz``."""
    where = hashlib.blake2b(str(root.resolve()).encode(), digest_size=6).hexdigest()
    h = hashlib.blake2b(digest_size=12)
    for split, (files, labels) in listed.items():
        for path, label in zip(files, labels, strict=True):
            st = path.stat()
            h.update(f"{split}/{label}/{path.name}/{st.st_size}/{st.st_mtime_ns}\n".encode())
    return cache_dir() / "folders" / f"{root.name or 'data'}-{where}-{h.hexdigest()}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in (*NPZ_ARRAYS,)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent or damaged: decode again


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomically (a reader never sees half a file); a cache that cannot be written (a
    read-only home, a full disk) only costs the next load its decoding."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
        # The same folder's older contents: never read again.
        for old in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        tmp.unlink(missing_ok=True)
