"""Bad presets, flags and settings, one clear line each, and nothing written: file, key and
what is allowed; out-of-range flags; devices and datasets that are not there; settings of
the wrong type; a resumed study with another seed.

In-process (``CliRunner``) for the commands, and through the library (``load_study``) for
what the read-only commands are built on.
"""

from __future__ import annotations

import pytest
from support.cli import TINY, error_line, run

import hpsearch.storage.open
import hpsearch.storage.specs
import hpsearch.training.datasets
from hpsearch.storage.open import load_study


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() sets torch's threads from OMP_NUM_THREADS: one, on 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------- presets and flags


@pytest.mark.parametrize("toml, expected", [
    ('paramz = {}\n', "unknown key(s) paramz; allowed: question, description, params, "
     "settings"),
    ('[params]\nbatchnorm = "before"\n', "params.batchnorm: unknown param 'batchnorm'"),
    ('[params]\ndropout = "high"\n', "dropout must be a number in [0, 0.7], got 'high'"),
    ('[params]\nhidden_layers = 2.5\n', "hidden_layers must be an integer"),
    ('[params]\nactivation = []\n', "activation has an empty list of choices"),
    ('[params]\nlr = { low = 0.1, high = 0.001 }\n', "lr range low=0.1 high=0.001 is empty "
     "or inverted"),
    ('[params]\ndropout = 0.9\n', "dropout = 0.9 is outside [0, 0.7]"),
    ('[params]\nbatch_norm = ["before", "sideways"]\n', "batch_norm = 'sideways' is not "
     "allowed"),
    ('question = "why"\n', "question = 'why' is unknown"),
    ('[settings]\nepoch = 3\n', "unknown setting 'epoch'"),
    ('[settings]\nepochs = "ten"\n', "epochs = 'ten' is invalid"),
    ('[settings]\ntrials = 0\n', "trials = 0 is invalid"),
    ('[params\n', "not valid TOML"),
])
def test_bad_preset_files_name_file_key_and_what_is_allowed(tmp_path, toml, expected):
    preset = tmp_path / "mine.toml"
    preset.write_text(toml)
    db = tmp_path / "s.db"
    line = error_line(*run("optimize", "--storage", str(db), "--preset", str(preset),
                           "--trials", "1"))
    assert expected in line and "mine.toml" in line
    assert not db.exists()


@pytest.mark.parametrize("flags, expected", [
    (["--jobs", "0"], "Invalid value for '--jobs'"),
    (["--jobs", "65"], "Invalid value for '--jobs'"),
    (["--epochs", "0"], "Invalid value for '--epochs'"),
    (["--trials", "-3"], "Invalid value for '--trials'"),
    (["--timeout", "0"], "Invalid value for '--timeout'"),
    (["--seed", "-1"], "Invalid value for '--seed'"),
    (["--sampler", "bayes"], "Invalid value for '--sampler'"),
    (["--pruner", "always"], "Invalid value for '--pruner'"),
    (["--set", "dropout=0.9"], "dropout = 0.9 is outside [0, 0.7]"),
    (["--set", "lr=0.1..0.001"], "lr range low=0.1 high=0.001 is empty or inverted"),
    (["--set", "dropout"], "expected PARAM=VALUE"),
    (["--set", "batch_norm=sideways"], "batch_norm = 'sideways' is not allowed"),
    (["--set", "nope=1"], "unknown param 'nope'"),
    (["--preset", "missing-preset"], "preset 'missing-preset' not found"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--trials", "0"], "Invalid value for '--trials'"),
])
def test_out_of_range_flags(tmp_path, flags, expected):
    db = tmp_path / "s.db"
    line = error_line(*run("optimize", "--storage", str(db), *flags))
    assert expected in line
    assert not db.exists()


@pytest.mark.parametrize("device, expected", [
    ("tpu", "device = 'tpu' is invalid"),
    ("cuda:x", "Invalid device string: 'cuda:x'"),
])
def test_a_device_that_does_not_exist(tmp_path, device, expected):
    line = error_line(*run("optimize", "--storage", str(tmp_path / "s.db"), "--device", device,
                           "--trials", "1", *TINY))
    assert expected in line


def test_a_dataset_that_is_not_available_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(hpsearch.training.datasets, "_download", offline)
    db = tmp_path / "s.db"
    line = error_line(*run("optimize", "--storage", str(db), "--dataset", "kmnist",
                           "--data-dir", str(tmp_path / "data"), "--trials", "1", "-q"))
    assert "kmnist is not available offline" in line
    assert str(tmp_path / "data") in line and "--dataset digits" in line


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("args, expected", [
    (["--seed", "4294967296"], "Invalid value for '--seed'"),
    (["--preset", "{preset}"], "seed = 4294967296 is invalid"),
])
def test_a_seed_beyond_32_bits_is_one_line_and_writes_nothing(tmp_path, args, expected):
    preset = tmp_path / "big.toml"
    preset.write_text("[settings]\nseed = 4294967296\n")
    db = tmp_path / "s.db"
    line = error_line(*run("optimize", "--storage", str(db), "--trials", "1", *TINY[:6],
                           *[a.format(preset=preset) for a in args]))
    assert expected in line
    assert not db.exists()


@pytest.mark.parametrize("toml, expected", [
    ("[settings]\ndata_dir = 5\n", "data_dir = 5 is invalid; must be a directory path"),
    ("[settings]\nstudy_name = 7\n", "study_name = 7 is invalid"),
])
def test_settings_of_the_wrong_type_are_one_line(tmp_path, toml, expected):
    preset = tmp_path / "mine.toml"
    preset.write_text(toml)
    db = tmp_path / "s.db"
    line = error_line(*run("optimize", "--storage", str(db), "--preset", str(preset),
                           "--trials", "1", *TINY))
    assert expected in line and "mine.toml" in line
    assert not db.exists()


def test_resuming_with_another_seed_is_refused(tmp_path):
    db = str(tmp_path / "s.db")
    code, out = run("optimize", "--storage", db, "--trials", "1", *TINY)
    assert code == 0, out
    line = error_line(*run("optimize", "--storage", db, "--trials", "2", "--seed", "1", *TINY))
    assert "was run with seed=0, not 1; use another --study-name" in line
    assert len(load_study(db).trials) == 1
