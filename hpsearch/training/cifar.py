"""CIFAR-10's python batches, read by hpsearch's own reader (no torchvision needed offline).

The layout is torchvision's (and the one the CIFAR site ships): a directory
``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
``batches.meta``, each a pickled dict: ``b"data"`` uint8 ``N x 3072`` (the red plane, then
green, then blue, each 32x32 row-major) and ``b"labels"`` a list of N ints. The archive
``cifar-10-python.tar.gz`` is read as it is, without unpacking it.

Pickles can run code when loaded; the unpickler here refuses every global but the few
NumPy needs to rebuild an array, so a file that is not a CIFAR batch cannot do harm.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpsearch.errors import DataError
from hpsearch.training.raw import labels_int64

FOLDER = "cifar-10-batches-py"   # torchvision's folder under its root
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
SIDE = 32

# What a pickled NumPy array needs to be rebuilt, and nothing else (NumPy 1 and 2 names).
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def candidates(search: list[Path], data_dir: str | Path | None) -> list[Path]:
    """Directories (or archives) that may hold the batches, in lookup order."""
    out: list[Path] = []
    if data_dir:  # the user named it for this run: the batches may sit right in it
        out.append(Path(data_dir).expanduser())
    for d in search:
        out += [d / FOLDER, d / "cifar10" / FOLDER, d / "cifar10", d / ARCHIVE,
                d / "cifar10" / ARCHIVE]
    return out


def is_complete(path: Path) -> bool:
    """Whether ``path`` is a folder with all six batches, or the archive."""
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz"))
    return all((path / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH))


def read(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                              tuple[str, ...]]:
    """``(train_x, train_y, test_x, test_y, classes)`` from a batches folder or the archive;
    images ``(N, 3, 32, 32)`` uint8."""
    if path.is_file():
        return _read_archive(path)
    batches = {name: _batch(path / name, (path / name).read_bytes)
               for name in (*TRAIN_BATCHES, TEST_BATCH)}
    meta = path / "batches.meta"
    classes = _classes(meta, meta.read_bytes) if meta.is_file() else CLASSES
    return _assemble(path, batches, classes)


def _read_archive(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                       tuple[str, ...]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            def member(name: str) -> bytes:
                f = tar.extractfile(f"{FOLDER}/{name}")
                if f is None:
                    raise KeyError(name)
                return f.read()

            batches = {name: _batch(path / FOLDER / name, lambda n=name: member(n))
                       for name in (*TRAIN_BATCHES, TEST_BATCH)}
            try:
                classes = _classes(path, lambda: member("batches.meta"))
            except KeyError:
                classes = CLASSES
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the CIFAR-10 archive ({exc})") from None
    except KeyError as exc:
        raise DataError(f"{path}: the archive has no {FOLDER}/{exc.args[0]}") from None
    return _assemble(path, batches, classes)


def _load(where: Path, read_bytes: Any) -> Any:
    try:
        return _Unpickler(io.BytesIO(read_bytes()), encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except KeyError:
        raise
    except Exception as exc:  # truncated, not a pickle, a refused global: one message
        raise DataError(f"{where}: not a CIFAR-10 python batch ({type(exc).__name__}: "
                        f"{exc})") from None


def _batch(where: Path, read_bytes: Any) -> tuple[torch.Tensor, torch.Tensor]:
    doc = _load(where, read_bytes)
    if not isinstance(doc, dict) or b"data" not in doc or b"labels" not in doc:
        keys = ", ".join(repr(k) for k in doc) if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f"{where}: not a CIFAR-10 python batch (expected a dict with b'data' "
                        f"and b'labels', got {keys})")
    data = np.asarray(doc[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataError(f"{where}: b'data' must be uint8 N x {3 * SIDE * SIDE}, got "
                        f"{data.dtype} {tuple(data.shape)}")
    y = labels_int64(doc[b"labels"], len(data), str(where))
    x = torch.from_numpy(np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE)))
    return x, y


def _classes(where: Path, read_bytes: Any) -> tuple[str, ...]:
    doc = _load(where, read_bytes)
    names = doc.get(b"label_names") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not names:
        return CLASSES
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def _assemble(path: Path, batches: dict[str, tuple[torch.Tensor, torch.Tensor]],
              classes: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 torch.Tensor, tuple[str, ...]]:
    train_x = torch.cat([batches[n][0] for n in TRAIN_BATCHES])
    train_y = torch.cat([batches[n][1] for n in TRAIN_BATCHES])
    test_x, test_y = batches[TEST_BATCH]
    for name, y in (("training", train_y), ("test", test_y)):
        if len(y) and int(y.max()) >= len(classes):
            raise DataError(f"{path}: a {name} label is {int(y.max())}, out of range for "
                            f"{len(classes)} classes")
    return train_x, train_y, test_x, test_y, classes
