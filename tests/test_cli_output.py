"""What the CLI prints: no escape codes from study text, and one line (never a traceback)
for a missing device, a bad preset, a multi-objective study; a dashboard that cannot bind
leaves nothing behind.
"""

from __future__ import annotations

import os
import socket

import optuna
import pytest
from click.testing import CliRunner
from support.cli import TINY, error_line, run

from hpsearch.cli import main
from hpsearch.errors import HPSearchError
from hpsearch.storage import artifact_dir
from hpsearch.storage.open import open_storage


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


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


def test_dashboard_that_cannot_bind_creates_no_artifact_folder(tmp_path, base_study):
    from hpsearch.dashboard import make_server

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(HPSearchError, match="cannot serve"):
            make_server(base_study, "127.0.0.1", busy.getsockname()[1])
    assert not artifact_dir(base_study).exists()
