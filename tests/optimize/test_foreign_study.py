"""optimize on a study it did not make (another direction or params, malformed attrs):
checked before anything is written, refused in one line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
from support.cli import TINY, error_line, run

from hpsearch.storage.open import load_study, open_storage


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


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
