"""Datasets: where their files are found, how they are downloaded and parsed.

A dataset is a name (the MNIST family as IDX files, ``digits``, ``synthetic``, ``cifar10``
as its python batches: :mod:`.cifar`) or the data a user brings (an ``.npz`` or an image
folder: :mod:`.files`). Either is loaded once into uint8 arrays (:class:`RawDataset`);
:mod:`.device_data` splits it and moves it to the training device.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from hpsearch.errors import DataError
from hpsearch.settings import DATASETS, check_spec, is_named
from hpsearch.training import cifar, files
from hpsearch.training.raw import RawDataset, cache_dir, check_splits, search_dirs

CIFAR10 = "cifar10"  # one of settings.DATASETS, the names hpsearch knows


DIGITS = tuple(str(i) for i in range(10))


CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": DIGITS,
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    "digits": DIGITS,
    "synthetic": DIGITS,
    CIFAR10: cifar.CLASSES,
}


# torchvision's class per dataset: its download lands in <root>/<class name>/raw/.
TORCHVISION_NAME = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST",
                    CIFAR10: "CIFAR10"}


# Where Debian's dataset-fashion-mnist package installs the four .gz files (dpkg -L).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a firewalled network fails instead of hanging


SYNTHETIC_NOISE = 150.0  # grey levels; sets how far from 100% a good model can get


def offline_alternatives(name: str, data_dir: str | Path | None = None) -> str:
    """The datasets a run without ``name`` can use here, as ``hpsearch datasets`` shows
    them: those found here, and fashion-mnist's Debian package only while it is missing."""
    here = ["--dataset digits", "--dataset synthetic"]
    for other in TORCHVISION_NAME:
        found = _find(other, data_dir) if other != name else None
        if found:
            where = found[0].parent if isinstance(found, list) else found
            here.append(f"--dataset {other} (found in {where})")
    tail = ("" if _find_idx("fashion-mnist", data_dir) else
            ", or fashion-mnist via `apt-get install dataset-fashion-mnist`")
    return "offline alternatives here: " + ", ".join(here) + tail


# ---------------------------------------------------------------------------- lookup


def _candidates(name: str, data_dir: str | Path | None) -> list[Path]:
    """Every directory that may hold ``name``'s four IDX files, in lookup order."""
    out = []
    for d in search_dirs(data_dir):
        out += [d / TORCHVISION_NAME[name] / "raw", d / name]
    if data_dir:
        # The IDX file names are the same for all three datasets, so a bare directory is
        # only trusted when the user named it for this run; shared dirs need a subdir.
        out.insert(0, Path(data_dir).expanduser())
    if name == "fashion-mnist":
        out.append(DEBIAN_FASHION_MNIST)
    return out


def _idx_paths(directory: Path) -> list[Path] | None:
    """The four IDX files in ``directory`` (plain preferred: no inflate), or None."""
    paths = []
    for stem in IDX_FILES:
        found = next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()),
                     None)
        if found is None:
            return None
        paths.append(found)
    return paths


def _find_idx(name: str, data_dir: str | Path | None) -> list[Path] | None:
    return next((p for d in _candidates(name, data_dir) if (p := _idx_paths(d))), None)


