"""What verify prints and stores for an interaction row: effects, never called accuracies."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.analysis import paired_stats
from hpsearch.space import TrialConfig
from hpsearch.verify import VerifyResult, VerifyRow


def _interaction_result() -> VerifyResult:
    # A = dropout (0 -> 0.3), B = activation (relu -> sigmoid); per-seed accuracies.
    cells = {(0, 0): [0.97, 0.96, 0.97, 0.98], (1, 0): [0.95, 0.94, 0.95, 0.96],
             (0, 1): [0.90, 0.91, 0.90, 0.89], (1, 1): [0.91, 0.92, 0.92, 0.90]}
    effect = {j: list(np.subtract(cells[1, j], cells[0, j])) for j in (0, 1)}  # negative at B0
    cfg = {(i, j): TrialConfig(dropout=(0.0, 0.3)[i], activation=("relu", "sigmoid")[j])
           for i in (0, 1) for j in (0, 1)}
    stats = paired_stats(100 * np.asarray(effect[0]), 100 * np.asarray(effect[1]))
    row = VerifyRow("dropout_x_activation", 3, 0, "activation", "relu", "relu", "sigmoid",
                    effect[0], effect[1], cfg[0, 0], cfg[1, 1], stats, kind="interaction",
                    params=("dropout", "activation"), a_levels=(0.0, 0.3),
                    cells={k: (cfg[k], v) for k, v in cells.items()})
    return VerifyResult(questions=["dropout_x_activation"], study_name="s",
                        seeds=[0, 1, 2, 3], top_k=1, dataset="digits", epochs=1, n_test=450,
                        rows=[row], trainings=16, trainings_fixed=16)


def test_the_interaction_table_shows_effects_under_effect_headings():
    """Before: "acc base -0.0200" under an accuracy heading."""
    lines = _interaction_result().lines()
    header = next(line for line in lines if line.startswith("question"))
    assert "acc" not in header.split()
    row = next(line for line in lines if line.startswith("dropout_x_activation "))
    assert "-2.00 pts" in row and "+1.25 pts" in row and "-0.0200" not in row
    assert any("mean effect of its first param" in line for line in lines)


def test_the_stored_interaction_row_names_its_means_effects():
    [row] = _interaction_result().question_dict("dropout_x_activation")["rows"]
    assert "baseline_acc_mean" not in row and "alternative_acc_mean" not in row
    assert row["baseline_effect_mean"] == pytest.approx(-2.0)
    assert row["alternative_effect_mean"] == pytest.approx(1.25)
    assert [c["acc_mean"] for c in row["cells"]] == pytest.approx([0.97, 0.9, 0.95, 0.9125])
