"""Datasets, lookup, splits, and :class:`DeviceData` with batched augmentation.

A dataset is loaded once into uint8 tensors (:class:`RawDataset`), split into a seeded
train/validation hold-out and moved to the training device (:class:`DeviceData`). Batches
are index slices; :meth:`DeviceData.prepare` scales, augments and normalizes a whole batch
on the device, so the hot loop does no per-sample Python or PIL work.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import os
import socket
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hpsearch.errors import ConfigError, DataError

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "kmnist", "digits", "synthetic")
INPUT_NORMS = ("none", "standardize", "minmax")
AUGMENTATIONS = ("none", "shift", "affine", "resized_crop", "flip")

DIGITS = tuple(str(i) for i in range(10))
CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": DIGITS,
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    "digits": DIGITS,
    "synthetic": DIGITS,
}
# torchvision's class per dataset: its download lands in <root>/<class name>/raw/.
TORCHVISION_NAME = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
# Where Debian's dataset-fashion-mnist package installs the four .gz files (dpkg -L).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a firewalled network fails instead of hanging
SYNTHETIC_NOISE = 150.0  # grey levels; sets how far from 100% a good model can get
OFFLINE_ALTERNATIVES = ("offline alternatives: --dataset digits, --dataset synthetic, or "
                        "fashion-mnist via `apt-get install dataset-fashion-mnist`")


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
    source: str  # a directory path, "scikit-learn" or "generated"


# ---------------------------------------------------------------------------- lookup


def cache_dir() -> Path:
    """The user cache dir: ``$XDG_CACHE_HOME/hpsearch`` or ``~/.cache/hpsearch``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hpsearch"


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for IDX files, in order: data_dir, $HPSEARCH_DATA_DIR, cache."""
    env = os.environ.get("HPSEARCH_DATA_DIR")
    dirs = [Path(d).expanduser() for d in (data_dir, env) if d] + [cache_dir()]
    return list(dict.fromkeys(dirs))


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
    """One row per dataset: name, available (yes/no/download) and where. Downloads nothing."""
    rows = []
    for name in DATASETS:
        if name == "synthetic":
            rows.append({"name": name, "available": "yes", "where": "generated"})
        elif name == "digits":
            ok = importlib.util.find_spec("sklearn") is not None
            rows.append({"name": name, "available": "yes" if ok else "no",
                         "where": "scikit-learn" if ok else "needs scikit-learn"})
        elif paths := _find_idx(name, data_dir):
            rows.append({"name": name, "available": "yes", "where": str(paths[0].parent)})
        else:
            where = cache_dir() / TORCHVISION_NAME[name] / "raw"
            rows.append({"name": name, "available": "download",
                         "where": f"not found; torchvision would download it into {where}"})
    return rows


# ---------------------------------------------------------------------------- loading


def load_dataset(name: str, data_dir: str | Path | None = None, *,
                 download: bool = True) -> RawDataset:
    """Load ``name`` from the first directory that has it, else download it with torchvision.

    Raises :class:`DataError` (one line: what was searched and the alternatives) when the
    dataset is unknown, not found offline, or its files are corrupt. Never substitutes
    another dataset.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "digits":
        return _load_digits()
    if name == "synthetic":
        return make_synthetic()
    paths = _find_idx(name, data_dir)
    if paths is None and download:
        root = cache_dir()
        made = [d for d in (root / TORCHVISION_NAME[name] / "raw", root / TORCHVISION_NAME[name],
                            root, root.parent) if not d.exists()]
        try:
            _download(name, root)
        except Exception as exc:  # no network, DNS, HTTP, checksum: all one message
            _remove_empty(made)  # a failed start leaves no empty cache dirs behind
            raise _not_found(name, data_dir, f"download failed ({_short_reason(exc)})") from None
        paths = _find_idx(name, data_dir)
    if paths is None:
        raise _not_found(name, data_dir, "download disabled" if not download else
                         "torchvision's download did not produce the IDX files")
    return _load_idx(name, paths)


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
    layout = f"{name}/ or {TORCHVISION_NAME[name]}/raw/ under each" + (
        ", or directly in --data-dir" if data_dir else "")
    return DataError(
        f"{name} is not available offline: looked in {', '.join(dirs)} ({layout}); {reason}. "
        f"Put the IDX files in one of those directories or pass --data-dir DIR; "
        f"{OFFLINE_ALTERNATIVES}")


def _download(name: str, root: Path) -> None:
    """Fetch ``name`` with torchvision into ``root/<TorchvisionName>/raw/`` (needs network)."""
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
        dev = torch.device(device)
        train_x = raw.train_x[train_idx].to(dev)
        mean, std, lo, hi = _channel_stats(train_x)
        return cls(raw.name, tuple(raw.classes), dev, train_x, raw.train_y[train_idx].to(dev),
                   raw.train_x[val_idx].to(dev), raw.train_y[val_idx].to(dev),
                   raw.test_x.to(dev), raw.test_y.to(dev), mean, std, lo, hi)

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

    ``strength`` in [0, 1] scales every magnitude; 0 is the identity. Areas moved in from
    outside the image are zero (the background of every dataset here).
    """
    if kind not in AUGMENTATIONS:
        raise ConfigError(f"augmentation = {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
    if kind == "none" or strength <= 0 or len(x) == 0:
        return x
    u = torch.rand(len(x), 5, generator=generator, device=x.device)
    theta = _theta(kind, min(float(strength), 1.0), u)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _theta(kind: str, s: float, u: torch.Tensor) -> torch.Tensor:
    """Sampling matrices ``(B, 2, 3)`` from uniforms ``u`` in [0, 1) of shape (B, 5).

    affine_grid maps *output* to *input* coordinates (normalized to [-1, 1], so a shift of a
    fraction f of the image is 2f), hence forward transforms are inverted. Square images
    are assumed (all of ours are), so rotations need no aspect correction.
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
        a, b, c, d = m11 / det, -m01 / det, -m10 / det, m00 / det
        fx = 2 * 0.10 * s * sym[:, 3]
        fy = 2 * 0.10 * s * sym[:, 4]
        tx, ty = -(a * fx + b * fy), -(c * fx + d * fy)
    else:
        raise ConfigError(f"augmentation = {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)
