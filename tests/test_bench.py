"""scripts/bench.py at tiny sizes: every row runs, and the JSON has the documented schema.

The figures themselves are not checked (1 repetition of tiny work on a shared machine says
nothing); the full run is `python scripts/bench.py` (README "Performance").
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import sys
from pathlib import Path

import optuna
import pytest

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
ROW_KEYS = {
    "epoch": {"seed_s", "hpsearch_b32_s", "hpsearch_b256_s", "ratio_b32", "ratio_b256",
              "dropout_gain"},
    "efficiency": {"trainer_gflops", "matmul_gflops", "efficiency", "formula"},
    "accuracy": {"target_acc", "seed_s", "hpsearch_s", "ratio"},
    "study": {"trials_per_min_jobs1", "trials_per_min_jobs2", "optuna_share",
              "seconds_per_trial", "optuna_seconds_per_trial"},
    "threads": {"seconds", "slowdown"},
    "fused_digits": {"ks", "trainings_per_min", "ratio_vs_k1", "other_widths"},
    "fused_seed000": {"ks", "trainings_per_min", "ratio_vs_k1", "dataset"},
    "fused_optimize": {"default_speedup", "fixed_architecture_speedup", "default_groups",
                       "fixed_architecture_groups"},
    "verify_seeds": {"seeds", "ratio"},
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench", None)


def test_quick_run_writes_every_row_with_the_schema(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--dataset", "digits", "--reps", "1", "--out", str(out),
                "--skip", "memory", "compile", "bf16"])
    doc = json.loads(out.read_text())
    assert doc["schema"] == bench.SCHEMA
    assert (doc["dataset"], doc["device"], doc["reps"], doc["quick"]) == ("digits", "cpu", 1, True)
    assert {"cpu", "cores", "torch_threads", "torch", "device"} <= set(doc["machine"])
    assert set(doc["rows"]) == set(ROW_KEYS)  # the skipped rows have tests of their own
    for name, keys in ROW_KEYS.items():
        row = doc["rows"][name]
        assert "error" not in row, row.get("error")
        assert keys <= set(row), name
        assert row["target"] == bench.TARGETS[name]
        assert row["pass"] in (True, False, None)
        assert isinstance(row["measured"], str) and isinstance(row["raw"], dict)
    assert doc["rows"]["epoch"]["ratio_b32"] > 0
    assert 0 < doc["rows"]["study"]["optuna_share"]
    for name in ("fused_digits", "fused_seed000"):  # every K ran, K = 1 is the baseline
        row = doc["rows"][name]
        assert row["ks"] == list(bench.QUICK.fuse_ks) and row["ratio_vs_k1"]["1"] == 1.0
        assert all(v > 0 for v in row["trainings_per_min"].values())
    # the fixed-architecture trials share one fused model; the default space's may not
    assert doc["rows"]["fused_optimize"]["fixed_architecture_groups"] == [[2]]
    assert len(doc["rows"]["fused_optimize"]["fixed_architectures"]) == 1
    table = capsys.readouterr().out
    assert "digits on cpu" in table and "epoch ratio" in table and "study throughput" in table
    assert "fused, digits MLP" in table and "fused trials" in table
    assert doc["rows"]["verify_seeds"]["seeds"] == [6, 12] and "verify 8 vs 32" in table


def test_only_runs_the_named_rows(bench, tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--dataset", "digits", "--reps", "1", "--out", str(out),
                "--only", "fused_digits"])
    assert set(json.loads(out.read_text())["rows"]) == {"fused_digits"}
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "epoch", "--skip", "study"])


def test_memory_child_records_rss_after_every_trial(bench, tmp_path):
    child = bench.memory_child({"trials": 3, "device": "cpu", "threads": 1,
                                "storage": str(tmp_path / "mem.db")})
    assert len(child["rss_mb"]) == 3 and min(child["rss_mb"]) > 0
    assert child["peak_mb"] >= max(child["rss_mb"])


def test_flop_formula_leaves_out_the_first_layers_input_gradient(bench):
    shapes = [(784, 512), (512, 256), (256, 10)]
    params = 784 * 512 + 512 * 256 + 256 * 10
    assert bench.train_flops_per_sample(shapes) == 6 * params - 2 * 784 * 512


def test_skip_rejects_unknown_rows(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--skip", "nonsense"])


def test_steady_state_starts_when_every_worker_has_finished_a_trial(bench):
    """Worker b starts late (process start-up): its first trial at t=10 opens the window,
    and the 4 trials finished after it took 2 s: 0.5 s per trial, not (14 - 1) / 7."""
    t0 = datetime.datetime(2026, 1, 1)
    finished = [("a", 1), ("a", 4), ("a", 7), ("b", 10), ("a", 10.5), ("b", 11), ("a", 11.5),
                ("b", 12)]
    study = optuna.create_study()
    for worker, second in finished:
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, trial_id=0, state=optuna.trial.TrialState.COMPLETE, value=1.0,
            values=None, datetime_start=t0, datetime_complete=t0 + datetime.timedelta(
                seconds=second), params={}, distributions={}, intermediate_values={},
            system_attrs={}, user_attrs={"run": {"worker": worker},
                                         "learning_curve": {"seconds": [0.1, 0.2]}}))
    seconds, training = bench._per_trial(study)
    assert seconds == pytest.approx(0.5) and training == pytest.approx(0.3)


@pytest.mark.slow
def test_compile_row_times_both_ways_and_says_whether_it_pays_back(bench, tmp_path):
    """Its own test: inductor's first compile takes about 30 s on 2 CPU cores."""
    args = bench.parse_args(["--quick", "--dataset", "digits", "--reps", "2"])
    data = bench.subset(bench.DeviceData.create(bench.load_dataset("digits")), bench.QUICK)
    row = bench.row_compile(bench.Context(args, bench.QUICK, bench.torch.device("cpu"), data))
    assert row["eager_epoch_s"] > 0 and row["compiled_epoch_s"] > 0
    assert len(row["raw"]["compile_s"]) == 2 and row["first_compile_s"] > 0
    assert ("pays back after" in row["measured"]) == (row["break_even_epochs"] < float("inf"))


def test_bf16_row_trains_both_precisions_on_the_same_seeds(bench):
    args = bench.parse_args(["--quick", "--dataset", "digits", "--reps", "2"])
    data = bench.subset(bench.DeviceData.create(bench.load_dataset("digits")), bench.QUICK)
    row = bench.row_bf16(bench.Context(args, bench.QUICK, bench.torch.device("cpu"), data))
    assert [len(v) for v in row["raw"]["acc"].values()] == [2, 2]
    assert row["pass"] == (abs(row["diff_points"]) <= 0.5) and row["speedup"] > 0


def test_the_seeds_side_trains_with_torchs_dropout_and_hpsearch_with_its_own(bench):
    from torch import nn

    from hpsearch.training.models import Dropout, build_model

    data = bench.subset(bench.DeviceData.create(bench.load_dataset("digits")), bench.QUICK)
    seed_layers = list(bench.SeedRun(data, bench.torch.device("cpu"), seed=0).model)
    ours = list(build_model(bench.SEED_CFG, data.input_shape, data.n_classes))
    assert [type(m) for m in seed_layers if isinstance(m, nn.Dropout)] == [nn.Dropout] * 2
    assert [type(m) for m in ours if isinstance(m, nn.Dropout)] == [Dropout] * 2
    assert [type(m) for m in seed_layers if not isinstance(m, nn.Dropout)] == [
        type(m) for m in ours if not isinstance(m, nn.Dropout)]  # otherwise the same network
