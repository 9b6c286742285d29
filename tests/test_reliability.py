"""Reliability, round three (issue 20): the kill window, outputs that would destroy files,
every SQLite URL spelling, passwords, Markdown and terminal injection, malformed attrs.

Each test plants the case the issue describes and checks the promise that broke: one
clear line and nothing written, or the study whole afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from hpsearch.cli import main
from hpsearch.errors import HPSearchError, StorageError
from hpsearch.report.markdown import md, notes_markdown
from hpsearch.storage import artifact_dir, check_output, mask, upload
from hpsearch.storage.open import load_study, open_storage
from hpsearch.storage.specs import error_reason

TINY = ["--dataset", "synthetic", "--epochs", "1", "--model", "mlp",
        "--set", "hidden_layers=1", "--set", "hidden_units=64", "--pruner", "none", "-q"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback for a real user
    return result.exit_code, result.output


def error_line(code: int, out: str) -> str:
    assert code != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out
    return errors[0]


def _plain_study(spec: str, name: str = "s", n: int = 3, *, direction: str = "maximize",
                 param: str = "dropout") -> optuna.Study:
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name=name,
                                direction=direction)
    study.optimize(lambda t: t.suggest_float(param, 0.0, 0.7), n_trials=n)
    return study


# ---------------------------------------------------------------- 1. the kill window

# A worker whose first heartbeat is late by a minute: the window between Optuna creating
# the trial and its first heartbeat, held open so that a test can aim a SIGKILL into it.
_SLOW_FIRST_BEAT = """
import sys, time
import hpsearch.storage.journal as journal
import hpsearch.storage.open as opened

def late(record):
    def beat(self, trial_id):
        time.sleep(60)
        return record(self, trial_id)
    return beat

opened._RDBStorage.record_heartbeat = late(opened._RDBStorage.record_heartbeat)
journal.HeartbeatJournalStorage.record_heartbeat = late(
    journal.HeartbeatJournalStorage.record_heartbeat)
