"""The CLI in-process: it parses, calls one library function and prints; errors are one line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from hpsearch.cli import main
from hpsearch.storage.open import load_study

FAST = ["--dataset", "synthetic", "--epochs", "2", "--set", "hidden_layers=1",
        "--set", "hidden_units=64", "--model", "mlp", "-q"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_optimize_prints_best_and_stores_study(tmp_path):
    db = tmp_path / "s.db"
    code, out = run("optimize", "--trials", "3", "--storage", str(db), *FAST)
    assert code == 0, out
    assert "best trial #" in out and "validation accuracy" in out
    study = load_study(str(db))
    assert study.study_name == "full-synthetic"
    assert len(study.trials) == 3
    assert all(t.params.get("hidden_layers") is None for t in study.trials)  # fixed by --set


def test_preset_by_bare_name_and_cli_overrides_win(tmp_path):
    db = tmp_path / "s.db"
    code, out = run("optimize", "--trials", "1", "--storage", str(db), "--preset",
                    "bn_placement", "--dataset", "synthetic", "--epochs", "1",
                    "--set", "hidden_units=64", "--set", "batch_size=128", "-q")
    assert code == 0, out
    study = load_study(str(db))
    assert study.study_name == "bn_placement-synthetic"
    assert study.user_attrs["question"] == "bn_placement"
    prov = study.user_attrs["provenance"]
    assert prov["settings"]["epochs"] == 1 and prov["fixed"]["hidden_units"] == 64


def test_offline_mnist_error_names_dirs_and_alternatives(tmp_path, monkeypatch):
    import hpsearch.training.datasets as data

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_download", no_network, raising=False)
    code, out = run("optimize", "--storage", str(tmp_path / "s.db"), "--trials", "1",
                    "--data-dir", str(tmp_path / "empty"))
    assert code == 1 and "Traceback" not in out
    assert "mnist is not available offline" in out and "--dataset digits" in out


def test_datasets_lists_every_dataset(tmp_path):
    code, out = run("datasets", "--data-dir", str(tmp_path))
    assert code == 0
    for name in ("mnist", "fashion-mnist", "kmnist", "digits", "synthetic"):
        assert name in out


def test_python_dash_m_works_like_the_script():
    out = subprocess.run([sys.executable, "-m", "hpsearch", "--help"], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).parent.parent).stdout
    assert "optimize" in out and "datasets" in out


def test_every_option_of_every_command_has_help():
    import click

    missing = [f"{name} {opt.opts[0]}" for name, cmd in main.commands.items()
               for opt in cmd.params if isinstance(opt, click.Option) and not opt.help]
    assert missing == []


def test_optimize_prints_rounded_best_and_the_next_commands(tmp_path):
    db = tmp_path / "s.db"
    result = CliRunner().invoke(main, ["optimize", "--trials", "2", "--storage", str(db),
                                       *FAST])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"hpsearch report {db} --study-name full-synthetic" in out
    assert f"hpsearch verify {db} --study-name full-synthetic\n" in out  # every question
    assert not re.search(r"\d\.\d{7,}", out)  # lr 0.0322, not 0.03220077342760718


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    """A log file gets a line per finished trial: done/target, pruned, best, elapsed, ETA."""
    db = tmp_path / "s.db"
    result = CliRunner().invoke(main, ["optimize", "--trials", "3", "--storage", str(db),
                                       *[a for a in FAST if a != "-q"]])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("trials ")]
    assert lines and lines[-1].startswith("trials 3/3 finished (")
    assert re.search(r"; best 0\.\d{4} \(trial #\d\); elapsed \d+:\d\d, ETA 0:00$", lines[-1])
    # one line per trial, as promised: none skipped however fast the trials are
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "2 epochs each" in result.stderr


def test_next_commands_are_the_command_as_invoked(tmp_path, monkeypatch):
    """The README's `.venv/bin/hpsearch` before the venv is activated: the next commands
    must be pasteable, so they name the script as it was run."""
    import shutil

    from hpsearch.cli import invoked_as

    script = tmp_path / "venv" / "bin" / "hpsearch"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # not on PATH
    assert invoked_as(str(script)) == str(script)
    assert invoked_as(".venv/bin/hpsearch") == ".venv/bin/hpsearch"
    monkeypatch.setattr(shutil, "which", lambda name: str(script) if name == "hpsearch"
                        else None)
    assert invoked_as(str(script)) == "hpsearch"  # the one on PATH: its bare name
    assert invoked_as("/x/site-packages/hpsearch/__main__.py").endswith(" -m hpsearch")
    assert invoked_as("/tmp/my dir/bin/hpsearch") == "'/tmp/my dir/bin/hpsearch'"


def test_plural_words():
    from hpsearch.text import plural

    assert [plural(n, "epoch") for n in (0, 1, 4)] == ["0 epochs", "1 epoch", "4 epochs"]
    assert plural(1, "comparison") == "1 comparison" and plural(12000, "trial") == \
        "12,000 trials"


def test_progress_line_per_trial_and_eta():
    import io

    import optuna

    from hpsearch.progress import ProgressBar

    study = optuna.create_study(direction="maximize")
    stream = io.StringIO()  # not a terminal
    bar = ProgressBar(study, total=4, initial=0, stream=stream, every=0.0)
    for value in (0.5, 0.9):
        trial = study.ask()
        study.tell(trial, value)
        bar(study, study.trials[-1])
    trial = study.ask()
    trial.report(0.1, 1)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    bar(study, study.trials[-1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("trials 1/4 finished (0 pruned); best 0.5000 (trial #0)")
    assert lines[2].startswith("trials 3/4 finished (1 pruned); best 0.9000 (trial #1)")
    assert "ETA" in lines[2]


def test_a_question_named_on_the_command_line_is_designed(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    result = CliRunner().invoke(main, [
        "optimize", "--trials", "2", "--epochs", "1", "--storage", str(db), "--dataset",
        "synthetic", "--train-size", "200", "--question", "activation",
        "--set", "activation=relu,tanh", "--design", "balanced", "-q"])
    assert result.exit_code == 0, result.output
    study = load_study(str(db))
    assert study.user_attrs["provenance"]["design"] == "balanced"
    assert [t.user_attrs["design"]["value"] for t in study.trials] == [
        t.params["activation"] for t in study.trials]
    assert "--question activation" in result.output


def test_a_design_it_cannot_run_is_one_message_and_writes_nothing(tmp_path: Path) -> None:
    for extra in (["--question", "dropout"], ["--design", "paired"],
                  ["--question", "bn_placement", "--set", "batch_norm=before"]):
        db = tmp_path / "x.db"
        result = CliRunner().invoke(main, ["optimize", "--trials", "1", "--storage", str(db),
                                           "--dataset", "digits", *extra])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "design" in result.output or "fixed" in result.output
        assert not db.exists()
