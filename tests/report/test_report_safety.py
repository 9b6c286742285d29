"""What report writes and renders never harms: --out never replaces a device, FIFO, link or
another study's files; malformed attrs, study text with Markdown, a refused note.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from support.cli import error_line, plain_study, run

from hpsearch.cli import main
from hpsearch.errors import StorageError
from hpsearch.report.markdown import md, notes_markdown
from hpsearch.storage import check_output
from hpsearch.storage.open import load_study


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------- 2, 3. --out never destroys


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
    plain_study(str(other), "b", 2)
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
        plain_study(str(journal), "j", 1)
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
    study = plain_study(spec, _LINK, 4)
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