from hpsearch.cli import main
main(sys.argv[1:], prog_name="hpsearch")
"""


def _running_without_heartbeat(spec: str) -> list[int]:
    """Trials that are RUNNING and never beat, read without writing to the storage."""
    if spec.endswith(".log"):
        if not Path(spec).exists():
            return []
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        try:
            storage = JournalStorage(JournalFileBackend(spec))
            studies = storage.get_all_studies()
        except Exception:  # a line being written
            return []
        return [t.number for s in studies for t in storage.get_all_trials(
                    s._study_id, states=(optuna.trial.TrialState.RUNNING,))
                if "hpsearch:heartbeat" not in t.system_attrs]
    try:
        con = sqlite3.connect(f"file:{spec}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute("select t.number from trials t left join trial_heartbeats h "
                               "on h.trial_id = t.trial_id where t.state = 'RUNNING' "
                               "and h.trial_id is null").fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or locked for a moment
        return []
    return [r[0] for r in rows]


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["kill.db", "kill.log"])
def test_a_kill_before_the_first_heartbeat_is_recovered_by_the_next_run(tmp_path, name):
    spec = str(tmp_path / name)
    env = {**os.environ, "HPSEARCH_HEARTBEAT_INTERVAL": "1", "HPSEARCH_HEARTBEAT_GRACE": "2",
           "OMP_NUM_THREADS": "1"}
    args = ["optimize", "--storage", spec, "--study-name", "k", "--trials", "3", *TINY]
    script = tmp_path / "slow_beat.py"
    script.write_text(_SLOW_FIRST_BEAT)
    worker = subprocess.Popen([sys.executable, str(script), *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _running_without_heartbeat(spec):  # aim: a trial in the window
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "no trial reached the window"
            time.sleep(0.05)
        worker.kill()
    finally:
        worker.kill()
        worker.wait()
    assert _running_without_heartbeat(spec)  # the trial the kill left behind

    started = time.monotonic()
    again = subprocess.run([sys.executable, "-m", "hpsearch", *args], env=env,
                           capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    study = load_study(spec, "k")
    states = [t.state for t in study.trials]
    finished = states.count(optuna.trial.TrialState.COMPLETE)
    assert finished == 3, states  # exactly --trials, nothing missing
    assert optuna.trial.TrialState.RUNNING not in states
    assert took < 60, took  # not the ~100 s wait for a trial that never beats


def test_a_trial_that_never_beat_is_stale_after_the_grace_period(tmp_path, monkeypatch):
    """The same rule in-process, for SQLite and journal files (fast, no subprocess)."""
    import hpsearch.storage.open as opened

    monkeypatch.setattr(opened, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(opened, "HEARTBEAT_GRACE", 1)
    for name in ("a.db", "a.log"):
        storage = open_storage(str(tmp_path / name), create=True, heartbeat=True)
        study = optuna.create_study(storage=storage, study_name="a", direction="maximize")
        with pytest.warns(UserWarning, match="Heartbeat"):
            trial = study.ask()  # created, never beat: what a kill right after ask leaves
        assert storage._get_stale_trial_ids(study._study_id) == []  # just started: alive
        time.sleep(1.3)
        assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id], name


# ---------------------------------------------------------------- 2, 3. --out never destroys


@pytest.fixture
def base_study(tmp_path) -> str:
    spec = str(tmp_path / "base.db")
    _plain_study(spec, "base", 4)
    return spec


def _special_outputs(tmp_path: Path) -> list[tuple[Path, str]]:
    out = []
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
        out.append((device, "a character device"))
    except (PermissionError, OSError):
        pass  # not root: the FIFO and the symlink below still make the case
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out.append((fifo, "a FIFO"))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.md"
    link.symlink_to(victim)
    out.append((link, "a symbolic link"))
    return out


def test_report_out_never_replaces_a_device_fifo_or_symlink(tmp_path, base_study):
    for path, what in _special_outputs(tmp_path):
        before = os.lstat(path)
        line = error_line(*run("report", base_study, "--format", "md", "--out", str(path)))
        assert what in line and "not a regular file" in line, line
        after = os.lstat(path)
        assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode), path
        assert after.st_ino == before.st_ino
    assert (tmp_path / "victim.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_out_refuses_another_studys_wal_shm_journal_and_lock(tmp_path, base_study):
    other = tmp_path / "b.db"
    _plain_study(str(other), "b", 2)
    con = sqlite3.connect(other)  # a writer that stopped before its checkpoint
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("create table extra (x int)")
    con.execute("insert into extra values (1)")
    con.commit()
    try:
        wal = Path(str(other) + "-wal")
        assert wal.stat().st_size > 0
        kept = wal.read_bytes()
        for out in (wal, Path(str(other) + "-shm")):
            line = error_line(*run("report", base_study, "--format", "md", "--out", str(out)))
            assert "b.db" in line
        assert wal.read_bytes() == kept
        journal = tmp_path / "j.log"
        _plain_study(str(journal), "j", 1)
        for out in (tmp_path / "b.db-journal", tmp_path / "j.log.lock"):
            with pytest.raises(StorageError, match="belongs to the study file"):
                check_output(out, base_study)
    finally:
        con.close()
    check_output(tmp_path / "notes.md-wal", base_study)  # no study beside it: a plain name
    assert len(load_study(str(other), "b").trials) == 2


def test_report_out_empty_is_one_line_before_the_analysis(base_study, monkeypatch):
    import hpsearch.analysis

    def boom(*args, **kwargs):
        raise AssertionError("the analysis ran before --out was checked")

    monkeypatch.setattr(hpsearch.analysis, "analyze", boom)
    line = error_line(*run("report", base_study, "--out", ""))
    assert "--out is empty" in line


# ---------------------------------------------------------------- 4. a foreign study


def _journal_mode(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("direction, param, expected", [
    ("minimize", "dropout", "minimizes"),
    ("maximize", "x", "not hpsearch's"),
])
def test_optimize_checks_a_foreign_study_before_writing(tmp_path, direction, param, expected):
    path = tmp_path / "foreign.db"
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name="f",
                                direction=direction)  # Optuna's own: rollback journal
    study.optimize(lambda t: t.suggest_float(param, 0.0, 0.7), n_trials=2)
    line = error_line(*run("optimize", "--storage", str(path), "--study-name", "f",
                           "--trials", "3", *TINY))
    assert expected in line
    again = optuna.load_study(study_name="f", storage=f"sqlite:///{path}")
    assert len(again.trials) == 2 and again.user_attrs == {}  # no trial, no provenance
    assert _journal_mode(path) == "delete"  # not switched to WAL either
    assert "study f in" not in run("optimize", "--storage", str(path), "--study-name", "f",
                                   "--trials", "3", *TINY)[1]  # no banner before the error


@pytest.mark.parametrize("attr", ["a string", ["a", "list"], {"settings": "not a dict"}])
def test_optimize_on_a_malformed_provenance_is_one_line(tmp_path, attr):
    spec = str(tmp_path / "p.db")
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name="p",
                                direction="maximize")
    study.set_user_attr("provenance", attr)
    line = error_line(*run("optimize", "--storage", spec, "--study-name", "p",
                           "--trials", "1", *TINY))
    assert "provenance" in line
    assert load_study(spec, "p").trials == []


def test_optimize_on_a_study_with_a_string_verify_attr(tmp_path):
    spec = str(tmp_path / "v.db")
    code, out = run("optimize", "--storage", spec, "--study-name", "v", "--trials", "1", *TINY)
    assert code == 0, out
    load_study(spec, "v").set_user_attr("verify:dropout", "a string")
    code, out = run("optimize", "--storage", spec, "--study-name", "v", "--trials", "2", *TINY)
    assert code == 0, out
    assert len(load_study(spec, "v").trials) == 2


def test_report_on_malformed_provenance_and_verify_attrs(base_study):
    study = load_study(base_study)
    study.set_user_attr("provenance", ["not", "a", "dict"])
    study.set_user_attr("verify:dropout", "a string")
    study.set_user_attr("verify:init", {"rows": "not a list", "seeds": 3})
    for fmt in ("md", "json"):
        code, out = run("report", base_study, "--format", fmt)
        assert code == 0, out
    study.set_user_attr("provenance", {"settings": "not a dict", "dataset": 3})
    code, out = run("report", base_study, "--format", "md")
    assert code == 0, out


# ---------------------------------------------------------------- 5. every SQLite URL


_SPELLINGS = ["sqlite:///{rel}", "sqlite+pysqlite:///{rel}", "sqlite:///{abs}",
              "sqlite:///{rel}?timeout=5", "sqlite+pysqlite:///{abs}?timeout=5"]


def _spell(template: str, path: Path) -> str:
    return template.format(rel=path.name, abs=path)  # {abs} makes sqlite:////tmp/...


@pytest.mark.parametrize("template", _SPELLINGS)
def test_every_sqlite_url_gets_the_checks_of_a_path(tmp_path, monkeypatch, template):
    from hpsearch.dashboard import app

    monkeypatch.chdir(tmp_path)
    missing = _spell(template, tmp_path / "missing.db")
    with pytest.raises(StorageError, match="does not exist"):
        load_study(missing)
    with pytest.raises(StorageError, match="does not exist"):
        app(missing)
    error_line(*run("report", missing, "--format", "md"))
    assert not (tmp_path / "missing.db").exists()

    shop = tmp_path / "shop.db"
    con = sqlite3.connect(shop)
    con.execute("create table customers (name text)")
    con.commit()
    con.close()
    before = shop.read_bytes()
    line = error_line(*run("optimize", "--storage", _spell(template, shop), "--trials", "1",
                           *TINY))
    assert "not an Optuna study file" in line
    assert shop.read_bytes() == before


# ---------------------------------------------------------------- 6. passwords


@pytest.mark.parametrize("text, parts", [
    ("postgresql://hp5:pa ss@127.0.0.1/db", ["pa ss", "ss@"]),
    ("postgresql://hp@127.0.0.1/db?password=S3c;R3t", ["S3c", "R3t"]),
    ("postgresql://hp@127.0.0.1/db?password=S3c'R3t&x=1", ["S3c", "R3t"]),
    ('postgresql://hp@127.0.0.1/db?password="S3c R3t"', ["S3c", "R3t"]),
    ("postgresql://hp@127.0.0.1/db?password=S3c R3t", ["S3c", "R3t"]),
    ("postgresql://hp@127.0.0.1/db?pass%77ord=S3cR3t", ["S3cR3t"]),
    ("postgresql://hp@127.0.0.1/db?PassWord=S3cR3t&sslmode=require", ["S3cR3t"]),
    ("postgresql://hp:S3c@R3t@127.0.0.1/db", ["S3c", "R3t"]),
    ("postgresql://hp:S3c%40R3t@127.0.0.1:5432/db", ["S3c", "R3t"]),
    ("host=h password='S3c R3t' dbname=x", ["S3c", "R3t"]),
    ("failed: postgresql://hp:S3c R3t@127.0.0.1/db", ["S3c", "R3t"]),
])
def test_mask_hides_every_spelling_of_a_password(text, parts):
    masked = mask(text)
    assert not any(part in masked for part in parts), masked
    assert "***" in masked and "127.0.0.1" in masked or "host=h" in masked
    assert mask(masked) == masked  # masking twice changes nothing


def test_no_file_name_comes_from_credentials():
    for url in ("postgresql://hp:S3cret@127.0.0.1", "postgresql://hp:S3cret@127.0.0.1:5433",
                "postgresql://hp:S3cret@127.0.0.1/", "postgresql://hp5:pa ss@db.example"):
        folder = str(artifact_dir(url))
        assert "S3cret" not in folder and "hp" not in folder.split("/", 1)[1], folder
        assert "pa ss" not in folder and "pa_ss" not in folder
    assert artifact_dir("postgresql://hp:S3cret@127.0.0.1/studies").name == "studies"
    assert artifact_dir("postgresql://hp:x@h/..").name not in ("..", ".", "")


# ---------------------------------------------------------------- 7. Markdown injection

_LINK = "[x](javascript:alert(1))"
_IMAGE = "![x](http://127.0.0.1:9/pixel.png)"


def _live_link(text: str) -> bool:
    """A link or image Markdown would render: an unescaped ``](``."""
    import re

    return re.search(r"(?<!\\)\]\s*\(", text) is not None


def test_md_makes_links_and_images_inert():
    for payload in (_LINK, _IMAGE, "\\" + _LINK, "[r]: javascript:x", "<javascript:x>"):
        out = md(payload)
        assert not _live_link(out) and "]:" not in out.replace("\\]:", ""), out
        assert "<j" not in out
    assert md("before > after by 0.4 pts [0.2, 0.6]") == "before > after by 0.4 pts [0.2, 0.6]"


def test_report_md_and_the_note_keep_study_text_inert(tmp_path):
    spec = str(tmp_path / "inj.db")
    study = _plain_study(spec, _LINK, 4)
    study.set_user_attr("dataset", _IMAGE)
    study.set_user_attr("question", _LINK)
    study.set_user_attr("provenance", {"preset": _IMAGE, "settings": {"device": _LINK}})
    result = CliRunner().invoke(main, ["report", spec, "--format", "md"])
    assert result.exit_code == 0, result.output
    out = result.stdout  # the document (the terminal summary goes to stderr)
    assert "javascript:" in out and "pixel.png" in out and not _live_link(out), out
    from hpsearch.report import report

    data = report(spec, fmt="json", publish=False).data
    assert not _live_link(notes_markdown(data))


# ---------------------------------------------------------------- 8. terminal escapes

_ESC = "\x1b]0;pwned\x07\x1b[31mred\x9b2J"


def test_nothing_printed_holds_escape_codes(tmp_path):
    spec = str(tmp_path / "esc.db")
    result = CliRunner().invoke(main, ["optimize", "--storage", spec, "--study-name", _ESC,
                                       "--trials", "1", *TINY])
    assert result.exit_code == 0, result.output
    printed = result.output + (result.stderr or "")
    assert "pwned" in printed and "hpsearch report" in printed
    assert not any(c in printed for c in "\x1b\x07\x9b"), repr(printed)
    for fmt in ("md", "json"):
        report = CliRunner().invoke(main, ["report", spec, "--format", fmt])
        assert report.exit_code == 0, report.output
        assert not any(c in report.output for c in "\x1b\x07\x9b"), repr(report.output)
    bad = CliRunner().invoke(main, ["report", spec, "--study-name", _ESC + "x"])
    assert bad.exit_code == 1 and "\x1b" not in bad.output


# ---------------------------------------------------------------- tracebacks -> one line


def test_device_mps_without_mps_is_one_line(tmp_path):
    import torch

    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    line = error_line(*run("optimize", "--storage", str(tmp_path / "m.db"), "--trials", "1",
                           "--device", "mps", *TINY))
    assert "MPS" in line
    assert list(tmp_path.iterdir()) == []


def test_preset_question_list_and_fifo_preset(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('question = ["dropout", "init"]\n')
    line = error_line(*run("optimize", "--preset", str(preset), "--storage",
                           str(tmp_path / "q.db"), "--trials", "1", *TINY))
    assert "question must be one question id" in line
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    line = error_line(*run("optimize", "--preset", str(fifo), "--storage",
                           str(tmp_path / "q.db"), "--trials", "1", *TINY))
    assert "not a regular file" in line and "not found" not in line
    assert not (tmp_path / "q.db").exists()


def test_best_on_a_multi_objective_study_is_one_line(tmp_path):
    spec = str(tmp_path / "multi.db")
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name="m",
                                directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("dropout", 0, 0.7), 1.0), n_trials=2)
    line = error_line(*run("best", spec))
    assert "multi-objective" in line


# ---------------------------------------------------------------- smaller


def test_dashboard_that_cannot_bind_creates_no_artifact_folder(tmp_path, base_study):
    from hpsearch.dashboard import make_server

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(HPSearchError, match="cannot serve"):
            make_server(base_study, "127.0.0.1", busy.getsockname()[1])
    assert not artifact_dir(base_study).exists()


def test_a_planted_artifact_id_does_not_block_later_uploads(tmp_path, base_study):
    study = load_study(base_study)
    planted = {"artifact_id": "../../escape", "filename": "report.html",
               "mimetype": "text/html", "encoding": None}
    study._storage.set_study_system_attr(study._study_id, "artifacts:../../escape",
                                         json.dumps(planted))
    page = tmp_path / "report.html"
    page.write_text("<p>one</p>")
    first = upload(study, base_study, page, mimetype="text/html")
    page.write_text("<p>two</p>")
    second = upload(study, base_study, page, mimetype="text/html")
    assert first == second and ".." not in first  # replaced in place, under a safe id
    assert (artifact_dir(base_study) / first).read_text() == "<p>two</p>"
    assert not (tmp_path.parent / "escape").exists()


def test_driver_hints_name_the_right_database():
    mysql = error_reason(ModuleNotFoundError("No module named 'MySQLdb'", name="MySQLdb"))
    assert "MySQL" in mysql and "postgres" not in mysql
    pg = error_reason(ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2"))
    assert "hpsearch[postgres]" in pg


def test_a_refused_note_is_told_by_its_cause_not_optunas_guess(base_study, tmp_path,
                                                              monkeypatch):
    """Read-only media: Optuna wraps the refusal in "invalid data ... max length"."""
    import optuna_dashboard

    from hpsearch.report.publish import publish_page

    def refused(*args, **kwargs):
        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.OperationalError as cause:
            raise optuna.exceptions.StorageInternalError(
                "An exception is raised during the commit. This typically happens due to "
                "invalid data in the commit, e.g. exceeding max length.") from cause

    monkeypatch.setattr(optuna_dashboard, "save_note", refused)
    page = tmp_path / "report.html"
    page.write_text("<p>page</p>")
    warnings: list[str] = []
    publish_page(load_study(base_study), base_study, page, "note", warnings)
    assert any("readonly" in w for w in warnings), warnings
    assert not any("max length" in w for w in warnings), warnings


def test_a_full_disk_is_called_full(tmp_path):
    from support.mounts import tiny_disk

    with tiny_disk(256) as disk:
        spec = str(disk / "s.db")
        Path(spec).write_bytes(b"")
        filler = disk / "filler"
        try:
            with filler.open("wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:
            pass
        text = error_reason(sqlite3.OperationalError("disk I/O error"), spec)
        assert text.startswith("the disk is full") and "disk I/O error" in text
    assert error_reason(sqlite3.OperationalError("disk I/O error"), str(tmp_path / "x.db")) \
        == "disk I/O error"  # a disk with room: the driver's words only


@pytest.mark.e2e
def test_a_trial_that_never_beat_is_stale_on_postgresql(postgres_url, monkeypatch):
    import uuid

    import hpsearch.storage.open as opened

    monkeypatch.setattr(opened, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(opened, "HEARTBEAT_GRACE", 1)
    storage = open_storage(postgres_url, create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, study_name=f"never-beat-{uuid.uuid4()}",
                                direction="maximize")
    with pytest.warns(UserWarning, match="Heartbeat"):
        trial = study.ask()
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(1.3)
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]
