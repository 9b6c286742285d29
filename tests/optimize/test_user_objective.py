"""``optimize --objective FILE.py:NAME``: a user's plain Optuna objective as the study's."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.cli import main
from hpsearch.errors import ObjectiveError, StudyError
from hpsearch.objectives import check_value, load_objective
from hpsearch.optimize import optimize
from hpsearch.optimize.objective import training_seed
from hpsearch.schema import ARMS, DESIGN
from hpsearch.settings import Settings
from hpsearch.space import Preset

# A plain objective: what it drew from every generator and what it was given is kept, so
# the tests can check the seeding; its value depends on kernel (the question) and the seed.
OBJECTIVE = '''
import random

import numpy as np
import optuna
import torch


def objective(trial, seed=None, split=None):
    kernel = trial.suggest_categorical("kernel", ["linear", "rbf", "poly"])
    c = trial.suggest_float("C", 1e-3, 1e3, log=True)
    if kernel == "poly":
        trial.suggest_int("degree", 2, 5)
    trial.set_user_attr("drawn", [random.random(), float(np.random.rand()),
                                  float(torch.rand(1))])
    trial.set_user_attr("given", [seed, split])
    base = {"linear": 0.80, "rbf": 0.85, "poly": 0.70}[kernel]
    noise = random.Random(seed).gauss(0, 0.01)
    for step in range(3):
        value = base - 0.1 / (step + 1) + noise + 0.001 * np.log10(c)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def plain(trial):
    return trial.suggest_float("x", -1, 1) ** 2
'''


def write(tmp_path: Path, text: str = OBJECTIVE, name: str = "svm.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(tmp_path: Path, spec: str, preset: Preset | None = None, **kw: object,
        ) -> optuna.Study:
    kw = {"trials": 6, **kw}
    settings = Settings(objective=spec, storage=str(tmp_path / "s.db"), device="cpu",
                        **kw)  # type: ignore[arg-type]
    summary = optimize(preset, settings, progress=False)
    return optuna.load_study(study_name=summary.study_name,
                             storage=f"sqlite:///{tmp_path / 's.db'}")


def test_a_plain_objective_runs_seeded_and_is_recorded(tmp_path: Path) -> None:
    path = write(tmp_path)
    study = run(tmp_path, f"{path}:objective", pruner="none", seed=7)
    assert study.study_name == "svm-objective"
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 6
    for t in trials:
        seed = training_seed(Settings(seed=7), t.number)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        assert t.user_attrs["drawn"] == [random.random(), float(np.random.rand()),
                                         float(torch.rand(1))]
        assert t.user_attrs["given"] == [seed, "validation"]
        assert t.user_attrs["train_seed"] == seed
    rec = study.user_attrs[schema.OBJECTIVE]
    assert rec["path"] == str(path) and rec["name"] == "objective" and len(rec["sha256"]) == 64
    assert study.user_attrs["provenance"]["objective"] == rec
    assert "dataset" not in study.user_attrs  # its data is its own: no chance level from it


def test_an_objective_without_seed_or_split_gets_neither(tmp_path: Path) -> None:
    path = write(tmp_path)
    study = run(tmp_path, f"{path}:plain", direction="minimize")
    assert study.direction.name == "MINIMIZE"
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6


def test_a_module_spec_and_the_budget_on_resume(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, name="user_objectives_mod.py")
    monkeypatch.chdir(tmp_path)  # a module is found in the current directory, as uvicorn's
    study = run(tmp_path, "user_objectives_mod:objective")
    assert study.user_attrs[schema.OBJECTIVE]["module"] == "user_objectives_mod"
    study = run(tmp_path, "user_objectives_mod:objective", trials=9)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 9  # the exact budget, resumed


def test_the_pruner_prunes_what_the_objective_reports(tmp_path: Path) -> None:
    path = write(tmp_path)
    study = run(tmp_path, f"{path}:objective", trials=20, sampler="random")
    assert study.get_trials(states=(TrialState.PRUNED,))


def test_a_changed_file_is_refused_once_trials_finished(tmp_path: Path) -> None:
    path = write(tmp_path)
    run(tmp_path, f"{path}:objective", trials=2)
    path.write_text(path.read_text() + "\n# changed\n")
    with pytest.raises(StudyError, match="changed since the study's 2 finished trial"):
        run(tmp_path, f"{path}:objective", trials=3)
    with pytest.raises(StudyError, match="runs the objective .*, not the objective"):
        run(tmp_path, f"{path}:plain", trials=3, study_name="svm-objective")
    with pytest.raises(StudyError, match="maximizes its value"):
        run(tmp_path, f"{path}:objective", trials=3, direction="minimize")


# ---------------------------------------------------------------------------- designs


def test_paired_calls_every_choice_on_one_seed(tmp_path: Path) -> None:
    path = write(tmp_path)
    study = run(tmp_path, f"{path}:objective", preset=Preset(question="kernel"),
                pruner="none", design="paired")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 6
    for t in trials:
        assert t.user_attrs[DESIGN] == {"design": "paired", "question": "kernel",
                                             "param": "kernel",
                                             "arms": ["linear", "rbf", "poly"]}
        arms = t.user_attrs[ARMS]
        final = {k: v["final"] for k, v in arms.items()}
        # one seed: the noise cancels, the differences are the planted ones
        assert final["rbf"] - final["linear"] == pytest.approx(0.05)
        assert final["linear"] - final["poly"] == pytest.approx(0.10)
        assert t.value == pytest.approx(np.mean(list(final.values())))
        assert len(arms["rbf"]["val_acc"]) == 3
        assert t.user_attrs["config"]["kernel"] == "rbf"  # the best arm, for verify/best
        assert "degree" not in t.user_attrs["config"]     # only what rbf suggested


def test_paired_arms_are_pruned_together(tmp_path: Path) -> None:
    path = write(tmp_path)
    study = run(tmp_path, f"{path}:objective", preset=Preset(question="kernel"),
                trials=14, sampler="random")
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned
    for t in pruned:
        steps = {len(a["val_acc"]) for a in t.user_attrs[ARMS].values()}
        assert len(steps) == 1 and all(a["stop_reason"] == "pruned"
                                       for a in t.user_attrs[ARMS].values())


def test_balanced_assigns_the_choices_in_blocks(tmp_path: Path) -> None:
    path = write(tmp_path)
    study = run(tmp_path, f"{path}:objective", preset=Preset(question="kernel"),
                design="balanced", trials=6, pruner="none")
    values = [t.params["kernel"] for t in study.get_trials()]
    assert sorted(values[:3]) == sorted(values[3:]) == ["linear", "poly", "rbf"]
    assert all(t.user_attrs[DESIGN]["value"] == t.params["kernel"]
               for t in study.get_trials())


def test_a_numeric_question_cannot_be_designed(tmp_path: Path) -> None:
    path = write(tmp_path)
    with pytest.raises(Exception, match="--question C: --design paired assigns a categorical"):
        run(tmp_path, f"{path}:objective", preset=Preset(question="C"))


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("text", "spec", "message"), [
    ("x = 1\n", "nothere.py:objective", "there is no file"),
    ("import nonexistent_module_xyz\n", "{path}:objective",
     "importing .* failed: ModuleNotFoundError: No module named 'nonexistent_module_xyz' "
     r"\(bad.py, line 1\)"),
    ("def objective(trial:\n", "{path}:objective", r"SyntaxError: .*\(bad.py, line 1\)"),
    ("x = 1\n\n1 / 0\n", "{path}:objective", r"ZeroDivisionError: .*\(bad.py, line 3\)"),
    ("def other(trial):\n    return 1\n", "{path}:objective",
     "has no 'objective' \\(it defines other\\)"),
    ("objective = 3\n", "{path}:objective", "objective is a int, not a function"),
    ("def objective():\n    return 1\n", "{path}:objective", "it takes \\(\\), and an objective"),
    ("x = 1\n", "{path}", "give FILE.py:NAME"),
    ("x = 1\n", "no_such_module_abc:objective", "no module 'no_such_module_abc'"),
])
def test_an_objective_that_cannot_load_is_one_message(tmp_path: Path, text: str, spec: str,
                                                      message: str) -> None:
    path = write(tmp_path, text, "bad.py")
    with pytest.raises(ObjectiveError, match=message):
        load_objective(spec.format(path=path))
    result = CliRunner().invoke(main, ["optimize", "--objective", spec.format(path=path),
                                       "--storage", str(tmp_path / "s.db"), "-q"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "Error:" in result.output
    assert not (tmp_path / "s.db").exists()  # nothing written


def test_check_value() -> None:
    assert check_value(np.float32(0.5)) == 0.5
    assert check_value(torch.tensor(0.25)) == 0.25
    for bad in ("0.9", None, (0.1, 0.2), [0.5], True):
        with pytest.raises(ObjectiveError, match="not (a|one) number"):
            check_value(bad)
    with pytest.raises(ObjectiveError, match="returned nan"):
        check_value(float("nan"))


RAISES = '''
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    if trial.number >= 2:
        raise ValueError("no data for this one")
    return x
'''


def test_a_raising_objective_fails_trials_and_stops_after_three_alike(tmp_path: Path) -> None:
    path = write(tmp_path, RAISES, "raises.py")
    result = CliRunner().invoke(main, ["optimize", "--objective", f"{path}:objective",
                                       "--trials", "10", "--storage", str(tmp_path / "s.db"),
                                       "-q"])
    assert result.exit_code == 1, result.output
    assert "3 trials in a row failed with the same error" in result.output
    assert "ValueError: no data for this one (raises.py, line 5)" in result.output
    assert "warning: trial 2 failed: ValueError: no data for this one" in result.output
    assert "Traceback" not in result.output
    study = optuna.load_study(study_name="raises-objective",
                              storage=f"sqlite:///{tmp_path / 's.db'}")
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 3  # nothing lost
    assert study.get_trials()[2].user_attrs["failure_reason"].startswith("ValueError")


@pytest.mark.parametrize(("returns", "message", "n"), [
    ("'0.9'", "returned '0.9' \\(str\\), not a number", 1),
    ("float('nan')", "3 trials in a row failed with the same error.*returned nan", 3),
])
def test_an_objective_that_returns_no_number(tmp_path: Path, returns: str, message: str,
                                             n: int) -> None:
    path = write(tmp_path, f"def objective(trial):\n    trial.suggest_int('a', 0, 3)\n"
                           f"    return {returns}\n", "ret.py")
    result = CliRunner().invoke(main, ["optimize", "--objective", f"{path}:objective",
                                       "--trials", "10", "--storage", str(tmp_path / "s.db"),
                                       "-q"])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()[-1]) < 400
    import re
    assert re.search(message, result.output.replace("\n", " ")), result.output
    study = optuna.load_study(study_name="ret-objective",
                              storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL] * n


def test_the_cli_runs_it_and_names_what_comes_next(tmp_path: Path) -> None:
    path = write(tmp_path)
    result = CliRunner().invoke(main, ["optimize", "--objective", f"{path}:objective",
                                       "--trials", "4", "--storage", str(tmp_path / "s.db"),
                                       "-q", "--question", "kernel", "--pruner", "none"])
    assert result.exit_code == 0, result.output
    assert "best trial #" in result.output and ": value 0." in result.output
    assert "hpsearch verify" in result.output
    assert "objective " in result.output and "(maximize)" in result.output
    bad = CliRunner().invoke(main, ["optimize", "--direction", "minimize", "--storage",
                                    str(tmp_path / "t.db"), "-q"])
    assert bad.exit_code == 1 and "minimize is for a user's --objective" in bad.output


LOSS = '''
import random


def objective(trial, seed=0):
    kernel = trial.suggest_categorical("kernel", ["linear", "rbf"])
    c = trial.suggest_float("C", 0.1, 10, log=True)
    base = {"linear": 0.30, "rbf": 0.20}[kernel] + random.Random(seed).gauss(0, 0.02)
    for step in range(3):
        trial.report(base + 0.1 / (step + 1), step)  # a loss that falls
    return base + 0.001 * c
'''


def test_a_minimized_paired_study_is_answered_in_its_own_units(tmp_path: Path) -> None:
    path = write(tmp_path, LOSS, "loss.py")
    run(tmp_path, f"{path}:objective", preset=Preset(question="kernel"), trials=8,
        pruner="none", direction="minimize")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "s.db"), "--format", "md"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("| Which kernel?"))
    # the lowest loss so far per arm (0.1 below the first step's), in the loss's own units
    assert "rbf < linear by 0.1 units" in line, line


@pytest.mark.parametrize(("flags", "named"), [
    (["--dataset", "digits"], "--dataset"), (["--epochs", "3"], "--epochs"),
    (["--set", "batch_norm=before"], "--preset/--model/--set"),
    (["--model", "mlp"], "--preset/--model/--set"),
    (["--preset", "bn_placement"], "--preset/--model/--set"),
])
def test_flags_for_hpsearchs_own_models_are_refused(tmp_path: Path, flags: list[str],
                                                    named: str) -> None:
    path = write(tmp_path)
    result = CliRunner().invoke(main, ["optimize", "--objective", f"{path}:objective",
                                       "--storage", str(tmp_path / "s.db"), "-q", *flags])
    assert result.exit_code == 1, result.output
    assert f"Error: {named}" in result.output and "with --objective your objective" \
        in result.output
    assert not (tmp_path / "s.db").exists()
