"""Running the CLI in-process as a person would, and reading its one-line errors."""

from __future__ import annotations

import optuna
from click.testing import CliRunner

from hpsearch.cli import main
from hpsearch.storage import open_storage

# The smallest real optimize run: one epoch of a one-layer MLP on synthetic data.
TINY = ["--dataset", "synthetic", "--epochs", "1", "--model", "mlp",
        "--set", "hidden_layers=1", "--set", "hidden_units=64", "--pruner", "none", "-q"]


def run(*args: str) -> tuple[int, str]:
    """``hpsearch ARGS`` in-process: (exit code, output); an exception that is not a clean
    exit is raised (it would be a traceback for a real user)."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback for a real user
    return result.exit_code, result.output


def error_line(code: int, out: str) -> str:
    """The one ``Error: ...`` line of a failed command (no traceback, exactly one)."""
    assert code != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out
    return errors[0]


def plain_study(spec: str, name: str = "s", n: int = 3, *, direction: str = "maximize",
                param: str = "dropout") -> optuna.Study:
    """A study another program made: ``n`` trials of one float param, no hpsearch attrs."""
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name=name,
                                direction=direction)
    study.optimize(lambda t: t.suggest_float(param, 0.0, 0.7), n_trials=n)
    return study
