"""hpsearch.bias: the best config trained with and without a bias before each BN."""

from __future__ import annotations

import optuna
import pytest
import torch
from support.studies import trained_study
from torch import nn

import hpsearch.bias as bias_mod
from hpsearch import schema
from hpsearch.bias import bias_twins
from hpsearch.errors import ConfigError, StudyError
from hpsearch.storage.open import load_study
from hpsearch.training.models import add_bias_before_bn


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return trained_study(f"sqlite:///{tmp_path_factory.mktemp('bias') / 's.db'}",
                         epochs=3, trials=2)


@pytest.fixture(scope="module")
def result(study_db: str) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        return bias_twins(study_db, seeds=6)


def test_the_twins_differ_by_rounding_only(result: dict) -> None:
    assert result["config"]["batch_norm"] == "before"
    assert result["n"] == 6 == len(result["with_bias"]) == len(result["without_bias"])
    # The bias gets no gradient through BN's mean: rounding-sized next to its layer's weight.
    assert result["grad_ratio"] < 1e-4
    assert min(result["agreement"]) > 0.98
    # closer than two seeds' models are: the twins differ by far less than a change of seed
    assert len(result["seed_agreement"]) == 5
    assert min(result["agreement"]) > max(result["seed_agreement"])
    assert -0.5 < result["ci_low"] <= result["shift"] <= result["ci_high"] < 0.5


def test_the_result_is_stored_in_the_study(study_db: str, result: dict) -> None:
    stored = load_study(study_db).user_attrs[schema.BIAS_TWINS]
    assert stored["shift"] == result["shift"] and stored["seeds"] == list(range(6))


def test_a_bias_that_is_not_cancelled_is_seen(study_db: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The measurement can fail: with the BN layers taken out the bias is a real parameter,
    and its gradient is the size of its layer's weight's."""
    def without_bn(model: nn.Module, generator: torch.Generator) -> list[nn.Module]:
        added = add_bias_before_bn(model, generator)
        for i, m in enumerate(model):
            if isinstance(m, nn.BatchNorm1d):
                model[i] = nn.Identity()
        return added

    monkeypatch.setattr(bias_mod, "add_bias_before_bn", without_bn)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = bias_twins(study_db, seeds=6)
    assert out["grad_ratio"] > 1e-2
    assert min(out["agreement"]) < 0.99


def test_too_few_seeds_and_foreign_studies_are_refused(study_db: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match="seeds must be an integer >= 6"):
        bias_twins(study_db, seeds=5)
    foreign = f"sqlite:///{tmp_path / 'f.db'}"
    study = optuna.create_study(storage=foreign, study_name="theirs", direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(StudyError):
        bias_twins(foreign, seeds=6)
