"""scripts/bench.py run as a user runs it (a subprocess): the rows run, and the JSON has the
documented schema.

The figures themselves are not checked (1 repetition of tiny work on a shared machine says
nothing); the full run is `python scripts/bench.py` (README "Performance"). Nothing here
imports the scripts: they are a program, tested through their command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench.py"
ROW_KEYS = {
    "epoch": {"seed_s", "hpsearch_b32_s", "hpsearch_b256_s", "ratio_b32", "ratio_b256",
              "dropout_gain"},
    "efficiency": {"trainer_gflops", "matmul_gflops", "efficiency", "formula"},
    "accuracy": {"target_acc", "seed_s", "hpsearch_s", "ratio"},
    "study": {"trials_per_min_jobs1", "trials_per_min_jobs2", "optuna_share",
              "seconds_per_trial", "optuna_seconds_per_trial", "stub_seconds_per_trial"},
    "threads": {"seconds", "slowdown"},
    "cnn_layout": {"speedup", "diff_points", "bn_max_error", "profile_channels_last"},
    "fused_digits": {"ks", "trainings_per_min", "ratio_vs_k1", "other_widths"},
    "fused_seed000": {"ks", "trainings_per_min", "ratio_vs_k1", "dataset"},
    "fused_cnn004": {"ks", "trainings_per_min", "ratio_vs_k1", "dataset"},
    "fused_optimize": {"default_speedup", "fixed_architecture_speedup", "default_groups",
                       "fixed_architecture_groups"},
    "verify_seeds": {"seeds", "ratio"},
}
QUICK_KS = [1, 2, 4]  # Sizes(--quick).fuse_ks


def bench(tmp_path: Path, *args: str, check: bool = True) -> tuple[dict, str]:
    """Run the bench at --quick sizes on digits; (JSON document, stdout)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dataset", "digits", "--reps", "1",
         "--device", "cpu", "--out", str(out), *args],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path, timeout=600, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(out.read_text()), proc.stdout
    return {}, proc.stderr


def check_row(doc: dict, name: str) -> dict:
    row = doc["rows"][name]
    assert "error" not in row, row.get("error")
    assert ROW_KEYS.get(name, set()) <= set(row), name
    assert row["target"] and row["pass"] in (True, False, None)
    assert isinstance(row["measured"], str) and isinstance(row["raw"], dict)
    return row


def test_only_runs_the_named_rows_and_writes_the_schema(tmp_path):
    doc, table = bench(tmp_path, "--only", "fused_digits", "epoch")
    assert doc["schema"] == 1 and set(doc["rows"]) == {"fused_digits", "epoch"}
    assert (doc["dataset"], doc["device"], doc["reps"], doc["quick"]) == ("digits", "cpu", 1, True)
    assert {"cpu", "cores", "torch_threads", "torch", "device"} <= set(doc["machine"])
    # the per-machine results file's name: model and cores, file-name safe
    assert re.fullmatch(r"[a-z0-9-]+-\d+c", doc["machine_slug"])
    assert doc["machine_slug"].endswith(f"-{doc['machine']['cores']}c")
    row = check_row(doc, "fused_digits")
    assert row["ks"] == QUICK_KS and row["ratio_vs_k1"]["1"] == 1.0
    assert all(v > 0 for v in row["trainings_per_min"].values())
    # seed 000's side trains with torch's nn.Dropout: a second timing of hpsearch's loop
    epoch = check_row(doc, "epoch")
    assert epoch["ratio_b32"] > 0 and epoch["hpsearch_b32_torch_dropout_s"] > 0
    assert "digits on cpu" in table and "fused, digits MLP" in table and "epoch ratio" in table


def test_bad_flags_are_one_message_and_a_non_zero_exit(tmp_path):
    _, err = bench(tmp_path, "--only", "epoch", "--skip", "study", check=False)
    assert "--only and --skip do not go together" in err and "Traceback" not in err
    _, err = bench(tmp_path, "--skip", "nonsense", check=False)
    assert "invalid choice: 'nonsense'" in err and "Traceback" not in err


@pytest.mark.e2e
def test_quick_run_writes_every_row(tmp_path):
    doc, table = bench(tmp_path, "--skip", "memory", "compile", "bf16")
    assert set(doc["rows"]) == set(ROW_KEYS)  # the skipped rows have tests of their own
    for name in ROW_KEYS:
        check_row(doc, name)
    study = doc["rows"]["study"]
    assert 0 < study["optuna_share"]
    # the stub ran on every storage, Optuna's in-memory one the cheapest
    stub = study["stub_seconds_per_trial"]
    assert set(stub) == {"sqlite", "sqlite-rollback", "journal", "memory"}
    assert all(v > 0 for v in stub.values()) and stub["memory"] < stub["sqlite"]
    for name in ("fused_digits", "fused_seed000", "fused_cnn004"):  # every K, K = 1 the base
        assert doc["rows"][name]["ks"] == QUICK_KS
    # both layouts of every config trained, the CPU's own profile the faster one here
    layout = doc["rows"]["cnn_layout"]
    assert all(set(v) == {"False", "True"} for v in layout["raw"]["seconds"].values())
    assert all(v > 0 for v in layout["speedup"].values()) and layout["profile_channels_last"]
    assert set(layout["bn_max_error"]) == {"NCHW", "channels_last"} and "CNN layout" in table
    # the fixed-architecture trials share one fused model; the default space's may not
    assert doc["rows"]["fused_optimize"]["fixed_architecture_groups"] == [[2]]
    assert doc["rows"]["verify_seeds"]["seeds"] == [6, 12] and "verify 8 vs 32" in table


@pytest.mark.e2e
def test_memory_row_records_rss_after_every_trial(tmp_path):
    doc, _ = bench(tmp_path, "--only", "memory")
    row = check_row(doc, "memory")
    assert row["trials"] == 4 and len(row["raw"]["rss_mb"]) == 4
    assert row["peak_rss_mb"] >= max(row["raw"]["rss_mb"]) > 0


@pytest.mark.e2e
def test_bf16_row_trains_both_precisions_on_the_same_seeds(tmp_path):
    doc, _ = bench(tmp_path, "--only", "bf16", "--reps", "2")
    if "bf16" not in doc["rows"]:
        pytest.skip("this CPU has no native bf16: the bench leaves the row out")
    row = check_row(doc, "bf16")
    assert [len(v) for v in row["raw"]["acc"].values()] == [2, 2]
    assert row["pass"] == (abs(row["diff_points"]) <= 0.5) and row["speedup"] > 0


@pytest.mark.slow
@pytest.mark.e2e
def test_compile_row_times_both_ways_and_says_whether_it_pays_back(tmp_path):
    """Its own test: inductor's first compile takes about 30 s on 2 CPU cores."""
    doc, _ = bench(tmp_path, "--only", "compile", "--reps", "2")
    row = check_row(doc, "compile")
    assert row["eager_epoch_s"] > 0 and row["compiled_epoch_s"] > 0
    assert len(row["raw"]["compile_s"]) == 2 and row["first_compile_s"] > 0
    assert ("pays back after" in row["measured"]) == (row["break_even_epochs"] < float("inf"))
