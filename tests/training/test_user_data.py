"""The data people bring: CIFAR-10's python batches, an .npz, an image folder; bad input."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from support.datasets import images, write_cifar, write_folder, write_npz

import hpsearch.training.datasets as data
from hpsearch.errors import ConfigError, DataError
from hpsearch.settings import Settings, settings_from
from hpsearch.training.datasets import dataset_label, load_dataset
from hpsearch.training.device_data import DeviceData
from hpsearch.training.raw import cache_dir


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def offline(name: str, root: Path) -> None:
        calls.append(name)
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\n<urlopen error "
                           "[Errno -2] Name or service not known>")

    monkeypatch.setattr(data, "_download", offline)
    return calls


# ---------------------------------------------------------------------------- cifar10


@pytest.mark.parametrize("layout", ["bare", "cifar-10-batches-py", "cifar10/cifar-10-batches-py"])
def test_cifar10_batches_are_read_offline(tmp_path, no_download, layout):
    folder = tmp_path if layout == "bare" else tmp_path / layout
    written = write_cifar(folder)
    raw = load_dataset("cifar10", tmp_path)
    assert not no_download
    assert raw.train_x.shape == (100, 3, 32, 32) and raw.train_x.dtype == torch.uint8
    assert raw.test_x.shape == (20, 3, 32, 32) and raw.test_y.dtype == torch.int64
    # data is the red plane, then green, then blue: pixel (row 0, col 1) of image 0
    first = written["data_batch_1"][0][0]
    assert raw.train_x[0, :, 0, 1].tolist() == [first[1], first[1024 + 1], first[2048 + 1]]
    assert np.array_equal(raw.train_y[20:40].numpy(), written["data_batch_2"][1])
    assert np.array_equal(raw.test_y.numpy(), written["test_batch"][1])
    assert raw.classes[0] == "airplane" and len(raw.classes) == 10


def test_cifar10_from_the_env_dir_and_the_archive(tmp_path, monkeypatch, no_download):
    write_cifar(tmp_path / "src" / "cifar-10-batches-py", meta=False)
    (tmp_path / "env").mkdir()
    with tarfile.open(tmp_path / "env" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setenv("HPSEARCH_DATA_DIR", str(tmp_path / "env"))
    raw = load_dataset("cifar10")
    assert raw.train_x.shape == (100, 3, 32, 32) and raw.classes[-1] == "truck"
    assert raw.source.endswith("cifar-10-python.tar.gz") and not no_download
    rows = {r["name"]: r for r in data.available_datasets()}
    assert rows["cifar10"]["available"] == "yes"


def test_cifar10_offline_error_names_the_layout(tmp_path, no_download):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path / "none")
    msg = str(err.value)
    assert "cifar10 is not available offline" in msg and "cifar-10-batches-py/" in msg
    assert str(tmp_path / "none") in msg and "Name or service not known" in msg
    assert no_download == ["cifar10"]
    assert not (tmp_path / "cache" / "hpsearch").exists()


def test_cifar10_download_lands_where_it_is_found(tmp_path, monkeypatch):
    def fake(name: str, root: Path) -> None:  # torchvision's layout under the cache
        write_cifar(root / "cifar-10-batches-py")

    monkeypatch.setattr(data, "_download", fake)
    assert load_dataset("cifar10").train_x.shape[1:] == (3, 32, 32)


@pytest.mark.parametrize("damage, expected", [
    ("truncate", "not a CIFAR-10 python batch"),
    ("keys", "expected a dict with b'data' and b'labels'"),
    ("shape", "b'data' must be uint8 N x 3072"),
    ("labels", "20 labels for 19 images"),
    ("code", "refusing to load (os|posix).system"),
])
def test_a_damaged_batch_is_named(tmp_path, no_download, damage, expected):
    write_cifar(tmp_path)
    bad = tmp_path / "data_batch_3"
    doc = {b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 20}
    if damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:50])
    elif damage == "code":
        class Evil:
            def __reduce__(self):
                import os
                return os.system, ("true",)
        bad.write_bytes(pickle.dumps(Evil()))
    else:
        if damage == "keys":
            doc = {b"pixels": doc[b"data"]}
        elif damage == "shape":
            doc[b"data"] = np.zeros((20, 1024), np.uint8)
        else:
            doc[b"data"] = doc[b"data"][:19]
        bad.write_bytes(pickle.dumps(doc))
    with pytest.raises(DataError, match=expected) as err:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_3" in str(err.value)


# ---------------------------------------------------------------------------- .npz


@pytest.mark.parametrize("shape, chw", [((8, 8, 3), (3, 8, 8)), ((6, 10), (1, 6, 10)),
                                        ((12, 12, 1), (1, 12, 12))])
def test_npz_images_any_channels_and_size(tmp_path, shape, chw):
    arrays = write_npz(tmp_path / "d.npz", shape=shape)
    raw = load_dataset(str(tmp_path / "d.npz"))
    assert raw.train_x.shape == (120, *chw) and raw.test_x.shape == (40, *chw)
    x = arrays["x_train"]
    expected = x[:, None] if len(shape) == 2 else x.transpose(0, 3, 1, 2)  # type: ignore[union-attr]
    assert np.array_equal(raw.train_x.numpy(), expected)
    assert raw.classes == ("0", "1", "2") and raw.test_y.dtype == torch.int64


def test_npz_class_names_and_relative_paths(tmp_path, monkeypatch):
    write_npz(tmp_path / "pets.npz", classes=np.array(["cat", "dog", "fox"]))
    monkeypatch.chdir(tmp_path)
    raw = load_dataset("pets.npz")
    assert raw.classes == ("cat", "dog", "fox")
    settings = settings_from({"dataset": "pets.npz"}, source="test")
    assert settings.dataset == str(tmp_path / "pets.npz")  # absolute: verify finds it later
    assert dataset_label(settings.dataset) == "pets"


BAD_NPZ = {
    "missing": ({"y_test": None}, r"missing array\(s\) y_test"),
    "float-range": ({"x_train": np.full((120, 8, 8, 3), 3.0)}, r"must be in \[0, 1\]"),
    "dtype": ({"x_train": np.zeros((120, 8, 8, 3), np.int32)}, "must be uint8"),
    "shape": ({"x_train": np.zeros((120, 64), np.uint8)}, "must be N x H x W"),
    "channels-first": ({"x_train": np.zeros((120, 3, 8, 8), np.uint8)}, "looks channels-first"),
    "length": ({"y_train": np.zeros(119, np.int64)}, "119 labels for 120 images"),
    "non-integer": ({"y_train": np.full(120, 1.5)}, "labels must be integers; label 0 is 1.5"),
    "negative": ({"y_test": np.full(40, -1)}, "labels must be class indices >= 0"),
    "text-labels": ({"y_train": np.array(["a"] * 120)}, "labels must be integers"),
    "sizes": ({"x_test": np.zeros((40, 9, 9, 3), np.uint8)}, "train images are .* but test"),
    "one-class": ({"y_train": np.zeros(120, np.int64), "y_test": np.zeros(40, np.int64)},
                  "at least 2 classes"),
    "classes": ({"classes": np.array(["a", "b"])}, "label 2 is out of range for 2 classes"),
    "objects": ({"x_train": np.array([None] * 120)}, "cannot read as .npz"),
}


@pytest.mark.parametrize("case", BAD_NPZ)
def test_bad_npz_gets_one_clear_message(tmp_path, case):
    replace, expected = BAD_NPZ[case]
    write_npz(tmp_path / "d.npz", **replace)
    with pytest.raises(DataError, match=expected) as err:
        load_dataset(str(tmp_path / "d.npz"))
    assert str(tmp_path / "d.npz") in str(err.value) or case == "sizes"


def test_a_file_that_is_not_an_npz(tmp_path):
    (tmp_path / "d.npz").write_text("hello")
    with pytest.raises(DataError, match="cannot read as .npz"):
        load_dataset(str(tmp_path / "d.npz"))
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(DataError, match="a file dataset is an .npz"):
        load_dataset(str(tmp_path / "d.csv"))


def test_a_missing_path_is_a_setting_error(tmp_path):
    with pytest.raises(DataError, match="unknown dataset .*no such file or directory"):
        load_dataset(str(tmp_path / "gone.npz"))
    with pytest.raises(ConfigError, match="command line: unknown dataset"):
        settings_from({"dataset": str(tmp_path / "gone")}, source="command line")
    assert Settings().dataset == "mnist"


# ---------------------------------------------------------------------------- image folder


def test_image_folder_rgb(tmp_path):
    write_folder(tmp_path / "pets")
    (tmp_path / "pets" / "train" / "cat" / ".DS_Store").write_text("x")   # skipped
    (tmp_path / "pets" / "train" / "cat" / "notes.txt").write_text("x")   # skipped
    raw = load_dataset(str(tmp_path / "pets"))
    assert raw.classes == ("cat", "dog", "fox")
    assert raw.train_x.shape == (18, 3, 8, 8) and raw.test_x.shape == (9, 3, 8, 8)
    assert sorted(raw.train_y.tolist()) == [0] * 6 + [1] * 6 + [2] * 6
    from PIL import Image

    first = np.asarray(Image.open(sorted((tmp_path / "pets/train/cat").glob("*.png"))[0]))
    assert np.array_equal(raw.train_x[0].numpy().transpose(1, 2, 0), first)


def test_image_folder_grey_is_one_channel_and_sizes_may_be_non_square(tmp_path):
    write_folder(tmp_path / "g", mode="L", size=(10, 6))
    raw = load_dataset(str(tmp_path / "g"))
    assert raw.train_x.shape == (18, 1, 6, 10)


def test_image_folder_test_may_lack_a_class(tmp_path):
    write_folder(tmp_path / "p")
    for f in (tmp_path / "p" / "test" / "fox").iterdir():
        f.unlink()
    (tmp_path / "p" / "test" / "fox").rmdir()
    raw = load_dataset(str(tmp_path / "p"))
    assert raw.classes == ("cat", "dog", "fox") and 2 not in raw.test_y.tolist()


def _resave(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    Image.new("RGB", size, (10, 20, 30)).save(path)


@pytest.mark.parametrize("case, expected", [
    ("mixed", "images of mixed sizes: .* is 8x8 but .* is 9x8"),
    ("empty", "an empty class folder"),
    ("no-test", "needs .*test/<class>"),
    ("no-classes", "no class folders"),
    ("extra-test-class", "class folder\\(s\\) owl have no counterpart"),
    ("corrupt", "cannot read the image"),
])
def test_bad_image_folder_gets_one_clear_message(tmp_path, case, expected):
    root = tmp_path / "p"
    write_folder(root)
    cat = root / "train" / "cat"
    if case == "mixed":
        _resave(sorted(cat.glob("*.png"))[-1], (9, 8))
    elif case == "empty":
        (root / "train" / "owl").mkdir()
        (root / "train" / "owl" / "readme.txt").write_text("no images")
    elif case == "no-test":
        import shutil
        shutil.rmtree(root / "test")
    elif case == "no-classes":
        import shutil
        for d in (root / "train").iterdir():
            shutil.rmtree(d)
    elif case == "extra-test-class":
        (root / "test" / "owl").mkdir()
        _resave(root / "test" / "owl" / "a.png", (8, 8))
    else:
        (cat / "zz.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=expected):
        load_dataset(str(root))


# ---------------------------------------------------------------------------- on the device


def test_colour_splits_per_channel_stats_and_chance(tmp_path):
    x, y = images(200, (8, 8, 3), 4)
    x[..., 0] //= 4          # a dark red channel
    y[:100] = 0              # class 0 is half the set
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    dd = DeviceData.create(load_dataset(str(tmp_path / "d.npz")), val_size=40, seed=0)
    assert dd.input_shape == (3, 8, 8) and dd.n_classes == 4
    assert dd.mean.shape == (3,) and dd.mean[0] < dd.mean[1] / 2
    out = dd.prepare(dd.train_x, input_norm="standardize")
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.std((0, 2, 3)), torch.ones(3), atol=1e-2)
    counts = torch.bincount(dd.val_y, minlength=4)
    assert dd.chance == pytest.approx(counts.max().item() / 40) and dd.chance > 0.25


def test_an_image_folder_is_decoded_once_until_a_file_changes(tmp_path, monkeypatch):
    import PIL.Image

    write_folder(tmp_path / "p")
    first = load_dataset(str(tmp_path / "p"))
    cache = list((cache_dir() / "folders").glob("p-*.npz"))
    assert len(cache) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(PIL.Image, "open", no_decoding)
        again = load_dataset(str(tmp_path / "p"))
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_y, again.test_y)
    assert again.classes == first.classes
    _resave(sorted((tmp_path / "p" / "train" / "dog").glob("*.png"))[0], (8, 8))
    changed = load_dataset(str(tmp_path / "p"))
    assert not torch.equal(first.train_x, changed.train_x)
    assert [p.name for p in (cache_dir() / "folders").glob("p-*.npz")] \
        != [p.name for p in cache]  # the old contents' file is gone, the new one kept
    assert len(list((cache_dir() / "folders").glob("p-*.npz"))) == 1
