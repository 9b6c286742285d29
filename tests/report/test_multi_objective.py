"""A multi-objective study: report asks which objective, verify and best say they cannot."""

from __future__ import annotations

import json
import random

import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import CategoricalDistribution

from hpsearch.cli import main
from hpsearch.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture
def two_objectives(tmp_path) -> str:
    """accuracy (maximized) depends on batch_norm, seconds (minimized) on activation."""
    spec = str(tmp_path / "m.db")
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name="m",
                                directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "seconds"])
    rng = random.Random(0)
    dists = {"batch_norm": CategoricalDistribution(["none", "before", "after"]),
             "activation": CategoricalDistribution(["relu", "sigmoid"])}
    for _ in range(48):
        params = {k: rng.choice(d.choices) for k, d in dists.items()}
        acc = 0.9 + (0.05 if params["batch_norm"] == "before" else 0) + rng.gauss(0, 0.005)
        secs = 10 + (8 if params["activation"] == "sigmoid" else 0) + rng.gauss(0, 0.5)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  values=[acc, secs]))
    return spec


def _report(spec: str, *args: str):
    return CliRunner().invoke(main, ["report", spec, "--format", "json", *args])


def test_report_asks_which_objective(two_objectives):
    out = _report(two_objectives)
    lines = out.output.strip().splitlines()
    assert out.exit_code == 1 and len(lines) == 1, out.output
    assert "2 objectives (0 (accuracy, maximize), 1 (seconds, minimize))" in lines[0]
    assert "--metric" in lines[0]


@pytest.mark.parametrize("metric, direction, best, param", [
    ("accuracy", "maximize", max, "batch_norm"), ("0", "maximize", max, "batch_norm"),
    ("seconds", "minimize", min, "activation"), ("1", "minimize", min, "activation")])
def test_report_analyses_the_objective_named(two_objectives, metric, direction, best, param,
                                             tmp_path):
    page = CliRunner().invoke(main, ["report", two_objectives, "--metric", metric,
                                     "--out", str(tmp_path / "r.html")])
    assert page.exit_code == 0 and (tmp_path / "r.html").stat().st_size > 0, page.output
    out = _report(two_objectives, "--metric", metric)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    values = [t.values[int(direction == "minimize")] for t in
              optuna.load_study(study_name="m", storage=open_storage(two_objectives)).trials]
    assert doc["header"]["direction"] == direction
    assert doc["header"]["best_value"] == pytest.approx(best(values))
    assert "this report is about objective" in doc["analysis"]["notes"][0]
    mattered = {a["param"] for a in doc["analysis"]["answers"] if a.get("state") == "difference"
                or a.get("settled") == "difference" or a.get("significant")}
    assert param in mattered, doc["analysis"]["answers"]


@pytest.mark.parametrize("metric", ["2", "latency", "-1"])
def test_an_objective_the_study_lacks_is_one_line(two_objectives, metric):
    out = _report(two_objectives, "--metric", metric)
    lines = out.output.strip().splitlines()
    assert out.exit_code == 1 and len(lines) == 1 and "--metric" in lines[0], out.output


@pytest.mark.parametrize("command", ["verify", "best"])
def test_verify_and_best_on_it_are_one_line(two_objectives, command):
    """verify raised RuntimeError in replay.complete_trials."""
    out = CliRunner().invoke(main, [command, two_objectives])
    lines = out.output.strip().splitlines()
    assert out.exit_code == 1 and len(lines) == 1, (out.output, out.exception)
    assert "multi-objective (2 objectives)" in lines[0]
