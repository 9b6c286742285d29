"""report never overwrites a storage, and a malformed best record is read without its bad
parts instead of a traceback.

In-process (``CliRunner``) for the commands, and through the library (``load_study``) for
what the read-only commands are built on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import error_line, run
from support.studies import small_study

from hpsearch.storage.open import load_study


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() sets torch's threads from OMP_NUM_THREADS: one, on 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


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
    small_study(spec, "a", n_trials=3)
    small_study(str(tmp_path / "other.db"), "b")
    before = _checksums(tmp_path)
    target = out.format(spec=spec, dir=tmp_path)
    line = error_line(*run("report", spec, "--out", target))
    assert "write the output somewhere else" in line
    assert _checksums(tmp_path) == before
    assert len(load_study(spec).trials) == 3


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
    small_study(db, "a", n_trials=3)
    load_study(db).set_user_attr("best", {"classes": ["a", "b"],
                                          "confusion": [["x", None], [1]]})
    code, out = run("report", db, "--out", str(tmp_path / "r.html"))
    assert code == 0, out
