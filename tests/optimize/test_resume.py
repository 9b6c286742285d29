"""Resuming a study: what it was run for must not change between runs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hpsearch.cli import main
from hpsearch.storage import load_study


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _optimize(db: str, *args: str):
    return CliRunner().invoke(main, [
        "optimize", "--dataset", "synthetic", "--epochs", "1", "--train-size", "200",
        "--storage", db, "-q", "--set", "model=mlp", "--set", "hidden_units=64", *args])


@pytest.mark.parametrize("design", ["paired", "balanced", "none"])
def test_another_question_on_a_resumed_study_is_refused(tmp_path, design):
    db = str(tmp_path / "q.db")
    first = _optimize(db, "--trials", "1", "--question", "bn_placement", "--design", design)
    assert first.exit_code == 0, first.output
    again = _optimize(db, "--trials", "3", "--question", "activation", "--design", design)
    assert again.exit_code == 1
    lines = again.output.strip().splitlines()
    assert len(lines) == 1 and "question='bn_placement', not 'activation'" in lines[0], lines
    study = load_study(db)
    assert len(study.trials) == 1                      # nothing run under the other question
    assert study.user_attrs["provenance"]["question"] == "bn_placement"
    same = _optimize(db, "--trials", "2", "--question", "bn_placement", "--design", design)
    assert same.exit_code == 0, same.output            # the same question resumes


def test_a_question_added_to_a_study_run_without_one_is_refused(tmp_path):
    db = str(tmp_path / "n.db")
    assert _optimize(db, "--trials", "1").exit_code == 0
    again = _optimize(db, "--trials", "2", "--question", "activation", "--design", "none")
    assert again.exit_code == 1 and "question=None, not 'activation'" in again.output
