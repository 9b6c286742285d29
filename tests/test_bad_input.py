"""Bad input: each case is one clear line, a non-zero exit and never a traceback.

In-process (``CliRunner``) for the commands that exist, and through the library
(``load_study``) for what the read-only commands (report, best, ...) are built on.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner

import hpsearch.storage.open
import hpsearch.storage.specs
import hpsearch.training.datasets
from hpsearch.cli import main
from hpsearch.errors import StorageError, StudyError
from hpsearch.storage.open import load_study, open_storage
from hpsearch.storage.specs import SQLITE_MAGIC

TINY = ["--dataset", "synthetic", "--epochs", "1", "--model", "mlp",
        "--set", "hidden_layers=1", "--set", "hidden_units=64", "-q"]



@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() sets torch's threads from OMP_NUM_THREADS: one, on 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    # CliRunner swallows an unhandled exception (a traceback for a real user): re-raise it.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def error_line(code: int, out: str) -> str:
    """The one ``Error: ...`` line of a failed command (and there is exactly one)."""
    assert code != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out
    return errors[0]


def _study(spec: str, name: str, n_trials: int = 1) -> None:
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name=name,
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n_trials)


# ---------------------------------------------------------------- storage files


@pytest.mark.parametrize("name", ["missing.db", "missing.log", "sqlite:///{dir}/missing.db"])
def test_a_missing_storage_is_an_error_and_is_not_created(tmp_path, name):
    spec = name.format(dir=tmp_path) if "{dir}" in name else str(tmp_path / name)
    with pytest.raises(StorageError, match="does not exist"):
        load_study(spec)
    assert list(tmp_path.iterdir()) == []


def test_optimize_on_a_text_file_leaves_it_alone(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n" * 50)
    line = error_line(*run("optimize", "--storage", str(notes), "--trials", "1", *TINY))
    assert "notes.db" in line and "is not a SQLite database" in line
    assert notes.read_text() == "my notes\n" * 50
    with pytest.raises(StorageError, match="is not a SQLite database"):
        load_study(str(notes))


def _corrupt(tmp_path: Path) -> Path:
    good = tmp_path / "good.db"
    _study(str(good), "a", n_trials=3)
    data = good.read_bytes()
    assert data.startswith(SQLITE_MAGIC)
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(data[:100] + bytes((b * 7 + 13) % 256 for b in data[100:]))
    return bad


def test_a_corrupt_sqlite_file_is_one_line(tmp_path):
    bad = _corrupt(tmp_path)
    line = error_line(*run("optimize", "--storage", str(bad), "--trials", "1", *TINY))
    assert line.startswith(f"Error: cannot open storage {bad}: ")
    assert "malformed" in line or "not a database" in line, line
    with pytest.raises(StorageError, match="cannot open storage|cannot read studies"):
        load_study(str(bad))


def test_a_journal_that_is_not_a_journal_is_one_line(tmp_path):
    log = tmp_path / "study.log"
    log.write_text("2024-01-01 12:00:00 INFO started\n")
    line = error_line(*run("optimize", "--storage", str(log), "--trials", "1", *TINY))
    assert "is not an Optuna journal file" in line


def test_a_directory_is_not_a_storage(tmp_path):
    error_line(*run("optimize", "--storage", str(tmp_path), "--trials", "1", *TINY))
    with pytest.raises(StorageError, match="is a directory"):
        load_study(str(tmp_path))


def _hold_exclusive_lock(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    return con


def test_a_locked_sqlite_file_waits_then_fails_clearly(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    _study(str(db), "other")
    monkeypatch.setattr(hpsearch.storage.specs, "SQLITE_TIMEOUT", 1.0)
    con = _hold_exclusive_lock(db)
    try:
        start = time.monotonic()
        line = error_line(*run("optimize", "--storage", str(db), "--trials", "1", *TINY))
        assert time.monotonic() - start >= 1.0  # it waited for the lock first
    finally:
        con.rollback()
        con.close()
    assert "database is locked" in line and "HPSEARCH_SQLITE_TIMEOUT" in line


def test_a_locked_sqlite_file_is_used_once_the_lock_is_released(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    _study(str(db), "other")
    monkeypatch.setattr(hpsearch.storage.specs, "SQLITE_TIMEOUT", 30.0)
    con = _hold_exclusive_lock(db)
    release = threading.Timer(1.0, lambda: (con.rollback(), con.close()))
    release.start()
    try:
        code, out = run("optimize", "--storage", str(db), "--trials", "2", *TINY)
    finally:
        release.join()
    assert code == 0, out
    assert len(load_study(str(db), "full-synthetic").trials) == 2


# ---------------------------------------------------------------- studies


def test_unknown_study_name_lists_the_existing_ones(tmp_path):
    db = str(tmp_path / "s.db")
    _study(db, "bn-mnist")
    _study(db, "dropout-mnist")
    with pytest.raises(StudyError, match="no study named 'bn' in .*; it holds: bn-mnist, "
                       "dropout-mnist"):
        load_study(db, "bn")


def test_several_studies_and_no_name_asks_for_one(tmp_path):
    db = str(tmp_path / "s.log")
    _study(db, "a")
    _study(db, "b")
    with pytest.raises(StudyError, match="holds 2 studies; choose one with --study-name: a, b"):
        load_study(db)


def test_a_storage_with_no_study(tmp_path):
    db = tmp_path / "empty.db"
    open_storage(str(db), create=True)
    with pytest.raises(StudyError, match="holds no study yet"):
        load_study(str(db))


# The read-only commands are someone else's; each, once it exists, must give one line too.
READ_COMMANDS = ("report", "best")


def _command(name: str) -> None:
    if name not in main.commands:  # type: ignore[attr-defined]
        pytest.skip(f"`hpsearch {name}` does not exist yet")


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_a_missing_file(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    line = error_line(*run(command, str(tmp_path / "nope.db")))
    assert "does not exist" in line
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_with_several_studies_or_an_unknown_one(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "s.db")
    _study(db, "a")
    _study(db, "b")
    assert "choose one with --study-name: a, b" in error_line(*run(command, db))
    assert "it holds: a, b" in error_line(*run(command, db, "--study-name", "c"))


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_a_study_with_no_finished_trial(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "s.db")
    study = optuna.create_study(storage=open_storage(db, create=True), study_name="a")
    study.ask()
    assert "no" in error_line(*run(command, db)).lower()


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_files_that_are_not_studies(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n")
    assert "is not a SQLite database" in error_line(*run(command, str(notes)))
    assert "cannot" in error_line(*run(command, str(_corrupt(tmp_path))))
    url = "postgresql://bob:hunter2@127.0.0.1:9/hp"
    code, out = run(command, url)
    assert "bob:***@127.0.0.1:9/hp" in error_line(code, out) and "hunter2" not in out
    assert notes.read_text() == "my notes\n"


# ---------------------------------------------------------------- servers


def test_unreachable_postgres_is_one_masked_line():
    code, out = run("optimize", "--storage", "postgresql://bob:hunter2@127.0.0.1:9/hp",
                    "--trials", "1", *TINY)
    line = error_line(code, out)
    assert "cannot open storage postgresql://bob:***@127.0.0.1:9/hp" in line
    assert "hunter2" not in out


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


# ---------------------------------------------------------------- a storage is no output


def _checksums(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.mark.parametrize("name, out", [
    ("s.db", "{spec}"), ("s.log", "{spec}"), ("s.db", "{spec}-wal"),
    ("s.db", "{spec}.artifacts/r.html"), ("s.log", "{dir}/other.db"),
])
def test_report_refuses_to_overwrite_a_storage(tmp_path, monkeypatch, name, out):
    monkeypatch.chdir(tmp_path)
    spec = str(tmp_path / name)
    _study(spec, "a", n_trials=3)
    _study(str(tmp_path / "other.db"), "b")
    before = _checksums(tmp_path)
    target = out.format(spec=spec, dir=tmp_path)
    line = error_line(*run("report", spec, "--out", target))
    assert "write the output somewhere else" in line
    assert _checksums(tmp_path) == before
    assert len(load_study(spec).trials) == 3


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
    _study(db, "other")
    error_line(*run("optimize", "--storage", db, "--trials", "1", *flags, *fast))
    assert hpsearch.storage.open.study_names(open_storage(db)) == ["other"]
    code, out = run("optimize", "--storage", db, "--trials", "1", *TINY)
    assert code == 0, out


@pytest.mark.parametrize("cells", [[["x", None], [1]], [[1, 2], [3, "4"]], "not a list",
                                   [[True, 0], [0, 1]]])
def test_a_malformed_best_record_is_read_without_its_bad_parts(cells):
    from hpsearch.storage.records import best_record

    record = best_record({"confusion": cells, "classes": ["a", 2], "per_class": {"a": "q",
                          "b": 0.5}, "config": [], "test_acc": 0.9})
    assert record == {"per_class": {"b": 0.5}, "test_acc": 0.9}
    good = {"confusion": [[3, 1], [0, 4]], "classes": ["a", "b"],
            "per_class": {"a": 0.75, "b": None}, "config": {"lr": 0.1}}
    assert best_record(good) == good and best_record(None) is None


def test_report_of_a_study_with_a_malformed_best_record_is_not_a_traceback(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "s.db")
    _study(db, "a", n_trials=3)
    load_study(db).set_user_attr("best", {"classes": ["a", "b"],
                                          "confusion": [["x", None], [1]]})
    code, out = run("report", db, "--out", str(tmp_path / "r.html"))
    assert code == 0, out
