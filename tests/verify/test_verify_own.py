"""verify and best through a user's objective: twins of its params, re-run on the test split."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from hpsearch.best import best
from hpsearch.cli import main
from hpsearch.errors import HPSearchError, ObjectiveError
from hpsearch.optimize import optimize
from hpsearch.settings import Settings
from hpsearch.space import Preset
from hpsearch.verify import verify
from hpsearch.verify.store import stored_trainings

# kernel matters by a planted amount; the seed's noise is shared by twins on one seed; the
# test split is 0.01 above validation, so a test run is told apart from a search run.
OBJECTIVE = '''
import random


def objective(trial, seed=0, split="validation"):
    kernel = trial.suggest_categorical("kernel", ["linear", "rbf", "poly"])
    c = trial.suggest_float("C", 0.1, 10, log=True)
    degree = trial.suggest_int("degree", 2, 5) if kernel == "poly" else 0
    base = {"linear": 0.80, "rbf": 0.85, "poly": 0.70}[kernel] + 0.001 * degree
    value = base + random.Random(seed).gauss(0, 0.02) + 0.001 * c
    return value + (0.01 if split == "test" else 0.0)


def loss(trial, seed=0):
    return 1.0 - objective(trial, seed)
'''


def study_of(tmp_path: Path, name: str = "objective", trials: int = 12,
             **kw: object) -> tuple[str, Path]:
    path = tmp_path / "svm.py"
    if not path.exists():
        path.write_text(textwrap.dedent(OBJECTIVE))
    db = str(tmp_path / "s.db")
    settings = Settings(objective=f"{path}:{name}", storage=db, trials=trials, device="cpu",
                        pruner="none", sampler="random", **kw)  # type: ignore[arg-type]
    optimize(Preset(), settings, progress=False)
    return db, path


def test_verify_compares_every_choice_of_the_best_trial_on_the_test_split(
        tmp_path: Path) -> None:
    db, _ = study_of(tmp_path)
    result = verify(db, seeds=9)
    assert result.objective is not None and result.questions == ["kernel"]
    study = optuna.load_study(study_name="svm-objective", storage=f"sqlite:///{db}")
    top = max(study.get_trials(), key=lambda t: t.value or 0)
    rows = {r.alternative: r for r in result.rows}
    assert set(rows) == {"linear", "rbf", "poly"} - {top.params["kernel"]}
    planted = {"linear": 80, "rbf": 85, "poly": 70 + 0.1 * 3}
    for alt, row in rows.items():
        assert row.baseline == top.params["kernel"]
        assert row.settled == "difference"
        if alt == "poly":  # a conditional param the best trial lacks
            assert row.filled["degree"].startswith(("2", "3", "4", "5"))
            assert "the best that has it" in row.filled["degree"]
            continue
        assert row.stats.shift == pytest.approx(planted[alt] - planted[row.baseline], abs=1e-6)
    assert all(0.6 < a < 1.0 for r in result.rows for a in r.baseline_accs)
    text = "\n".join(result.lines())
    assert "objective" in text and "on its test split" in text and "needs degree" in text
    stored = study.user_attrs["verify:kernel"]
    assert stored["param"] == "kernel" and stored["objective"].endswith("svm.py:objective")
    again = verify(db, seeds=9)  # every training stored: nothing trained again
    assert again.trained_here == 0 and again.rows[0].stats.shift == result.rows[0].stats.shift


def test_verify_on_a_minimized_objective_says_the_lower_one_wins(tmp_path: Path) -> None:
    db, _ = study_of(tmp_path, "loss", direction="minimize")
    result = verify(db, question="kernel", seeds=9)
    for row in result.rows:
        assert row.baseline == "rbf"  # the lowest loss
        assert row.stats.shift > 0 and row.verdict().startswith("best trial #")
        assert "as found (kernel=rbf) beats" in row.verdict()


def test_best_runs_the_objective_on_the_test_split(tmp_path: Path) -> None:
    db, _ = study_of(tmp_path)
    study = optuna.load_study(study_name="svm-objective", storage=f"sqlite:///{db}")
    top = max(study.get_trials(), key=lambda t: t.value or 0)
    own = best(db)
    assert own.test_accs == [pytest.approx(top.value + 0.01)]  # its own seed: reproduced
    again = best(db, retrain=True, seeds=3)
    assert again.seeds == [0, 1, 2] and len(again.test_accs) == 3
    assert study.user_attrs["best"]["objective"].endswith("svm.py:objective")
    assert "test value" in "\n".join(again.lines())


def test_a_moved_or_changed_file_says_how_to_point_at_it(tmp_path: Path) -> None:
    db, path = study_of(tmp_path, trials=6)
    moved = tmp_path / "moved.py"
    shutil.move(path, moved)
    with pytest.raises(ObjectiveError, match="not there any more; point at it with `hpsearch "
                                             "verify STORAGE --objective FILE.py:NAME`"):
        verify(db, seeds=9)
    with pytest.raises(ObjectiveError, match="`hpsearch best STORAGE --objective"):
        best(db)
    assert best(db, objective=f"{moved}:objective").test_accs
    shutil.copy(moved, path)
    path.write_text(path.read_text() + "\n# changed\n")
    result = CliRunner().invoke(main, ["verify", db, "--seeds", "9", "-q"])
    assert result.exit_code == 1 and "has changed since" in result.output
    assert "Traceback" not in result.output


def test_a_foreign_study_is_asked_for_its_objective(tmp_path: Path) -> None:
    path = tmp_path / "svm.py"
    path.write_text(textwrap.dedent(OBJECTIVE))
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # the user's own script
    study = optuna.create_study(study_name="theirs", storage=f"sqlite:///{tmp_path / 'f.db'}",
                                direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(namespace["objective"], n_trials=10)  # type: ignore[arg-type]
    db = str(tmp_path / "f.db")
    for command in (["verify", db, "-q"], ["best", db]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert "records no objective" in result.output and "--objective FILE.py:NAME" \
            in result.output
        assert "preset" not in result.output
    result = verify(db, seeds=9, objective=f"{path}:objective")
    assert {r.question for r in result.rows} == {"kernel"}


def test_verify_refuses_a_param_that_is_not_categorical(tmp_path: Path) -> None:
    db, _ = study_of(tmp_path, trials=6)
    with pytest.raises(HPSearchError, match="--question C: .* is not categorical"):
        verify(db, question="C", seeds=9)
    with pytest.raises(HPSearchError, match="--question nope: .* is not a param"):
        verify(db, question="nope", seeds=9)


def test_an_objective_that_raises_in_verify_is_one_message(tmp_path: Path) -> None:
    db, path = study_of(tmp_path, trials=6)
    result = CliRunner().invoke(main, ["verify", db, "--seeds", "9", "-q", "--objective",
                                       f"{path}:nothing"])
    assert result.exit_code == 1 and "has no 'nothing'" in result.output
    broken = tmp_path / "broken.py"
    broken.write_text("def objective(trial, split='validation'):\n"
                      "    trial.suggest_categorical('kernel', ['linear', 'rbf', 'poly'])\n"
                      "    raise RuntimeError('no test data')\n")
    result = CliRunner().invoke(main, ["verify", db, "--seeds", "9", "-q", "--objective",
                                       f"{broken}:objective"])
    assert result.exit_code == 1
    assert "failed: RuntimeError: no test data (broken.py, line 3)" in result.output
    assert "Traceback" not in result.output


def test_verify_jobs_share_the_trainings(tmp_path: Path) -> None:
    db, _ = study_of(tmp_path, trials=6)
    result = verify(db, seeds=9, jobs=2)
    companion = optuna.load_study(study_name="svm-objective:verify", storage=f"sqlite:///{db}")
    assert len(stored_trainings(companion)) == result.trainings  # each trained once
    assert all(r.settled == "difference" for r in result.rows if "degree" not in r.filled)
