"""Datasets, lookup, IDX parsing, splits, normalization and batched augmentation."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import hpsearch.training.datasets as data
import hpsearch.training.device_data as device_data
from hpsearch.errors import ConfigError, DataError
from hpsearch.settings import DATASETS
from hpsearch.training.datasets import RawDataset, load_dataset, search_dirs
from hpsearch.training.device_data import DeviceData

# ---------------------------------------------------------------------------- helpers


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file; gzipped when the name ends in .gz."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def fake_mnist(directory: Path, *, gz: bool = False, n_train: int = 50, n_test: int = 20,
               ) -> dict[str, np.ndarray]:
    """Write four small 28x28 IDX files into ``directory``; return what was written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        write_idx(directory / (stem + (".gz" if gz else "")), array)
    return arrays


def assert_matches(raw: RawDataset, arrays: dict[str, np.ndarray]) -> None:
    assert raw.train_x.dtype == torch.uint8 and raw.train_x.shape == (50, 1, 28, 28)
    assert raw.train_y.dtype == torch.int64 and raw.train_y.shape == (50,)
    assert raw.test_x.shape == (20, 1, 28, 28) and raw.test_y.shape == (20,)
    assert np.array_equal(raw.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(raw.train_y.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(raw.test_x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(raw.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert raw.classes == tuple("0123456789")


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """torchvision's download raises as it does offline; records each attempt."""
    calls: list[str] = []

    def offline(name: str, root: Path) -> None:
        calls.append(name)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried "
                           "https://example/, got:\n<urlopen error [Errno -2] Name or "
                           "service not known>\n")

    monkeypatch.setattr(data, "_download", offline)
    return calls


def indexed_raw(n_train: int = 500, n_test: int = 50) -> RawDataset:
    """Images whose first two pixels encode their own index, so splits can be traced."""
    x = torch.zeros(n_train, 1, 8, 8, dtype=torch.uint8)
    idx = torch.arange(n_train)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = (idx % 256).to(torch.uint8), (idx // 256).to(torch.uint8)
    x[:, 0, 4:, 4:] = 200
    return RawDataset("indexed", x, idx % 10, x[:n_test].clone(), idx[:n_test] % 10,
                      classes=tuple("0123456789"), source="generated")


def ids(x: torch.Tensor) -> set[int]:
    return set((x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist())


# ---------------------------------------------------------------------------- lookup and IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "MNIST/raw", "mnist"])
def test_mnist_from_data_dir(tmp_path, no_download, gz, layout):
    where = tmp_path if layout == "flat" else tmp_path / layout
    arrays = fake_mnist(where, gz=gz)
    raw = load_dataset("mnist", tmp_path)
    assert_matches(raw, arrays)
    assert raw.source == str(where) and not no_download


@pytest.mark.parametrize("layout", ["MNIST/raw", "mnist"])
def test_mnist_from_env_dir(tmp_path, monkeypatch, no_download, layout):
    arrays = fake_mnist(tmp_path / layout, gz=True)
    monkeypatch.setenv("HPSEARCH_DATA_DIR", str(tmp_path))
    assert_matches(load_dataset("mnist"), arrays)


def test_bare_shared_dir_is_not_trusted_for_another_dataset(tmp_path, monkeypatch, no_download):
    # The IDX names are the same for mnist, fashion-mnist and kmnist: MNIST files lying in
    # $HPSEARCH_DATA_DIR itself must not be loaded as kmnist.
    fake_mnist(tmp_path)
    monkeypatch.setenv("HPSEARCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="kmnist is not available offline"):
        load_dataset("kmnist")


def test_search_dirs_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert search_dirs(tmp_path / "flag") == [tmp_path / "flag", tmp_path / "env",
                                              tmp_path / "xdg" / "hpsearch"]
    monkeypatch.delenv("HPSEARCH_DATA_DIR")
    assert search_dirs() == [tmp_path / "xdg" / "hpsearch"]


def test_offline_error_names_dirs_and_alternatives(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    empty = tmp_path / "empty"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", empty)
    msg = str(info.value)
    assert "\n" not in msg and no_download == ["mnist"]
    assert msg.startswith("mnist is not available offline")
    assert str(empty) in msg and str(tmp_path / "xdg" / "hpsearch") in msg
    assert "Name or service not known" in msg and "--data-dir" in msg
    assert "--dataset digits" in msg and "--dataset synthetic" in msg
    assert "dataset-fashion-mnist" in msg


def test_offline_error_offers_what_is_installed_not_its_package(tmp_path, monkeypatch,
                                                                 no_download):
    # fashion-mnist is here (as `hpsearch datasets` shows): offered as --dataset, and its
    # Debian package is not suggested again.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fake_mnist(tmp_path / "debian")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path / "empty")
    msg = str(info.value)
    assert f"--dataset fashion-mnist (found in {tmp_path / 'debian'})" in msg
    assert "apt-get" not in msg and "--dataset digits" in msg


def test_download_false_does_not_try(tmp_path, no_download):
    with pytest.raises(DataError, match="download disabled"):
        load_dataset("kmnist", tmp_path, download=False)
    assert no_download == []


def test_successful_download_is_found_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    written: dict[str, np.ndarray] = {}
    monkeypatch.setattr(data, "_download", lambda name, root: written.update(
        fake_mnist(root / "KMNIST" / "raw", gz=True)))
    raw = load_dataset("kmnist", tmp_path / "empty")
    assert raw.classes[:3] == ("o", "ki", "su")
    assert raw.source == str(tmp_path / "xdg" / "hpsearch" / "KMNIST" / "raw")


@pytest.mark.parametrize("damage", ["truncated", "bad magic", "bad gzip", "count mismatch"])
def test_corrupt_idx_file_names_the_file(tmp_path, no_download, damage):
    fake_mnist(tmp_path, gz=damage == "bad gzip")
    victim = tmp_path / ("train-images-idx3-ubyte" + (".gz" if damage == "bad gzip" else ""))
    content = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(content[:-100])
    elif damage == "bad magic":
        victim.write_bytes(b"\x00\x00\x0d\x03" + content[4:])
    elif damage == "bad gzip":
        victim.write_bytes(content[: len(content) // 2])
    else:
        write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(49, np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*fashion-mnist.*synthetic"):
        load_dataset("cifar")


def test_available_datasets_downloads_nothing(tmp_path, no_download):
    fake_mnist(tmp_path / "MNIST" / "raw")
    rows = {r["name"]: r for r in data.available_datasets(tmp_path)}
    assert list(rows) == [*DATASETS, "PATH.npz", "DIR"] and not no_download
    assert rows["cifar10"]["available"] == "download"
    assert rows["DIR"]["available"] == rows["PATH.npz"]["available"] == "yours"
    assert rows["mnist"] == {"name": "mnist", "available": "yes",
                             "where": str(tmp_path / "MNIST" / "raw")}
    assert rows["kmnist"]["available"] == "download"
    assert rows["digits"]["available"] == rows["synthetic"]["available"] == "yes"


# ---------------------------------------------------------------------------- bundled sets


def test_digits_fixed_stratified_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.train_x.shape[1:] == (1, 8, 8) and a.train_x.dtype == torch.uint8
    assert len(a.train_y) + len(a.test_y) == 1797 and 440 <= len(a.test_y) <= 460
    assert int(a.train_x.max()) == 255 and a.source == "scikit-learn"
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert set(a.test_y.tolist()) == set(range(10))
    # No test image is also a training image (rows are distinct in this data set, mostly).
    train_rows = {bytes(r) for r in a.train_x.flatten(1).numpy()}
    overlap = sum(bytes(r) in train_rows for r in a.test_x.flatten(1).numpy())
    assert overlap < 5


def test_synthetic_deterministic_learnable_not_trivial():
    start = time.perf_counter()
    a = load_dataset("synthetic")
    assert time.perf_counter() - start < 0.5
    b = load_dataset("synthetic")
    assert a.train_x.shape == (2000, 1, 8, 8) and a.test_x.shape == (500, 1, 8, 8)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.source == "generated" and torch.bincount(a.train_y).tolist() == [200] * 10
    # Nearest class mean: well above chance (10%), well below perfect.
    centroids = torch.stack([a.train_x[a.train_y == k].float().mean(0) for k in range(10)])
    pred = torch.cdist(a.test_x.float().flatten(1), centroids.flatten(1)).argmin(1)
    assert 0.6 < (pred == a.test_y).float().mean().item() < 0.97


DEBIAN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not DEBIAN.exists(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian(no_download):
    raw = load_dataset("fashion-mnist")
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    assert raw.source == str(DEBIAN.parent) and raw.classes[0] == "T-shirt/top"
    assert torch.bincount(raw.test_y).tolist() == [1000] * 10


# ---------------------------------------------------------------------------- DeviceData


def test_split_is_a_seeded_hold_out():
    raw = indexed_raw()
    d = DeviceData.create(raw, val_size=100, seed=0)
    assert len(d.val_y) == 100 and len(d.train_y) == 400
    assert ids(d.train_x).isdisjoint(ids(d.val_x))
    assert ids(d.train_x) | ids(d.val_x) == set(range(500))
    same, other = DeviceData.create(raw, val_size=100, seed=0), DeviceData.create(raw, seed=1)
    assert ids(same.val_x) == ids(d.val_x) and ids(other.val_x) != ids(d.val_x)
    # Labels travel with their images.
    assert torch.equal(d.val_y, torch.tensor(sorted(ids(d.val_x))) % 10)
    assert d.input_shape == (1, 8, 8) and d.n_classes == 10 and len(d.test_y) == 50


def test_val_size_is_clamped_for_small_sets():
    d = DeviceData.create(indexed_raw(), val_size=10_000)
    assert len(d.val_y) == 100 and len(d.train_y) == 400
    with pytest.raises(DataError, match="too few"):
        DeviceData.create(indexed_raw(n_train=4, n_test=2))


def test_stats_come_from_the_train_split_only():
    d = DeviceData.create(load_dataset("digits"), val_size=300)
    x01 = d.train_x.float() / 255
    assert torch.allclose(d.mean, x01.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(d.std, x01.std((0, 2, 3), unbiased=False), atol=1e-6)
    assert d.min.tolist() == [0.0] and d.max.tolist() == [1.0]
    assert d.mean.dtype == torch.float32 and d.mean.shape == (1,)


# ---------------------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def digits() -> DeviceData:
    return DeviceData.create(load_dataset("digits"), val_size=300)


def test_input_norms(digits):
    x = digits.train_x
    none = digits.prepare(x)
    assert none.dtype == torch.float32 and torch.equal(none, x.float() / 255)
    std = digits.prepare(x, input_norm="standardize")
    assert abs(std.mean().item()) < 1e-4 and abs(std.std(unbiased=False).item() - 1) < 1e-4
    mm = digits.prepare(x, input_norm="minmax")
    assert mm.min().item() == pytest.approx(-1) and mm.max().item() == pytest.approx(1)
    assert torch.allclose(mm, none * 2 - 1, atol=1e-6)
    with pytest.raises(ConfigError, match="choose from none, standardize, minmax"):
        digits.prepare(x, input_norm="zscore")


AUGS = ["shift", "affine", "resized_crop", "flip"]


@pytest.mark.parametrize("kind", AUGS)
def test_strength_zero_is_the_identity(digits, kind):
    x = digits.train_x[:64]
    out = digits.prepare(x, augmentation=kind, aug_strength=0.0)
    assert torch.equal(out, x.float() / 255)
    # The sampling matrices themselves are the identity at strength 0, not just skipped.
    theta = device_data._theta(kind, 0.0, torch.rand(8, 5))
    assert torch.allclose(theta, torch.eye(2, 3).expand(8, 2, 3), atol=1e-6)
    tiny = digits.prepare(x, augmentation=kind, aug_strength=1e-7)
    assert torch.allclose(tiny, x.float() / 255, atol=1e-4)


@pytest.mark.parametrize("kind", AUGS)
def test_full_strength_per_sample_and_reproducible(digits, kind):
    x = digits.train_x[:64]
    runs = [digits.prepare(x, augmentation=kind, aug_strength=1.0, input_norm="standardize",
                           generator=torch.Generator().manual_seed(seed)) for seed in (3, 3, 4)]
    plain = digits.prepare(x, input_norm="standardize")
    assert runs[0].shape == x.shape and runs[0].dtype == torch.float32
    assert runs[0].device == x.device
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    changed = (runs[0] - plain).abs().flatten(1).amax(1) > 1e-3
    assert changed.any()
    # Per-sample parameters: the same image in every row is transformed differently.
    same = x[:1].expand(16, -1, -1, -1)
    out = digits.prepare(same, augmentation=kind, aug_strength=1.0,
                         generator=torch.Generator().manual_seed(0))
    assert len({tuple(r.tolist()) for r in out.flatten(1)}) > 1


def test_flip_at_full_strength_flips_about_half(digits):
    x = digits.train_x[:400]
    out = digits.prepare(x, augmentation="flip", aug_strength=1.0,
                         generator=torch.Generator().manual_seed(0))
    plain, mirrored = x.float() / 255, x.flip(-1).float() / 255
    is_flipped = (out - mirrored).abs().flatten(1).amax(1) < 1e-5
    is_plain = (out - plain).abs().flatten(1).amax(1) < 1e-5
    assert (is_flipped | is_plain).all()
    assert 150 < int((is_flipped & ~is_plain).sum()) < 250


def test_shift_moves_content_and_pads_with_zeros(digits):
    x = torch.zeros(32, 1, 8, 8, dtype=torch.uint8)
    x[:, :, 3:5, 3:5] = 255
    out = digits.prepare(x, augmentation="shift", aug_strength=1.0,
                         generator=torch.Generator().manual_seed(0))
    assert out.min().item() >= 0 and out.max().item() <= 1 + 1e-6
    assert out.sum((1, 2, 3)).sub(4).abs().max().item() < 1e-3  # 15% of 8 px keeps it inside


def test_unknown_augmentation(digits):
    with pytest.raises(ConfigError, match="choose from none, shift, affine"):
        digits.prepare(digits.train_x[:2], augmentation="mixup", aug_strength=0.5)


def test_train_size_keeps_a_seeded_subset_and_whole_val_and_test() -> None:
    raw = load_dataset("synthetic")
    full = DeviceData.create(raw, val_size=400, seed=3)
    small = DeviceData.create(raw, val_size=400, seed=3, train_size=500)
    again = DeviceData.create(raw, val_size=400, seed=3, train_size=500)
    assert len(small.train_y) == 500 and torch.equal(small.train_x, again.train_x)
    assert torch.equal(small.val_x, full.val_x) and torch.equal(small.test_x, full.test_x)
    rows = {bytes(x.flatten().tolist()) for x in full.train_x}
    assert all(bytes(x.flatten().tolist()) in rows for x in small.train_x)