def available_datasets(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """One row per named dataset: name, available (yes/no/download) and where, then one row
    for each kind of data a user brings. Downloads nothing, reads no file."""
    rows = []
    for name in DATASETS:
        if name == "synthetic":
            rows.append({"name": name, "available": "yes", "where": "generated"})
        elif name == "digits":
            ok = importlib.util.find_spec("sklearn") is not None
            rows.append({"name": name, "available": "yes" if ok else "no",
                         "where": "scikit-learn" if ok else "needs scikit-learn"})
        elif found := _find(name, data_dir):
            where = found[0].parent if isinstance(found, list) else found
            rows.append({"name": name, "available": "yes", "where": str(where)})
        else:
            rows.append({"name": name, "available": "download",
                         "where": f"not found; torchvision would download it into "
                                  f"{_download_dir(name)}"})
    rows += [{"name": "PATH.npz", "available": "yours",
              "where": "arrays x_train, y_train, x_test, y_test (uint8 N x H x W [x C])"},
             {"name": "DIR", "available": "yours",
              "where": "an image folder: DIR/train/<class>/*, DIR/test/<class>/*"}]
    return rows


def dataset_label(spec: str) -> str:
    """A short name for study names and titles: the name, or the file or folder's name."""
    if is_named(spec):
        return spec
    path = Path(spec).expanduser()
    return (path.stem if path.suffix.lower() == ".npz" else path.name) or "data"


# ---------------------------------------------------------------------------- loading


def load_dataset(name: str, data_dir: str | Path | None = None, *,
                 download: bool = True) -> RawDataset:
    """Load ``name`` (a dataset's name, an ``.npz`` path or an image folder).

    A named dataset is read from the first directory that has it, else downloaded with
    torchvision. Raises :class:`DataError` (one line: what was searched and the
    alternatives, or what is wrong with the file) when the dataset is unknown, not found
    offline, or its files are corrupt. Never substitutes another dataset.
    """
    check_spec(name)
    if not is_named(name):
        return _load_file(name)
    if name == "digits":
        return _load_digits()
    if name == "synthetic":
        return make_synthetic()
    found = _find(name, data_dir)
    if found is None and download:
        root = cache_dir()
        made = [d for d in (_download_dir(name), _download_dir(name).parent, root, root.parent)
                if not d.exists()]
        try:
            _download(name, root)
        except Exception as exc:  # no network, DNS, HTTP, checksum: all one message
            _remove_empty(made)  # a failed start leaves no empty cache dirs behind
            raise _not_found(name, data_dir, f"download failed ({_short_reason(exc)})") from None
        found = _find(name, data_dir)
    if found is None:
        raise _not_found(name, data_dir, "download disabled" if not download else
                         "torchvision's download did not produce the files")
    if isinstance(found, list):
        return _load_idx(name, found)
    train_x, train_y, test_x, test_y, classes = cifar.read(found)
    return RawDataset(name, train_x, train_y, test_x, test_y, classes, source=str(found))


def _load_file(spec: str) -> RawDataset:
    path = Path(spec).expanduser()
    read = files.read_npz if path.is_file() else files.read_folder
    train_x, train_y, test_x, test_y, named = read(path)
    classes = check_splits(str(path), train_x, test_x, train_y, test_y, named)
    return RawDataset(spec, train_x, train_y, test_x, test_y, classes, source=str(path))


def _find(name: str, data_dir: str | Path | None) -> list[Path] | Path | None:
    """Where ``name``'s files are: the four IDX paths, or CIFAR-10's folder or archive."""
    if name == CIFAR10:
        return next((p for p in cifar.candidates(search_dirs(data_dir), data_dir)
                     if p.exists() and cifar.is_complete(p)), None)
    return _find_idx(name, data_dir)


def _download_dir(name: str) -> Path:
    """Where torchvision's download puts ``name``'s files under the cache."""
    if name == CIFAR10:
        return cache_dir() / cifar.FOLDER
    return cache_dir() / TORCHVISION_NAME[name] / "raw"


def _remove_empty(dirs: list[Path]) -> None:
    """Remove those of ``dirs`` (innermost first) that exist and are empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:  # not empty, or already gone
            pass


def _not_found(name: str, data_dir: str | Path | None, reason: str) -> DataError:
    dirs = [str(d) for d in search_dirs(data_dir)]
    if name == "fashion-mnist":
        dirs.append(str(DEBIAN_FASHION_MNIST))
    bare = ", or directly in --data-dir" if data_dir else ""
    if name == CIFAR10:
        layout, files_ = f"{cifar.FOLDER}/ or {cifar.ARCHIVE} under each{bare}", \
            "CIFAR-10's python batches"
    else:
        layout, files_ = f"{name}/ or {TORCHVISION_NAME[name]}/raw/ under each{bare}", \
            "the IDX files"
    return DataError(
        f"{name} is not available offline: looked in {', '.join(dirs)} ({layout}); {reason}. "
        f"Put {files_} in one of those directories or pass --data-dir DIR; "
        f"{offline_alternatives(name, data_dir)}")


def _download(name: str, root: Path) -> None:
    """Fetch ``name`` with torchvision into ``root/<TorchvisionName>/raw/`` (CIFAR-10:
    ``root/cifar-10-batches-py/``; needs network)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, TORCHVISION_NAME[name])
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        # torchvision prints every URL and mirror it tries; our error says it in one line.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cls(root=str(root), train=True, download=True)  # fetches the test files too
    finally:
        socket.setdefaulttimeout(previous)
    archive = root / cifar.ARCHIVE
    if name == CIFAR10 and cifar.is_complete(root / cifar.FOLDER) and archive.is_file():
        archive.unlink()  # unpacked: the 170 MB archive is a second copy


