"""A start that fails (no CUDA, offline, corrupt data) is one line and leaves nothing behind.

In-process (``CliRunner``) for the commands, and through the library (``load_study``) for
what the read-only commands are built on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from support.cli import TINY, error_line, run
from support.studies import small_study

import hpsearch.storage.open
import hpsearch.storage.specs
import hpsearch.training.datasets
from hpsearch.storage.open import open_storage


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() sets torch's threads from OMP_NUM_THREADS: one, on 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------- failed starts


def _fail_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision offline: it makes its directories, then the network fails."""
    def offline(name: str, root: Path) -> None:
        (root / hpsearch.training.datasets.TORCHVISION_NAME[name] / "raw").mkdir(parents=True)
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(hpsearch.training.datasets, "_download", offline)


def _corrupt_data(tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (data / name).write_bytes(b"\x00\x00\x08\x03 not an IDX file")
    return ["--dataset", "mnist", "--data-dir", str(data)]


@pytest.mark.parametrize("case", ["no cuda", "offline", "corrupt data"])
def test_a_failed_start_leaves_nothing_behind(tmp_path, monkeypatch, case):
    _fail_download(monkeypatch)
    cache = Path(os.environ["XDG_CACHE_HOME"])
    cache_before = sorted(cache.rglob("*"))
    flags = {"no cuda": ["--device", "cuda", "--dataset", "synthetic"],
             "offline": ["--dataset", "kmnist"],
             "corrupt data": _corrupt_data(tmp_path)}[case]
    fast = ["--epochs", "1", "--model", "mlp", "--set", "hidden_units=64", "-q"]
    if case == "no cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for db in (tmp_path / "new.db", tmp_path / "new.log"):
        error_line(*run("optimize", "--storage", str(db), "--trials", "1", *flags, *fast))
        assert not db.exists() and not Path(str(db) + ".artifacts").exists()
    assert sorted(cache.rglob("*")) == cache_before  # no empty cache dirs either

    # An existing storage gets no study, so the name is free for other settings.
    db = str(tmp_path / "old.db")
    small_study(db, "other")
    error_line(*run("optimize", "--storage", db, "--trials", "1", *flags, *fast))
    assert hpsearch.storage.open.study_names(open_storage(db)) == ["other"]
    code, out = run("optimize", "--storage", db, "--trials", "1", *TINY)
    assert code == 0, out
