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

import zipfile
from pathlib import Path

import numpy as np
import torch

from hpsearch.errors import DataError
from hpsearch.training.raw import images_nchw, labels_int64

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
    """``(train_x, train_y, test_x, test_y, classes)`` from ``root/{train,test}/<class>/*``."""
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
    train_x, train_y = _read_split(root / "train", classes, classes)
    test_x, test_y = _read_split(root / "test", test_classes, classes)
    if train_x.shape[1:] != test_x.shape[1:] and train_x.shape[2:] == test_x.shape[2:]:
        # One split all grey, the other colour: the grey one becomes RGB too.
        train_x, test_x = (t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t
                           for t in (train_x, test_x))
    return train_x, train_y, test_x, test_y, tuple(classes)


def _class_dirs(split: Path) -> list[str]:
    names = sorted(d.name for d in split.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(f"{split}: no class folders (expected {split}/<class>/*)")
    return names


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMG_EXTENSIONS)


def _read_split(split: Path, present: list[str], classes: list[str],
                ) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    files: list[Path] = []
    labels: list[int] = []
    for name in present:
        found = _image_files(split / name)
        if not found:
            raise DataError(f"{split / name}: an empty class folder (no "
                            f"{'/'.join(e.lstrip('.') for e in IMG_EXTENSIONS)} files)")
        files += found
        labels += [classes.index(name)] * len(found)
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
    x = images_nchw(np.stack(images), str(split), channels_last=True)
    return x, torch.tensor(labels, dtype=torch.int64)