def _short_reason(exc: BaseException) -> str:
    # torchvision's message lists every mirror; its last line is the actual network error.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1].removeprefix("<urlopen error ").rstrip(">") if lines else repr(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (plain or .gz); DataError names a corrupt file."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    # Magic number: two zero bytes, type 0x08 (unsigned byte), then the number of dims.
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or not 1 <= raw[3] <= 4:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number "
                        f"{raw[:4].hex() or 'empty'})")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{raw[3]}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path}: corrupt or truncated IDX file: header says {dims} "
                        f"({int(np.prod(dims))} bytes) but {len(raw) - header} follow")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _load_idx(name: str, paths: list[Path]) -> RawDataset:
    train_x, train_y = _idx_split(name, paths[0], paths[1])
    test_x, test_y = _idx_split(name, paths[2], paths[3])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{paths[0]} and {paths[2]} have different image sizes")
    return RawDataset(name, train_x, train_y, test_x, test_y, classes=CLASSES[name],
                      source=str(paths[0].parent))


def _idx_split(name: str, image_path: Path, label_path: Path,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{image_path} and {label_path} do not match: images {images.shape}, "
                        f"labels {labels.shape}")
    if labels.size and labels.max() >= len(CLASSES[name]):
        raise DataError(f"{label_path}: label {labels.max()} is out of range for {name}")
    # One copy (frombuffer is read-only) and a channel dim; no per-image work.
    return torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64))


def _load_digits() -> RawDataset:
    """scikit-learn's 8x8 digits (values 0..16 -> 0..255), with a fixed stratified split."""
    # Reading the CSV that scikit-learn ships avoids importing sklearn.datasets (~1 s);
    # load_digits reads the same file, and is the fallback if the layout ever changes.
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.submodule_search_locations[0]) / "datasets/data/digits.csv.gz" if (
        spec and spec.submodule_search_locations) else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        pixels, target = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError("digits needs scikit-learn (pip install scikit-learn); "
                            "--dataset synthetic needs nothing") from None
        bunch = load_digits()
        pixels, target = bunch.data, bunch.target.astype(np.int64)
    x = torch.from_numpy(np.clip(pixels * 16, 0, 255).astype(np.uint8).reshape(-1, 1, 8, 8))
    y = torch.from_numpy(target)
    # Fixed seed 0, a quarter of every class: the test set is the same on every run.
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(target == c))[: round(0.25 * n)]
                           for c, n in enumerate(np.bincount(target))])
    is_test = torch.zeros(len(y), dtype=torch.bool)
    is_test[torch.from_numpy(test)] = True
    return RawDataset("digits", x[~is_test], y[~is_test], x[is_test], y[is_test],
                      classes=DIGITS, source="scikit-learn")


def make_synthetic(n_train: int = 2000, n_test: int = 500) -> RawDataset:
    """A generated 10-class, 1x8x8 set: class prototypes plus heavy noise (fixed seed).

    Hard enough that an MLP is well above chance after an epoch but not perfect.
    """
    g = torch.Generator().manual_seed(20240607)
    prototypes = torch.rand(10, 1, 8, 8, generator=g) * 200

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randperm(n, generator=g) % 10
        noise = torch.randn(n, 1, 8, 8, generator=g) * SYNTHETIC_NOISE
        return (prototypes[y] + 28 + noise).clamp(0, 255).to(torch.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return RawDataset("synthetic", train_x, train_y, test_x, test_y, classes=DIGITS,
                      source="generated")
