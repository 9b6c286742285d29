"""Results and artifacts are written whole or kept beside a study that refuses them."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.artifacts import get_all_artifact_meta
from support.mounts import readonly_view

from hpsearch.cli import main
from hpsearch.errors import StorageError
from hpsearch.storage.artifacts import artifact_store, upload
from hpsearch.storage.files import clean_stale_temps
from hpsearch.storage.open import load_study, open_storage
from hpsearch.storage.records import save_result
from hpsearch.storage.specs import artifact_dir

ROOT = Path(__file__).resolve().parents[2]


def _study(spec: str) -> optuna.Study:
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name="a",
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return study


def test_a_result_is_stored_on_the_study(tmp_path):
    spec = str(tmp_path / "s.db")
    saved = save_result(_study(spec), "verify:dropout", {"p": 0.01}, spec)
    assert saved.stored and saved.side_file is None
    assert saved.message() == "stored as study user attr 'verify:dropout'"
    assert load_study(spec).user_attrs["verify:dropout"] == {"p": 0.01}


def test_a_study_on_read_only_media_keeps_the_result_in_a_side_file(tmp_path, monkeypatch):
    media = tmp_path / "media"
    media.mkdir()
    _study(str(media / "s.db"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with readonly_view(media) as view:
        spec = str(view / "s.db")
        saved = save_result(load_study(spec), "best", {"test_acc": 0.97}, spec)
        assert not saved.stored and "readonly" in str(saved.error)
        # beside the study is read-only too: the working directory is next
        assert saved.side_file is not None and saved.side_file.parent == work
        assert str(saved.side_file) in saved.message()
        kept = json.loads(saved.side_file.read_text())
        assert kept["value"] == {"test_acc": 0.97} and kept["key"] == "best"
        assert kept["study_name"] == "a" and kept["storage"] == spec
    assert "best" not in load_study(str(media / "s.db")).user_attrs


def test_when_no_side_file_can_be_written_the_message_says_so(tmp_path, monkeypatch):
    import hpsearch.storage.records

    spec = str(tmp_path / "s.db")
    study = _study(spec)
    monkeypatch.setattr(study, "set_user_attr", _refuse)
    monkeypatch.setattr(hpsearch.storage.records, "_side_dirs",
                        lambda storage: [tmp_path / "nope"])
    saved = save_result(study, "best", {"a": 1}, spec)
    assert not saved.stored and saved.side_file is None
    assert "no side file could be written either" in saved.message()


def _refuse(*args: object, **kwargs: object) -> None:
    raise OSError(28, "No space left on device")


# ---------------------------------------------------------------- artifacts


def test_an_empty_file_is_not_uploaded(tmp_path):
    spec = str(tmp_path / "s.db")
    study = _study(spec)
    empty = tmp_path / "weights.pt"
    empty.write_bytes(b"")
    with pytest.raises(StorageError, match="is empty"):
        upload(study, spec, empty, mimetype="application/octet-stream")
    assert get_all_artifact_meta(study) == []


def test_an_artifact_the_study_does_not_record_is_removed_again(tmp_path, monkeypatch):
    spec = str(tmp_path / "s.db")
    study = _study(spec)
    monkeypatch.setattr(study._storage, "set_study_system_attr", _refuse)
    page = tmp_path / "page.html"
    page.write_text("<p>hi</p>")
    with pytest.raises(OSError):
        upload(study, spec, page, mimetype="text/html")
    assert list(artifact_dir(spec).iterdir()) == []


UPLOADER = textwrap.dedent("""
    # Upload a file slowly (a big checkpoint on a slow disk) so the test can kill it mid-way.
    import sys, time
    import optuna
    from hpsearch.storage import artifacts as results
    from hpsearch.storage import load_study

    class Slow:
        def __init__(self, f):
            self.f = f
        def read(self, n=-1):
            time.sleep(0.05)
            return self.f.read(4096)

    write = results.AtomicArtifactStore.write
    results.AtomicArtifactStore.write = lambda self, i, body: write(self, i, Slow(body))
    spec, path = sys.argv[1], sys.argv[2]
    results.upload(load_study(spec), spec, __import__("pathlib").Path(path),
                   mimetype="application/octet-stream")
""")


def test_a_kill_mid_upload_leaves_no_artifact_and_its_temp_file_is_cleaned(tmp_path):
    spec = str(tmp_path / "s.db")
    _study(spec)
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(4096 * 400))
    script = tmp_path / "upload.py"
    script.write_text(UPLOADER)
    proc = subprocess.Popen([sys.executable, str(script), spec, str(weights)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    store = artifact_dir(spec)
    deadline = time.monotonic() + 60
    while not [p for p in (store.iterdir() if store.exists() else []) if p.stat().st_size]:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(store.iterdir())
    assert len(left) == 1 and left[0].name.endswith(f".{proc.pid}@{platform.node()}.tmp")
    assert get_all_artifact_meta(load_study(spec)) == []
    artifact_store(spec)  # the next store opened there cleans up after the dead process
    assert list(store.iterdir()) == []


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = platform.node()
    stale = [tmp_path / f".report.html.{dead.pid}@{host}.tmp",
             tmp_path / f".report.html.{dead.pid}.tmp"]  # hpsearch 0.1's name
    alive = [tmp_path / f".report.html.{os.getpid()}@{host}.tmp",
             tmp_path / f".report.html.{dead.pid}@another-host.tmp",
             tmp_path / f".notes.txt.{dead.pid}@{host}.tmp", tmp_path / "report.html"]
    for p in stale + alive:
        p.write_text("x")
    assert sorted(clean_stale_temps(tmp_path, "report.html")) == sorted(stale)
    assert all(p.exists() for p in alive)


def test_report_removes_the_temp_file_a_killed_report_left(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(tmp_path / "s.db")
    _study(spec)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".report.html.{dead.pid}.tmp"  # killed at its rename
    stale.write_text("<html>half a report")
    result = CliRunner().invoke(main, ["report", spec])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and (tmp_path / "report.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
