"""docs/own-model.md runs as written: its objective file and its four commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from hpsearch.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "own-model.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [code] = blocks("python")
    first = code.splitlines()[0]
    assert first.startswith("# ") and first[2:].endswith(".py")
    (tmp_path / first[2:]).write_text(code)
    assert len(code.splitlines()) <= 40  # "a 30-line objective", give or take its imports
    monkeypatch.chdir(tmp_path)
    [commands] = blocks("bash")
    outputs = []
    for line in commands.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "hpsearch"
        result = CliRunner().invoke(main, [*argv[1:], *(["-q"] if argv[1] in
                                                        ("optimize", "verify") else [])])
        assert result.exit_code == 0, f"{line}\n{result.output}"
        outputs.append(result.output)
    optimize, report, verify, best = outputs
    assert "12 finished trials" in optimize
    page = (tmp_path / "report.html").read_text()
    assert "Which activation?" in page
    assert "ReLU + dropout beats sigmoid" not in page  # hpsearch's claims are not about it
    assert "activation" in verify and "on its test split" in verify
    assert re.search(r"activation: .*(beats|equivalent|open)", verify)
    assert re.search(r"test value 0\.\d+ ± 0\.\d+ \(mean ± std over seeds 0-4, n=5\)", best)
    study = optuna.load_study(study_name="own-objective", storage="sqlite:///own.db")
    paired = [t for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
              if t.user_attrs.get("design", {}).get("design") == "paired"]
    assert len(paired) == 12
    assert {"verify:activation", "best", "objective"} <= set(study.user_attrs)
