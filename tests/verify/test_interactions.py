"""Interaction questions in verify: the factorial twins, the contrast's decisions on planted
per-seed accuracies, and one end-to-end run on a tiny digits study."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.analysis.seeds.sequential import plan_looks, run_looks
from hpsearch.space import TrialConfig
from hpsearch.verify.run import contrast
from hpsearch.verify.twins import factorial_cells

ALPHA, MARGIN = 0.05, 0.5


def test_dropout_x_activation_cells():
    best = TrialConfig(dropout=0.3, activation="relu")
    prov = {"narrowed": {"activation": ["relu", "sigmoid"]}}
    [(a, b, cells)] = factorial_cells(("dropout", "activation"), best, prov)
    assert a == (0.0, 0.3) and b == ("relu", "sigmoid")
    for (i, j), cfg in cells.items():
        assert (cfg.dropout, cfg.activation) == (a[i], b[j])
        assert cfg.replace(dropout=best.dropout, activation=best.activation) == best
    assert cells[1, 0] == best


def test_dropout_x_activation_cells_without_dropout_and_2xk():
    best = TrialConfig(dropout=0.0, activation="sigmoid")
    contrasts = factorial_cells(("dropout", "activation"), best, {})
    assert [b for _, b, _ in contrasts] == [("sigmoid", v) for v in
                                           ("relu", "tanh", "leaky_relu", "gelu")]
    a, _, cells = contrasts[0]
    assert a[0] == 0.0 and 0 < a[1] <= 0.7   # the middle of dropout's range
    assert cells[0, 0] == best and cells[1, 1].dropout == a[1]


def test_batch_norm_x_lr_cells():
    best = TrialConfig(batch_norm="after", lr=0.003)
    [(a, b, cells)] = factorial_cells(("batch_norm", "lr"), best, {})
    assert a == ("none", "after")
    assert b[0] == 0.003 and b[1] == pytest.approx(0.03)
    for (i, j), cfg in cells.items():
        assert (cfg.batch_norm, cfg.lr) == (a[i], b[j])
    assert len(set(cells.values())) == 4
    # one decade down when up leaves the range
    [(_, b, _)] = factorial_cells(("batch_norm", "lr"), TrialConfig(lr=0.05), {})
    assert b[0] == 0.05 and b[1] == pytest.approx(0.005)


def _replicates(interaction: float, reps: int, seed: int, n_max: int = 16):
    """Planted per-seed cell accuracies: a seed effect, main effects of A and B, noise."""
    rng = np.random.default_rng(seed)
    plan = plan_looks(n_max, ALPHA)
    out = []
    for _ in range(reps):
        s = rng.normal(0.95, 0.01, n_max)            # shared by the paired cells of a seed
        cells = {(i, j): s + 0.01 * i - 0.02 * j + interaction / 100 * i * j
                 + rng.normal(0, 0.004, n_max) for i in (0, 1) for j in (0, 1)}
        c = contrast(cells)
        out += run_looks(1, plan, lambda rows, n, c=c: [c[:n] for _ in rows],
                         alpha=ALPHA, margin=MARGIN)
    return out


def test_contrast_is_the_difference_of_differences():
    cells = {(0, 0): [0.90], (1, 0): [0.92], (0, 1): [0.80], (1, 1): [0.85]}
    assert contrast(cells)[0] == pytest.approx(3.0)   # (85 - 80) - (92 - 90)


def test_planted_interaction_is_found():
    out = _replicates(3.0, reps=50, seed=1)
    assert sum(d.settled == "difference" and d.shift > 0 for d in out) / len(out) >= 0.9


def test_additive_pattern_is_no_interaction():
    out = _replicates(0.0, reps=400, seed=2)
    assert sum(d.settled == "difference" for d in out) / len(out) <= ALPHA


@pytest.mark.e2e
def test_verify_dropout_x_activation_end_to_end(tmp_path, monkeypatch):
    from hpsearch.optimize import optimize
    from hpsearch.settings import Settings
    from hpsearch.space.presets import Preset
    from hpsearch.storage.open import load_study
    from hpsearch.verify import planned_trainings, verify
    from hpsearch.verify.run import default_seeds

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    db = str(tmp_path / "s.db")
    optimize(Preset().with_overrides(
        ["activation=relu,sigmoid", "model=mlp", "hidden_layers=1", "hidden_units=64",
         "batch_norm=none", "optimizer=adam", "lr=0.003..0.03", "augmentation=none",
         "weight_penalty=none", "scheduler=none", "batch_size=128"]),
        Settings(dataset="digits", trials=6, epochs=1, storage=db, val_size=300),
        progress=False)
    result = verify(db, question="dropout_x_activation", seeds=8, epochs=1)
    [row] = result.rows
    assert row.kind == "interaction" and row.params == ("dropout", "activation")
    assert row.settled in ("difference", "equivalent", "open")
    assert len(row.cells) == 4 and 0 < result.trainings <= result.trainings_fixed == 32
    twins, first, most = planned_trainings(load_study(db), "dropout_x_activation")
    assert twins == 4 and most == default_seeds(1) and 1 < first < most  # known beforehand
    d = result.question_dict("dropout_x_activation")
    assert d["kind"] == "interaction" and d["rows"][0]["kind"] == "interaction"
    assert d["rows"][0]["label"].startswith("effect of dropout (")
    assert d["rows"][0]["params"] == ["dropout", "activation"]
    accs = {k: np.asarray(a) for k, (_, a) in row.cells.items()}
    want = 100 * ((accs[1, 1] - accs[0, 1]) - (accs[1, 0] - accs[0, 0]))
    got = 100 * (np.asarray(row.alternative_accs) - np.asarray(row.baseline_accs))
    assert got == pytest.approx(want)
    assert all(s.stored for s in result.saved)
    assert any("dropout_x_activation" in line for line in result.lines())
