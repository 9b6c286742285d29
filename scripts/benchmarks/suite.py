"""Every row by name, and the run: measure the rows asked for, build the JSON document."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks import fused, optimize, training, verify
from benchmarks.common import (
    FULL,
    QUICK,
    SCHEMA,
    SEED_CFG,
    Context,
    Sizes,
    machine_info,
    machine_slug,
    subset,
)
from benchmarks.reference import SeedRun
from hpsearch.optimize import git_hash
from hpsearch.training import DeviceData, available_datasets, load_dataset, resolve_device, train

RESULTS = Path(__file__).resolve().parent / "results"  # one JSON file per machine

ROWS = ("epoch", "efficiency", "accuracy", "study", "memory", "threads", "compile", "bf16",
        "cnn_layout", "fused_digits", "fused_seed000", "fused_cnn004", "fused_optimize",
        "verify_seeds")
TARGETS = {
    "epoch": "hpsearch >= 3x faster per epoch at batch 32",
    "efficiency": ">= 50% of this machine's matmul FLOP/s",
    "accuracy": "hpsearch reaches the seed's accuracy sooner",
    "study": "Optuna overhead < 5% of a 3-epoch digits trial",
    "memory": "RSS growth <= 10% from trial 10 to trial 100",
    "threads": "(information: 1 thread vs all cores)",
    "compile": "(information: torch.compile's break-even in epochs)",
    "bf16": "|bf16 - fp32| <= 0.5 accuracy points",
    "cnn_layout": "(information: is a CNN faster in channels_last here? DeviceProfile's choice)",
    "fused_digits": "fused K = 16 >= 4x the trainings/min of K = 1",
    "fused_seed000": "(information: trainings/min at K = 1, 4, 16, 64)",
    "fused_cnn004": "(information: would fusing a CNN config's 4 arms pay?)",
    "fused_optimize": "(information: would fusing a study's trials pay?)",
    "verify_seeds": "verify at 32 seeds costs <= 2x verify at 8 seeds (whole process)",
}
ROW_FUNCS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "epoch": training.row_epoch, "efficiency": training.row_efficiency,
    "accuracy": training.row_accuracy, "study": optimize.row_study,
    "memory": optimize.row_memory, "threads": training.row_threads,
    "compile": training.row_compile, "bf16": training.row_bf16,
    "cnn_layout": training.row_cnn_layout,
    "fused_digits": fused.row_fused_digits, "fused_seed000": fused.row_fused_seed000,
    "fused_cnn004": fused.row_fused_cnn004,
    "fused_optimize": fused.row_fused_optimize, "verify_seeds": verify.row_verify_seeds,
}
ROW_TITLES = {"epoch": "epoch ratio", "efficiency": "efficiency", "accuracy": "time to accuracy",
              "study": "study throughput", "memory": "memory", "threads": "threads",
              "compile": "torch.compile", "bf16": "bf16 parity",
              "cnn_layout": "CNN layout",
              "fused_digits": "fused, digits MLP", "fused_seed000": "fused, seed 000 MLP",
              "fused_cnn004": "fused, seed 004 CNN",
              "fused_optimize": "fused trials", "verify_seeds": "verify 8 vs 32 seeds"}



def default_dataset() -> str:
    rows = {r["name"]: r["available"] for r in available_datasets()}
    return "fashion-mnist" if rows.get("fashion-mnist") == "yes" else "digits"


def warm_up(ctx: Context) -> None:
    """One tiny pass each way first: library initialisation (oneDNN, cuBLAS) is not a row."""
    small = subset(ctx.data, Sizes(n_train=256, n_eval=256))
    train(SEED_CFG, small, epochs=1)
    SeedRun(small, ctx.device, seed=0).train_epoch()


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Measure every row not skipped; returns the JSON document."""
    threads = args.threads or os.cpu_count() or 1
    args.threads = threads
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = resolve_device(args.device)
    args.dataset = args.dataset or default_dataset()
    sizes = QUICK if args.quick else FULL
    data = subset(DeviceData.create(load_dataset(args.dataset), device=device), sizes)
    ctx = Context(args, sizes, device, data)
    warm_up(ctx)
    doc: dict[str, Any] = {
        "schema": SCHEMA, "command": command,
        "dataset": args.dataset, "device": str(device), "reps": args.reps,
        "quick": args.quick, "machine": machine_info(device),
        "machine_slug": machine_slug(machine_info(device)), "git": git_hash(),
        "targets": TARGETS, "rows": {},
    }
    for name in ROWS:
        if name in args.skip or (args.only and name not in args.only) or (
                name == "bf16" and not training.native_bf16(device)):
            continue
        t0 = time.perf_counter()
        try:
            row = ROW_FUNCS[name](ctx)
        except Exception as exc:  # keep the other rows of a long run
            row = {"error": repr(exc), "pass": False, "measured": f"error: {exc!r}"[:200]}
        torch.set_num_threads(threads)  # a study's workers set their own thread count
        row["target"], row["bench_seconds"] = TARGETS[name], time.perf_counter() - t0
        doc["rows"][name] = row
        print(f"  {ROW_TITLES[name]}: {row['measured']} ({row['bench_seconds']:.0f} s)",
              file=sys.stderr, flush=True)
    doc["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def format_table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    head = [f"hpsearch bench: {doc['dataset']} on {doc['device']}, median of {doc['reps']} "
            f"rep(s){' (--quick)' if doc['quick'] else ''}",
            f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}{', ' + m['gpu'] if 'gpu' in m else ''}; load avg "
            f"{m['load_avg_start'][0]} -> {m.get('load_avg_end', ['?'])[0]}", ""]
    rows = [("row", "measured", "target", "result")]
    for name, row in doc["rows"].items():
        rows.append((ROW_TITLES[name], row["measured"], row["target"],
                     {True: "PASS", False: "FAIL", None: "info"}[row["pass"]]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(head + lines)


def default_out(device: str, quick: bool) -> Path:
    """``results/<machine>.json`` (``<machine>-quick.json`` for --quick runs)."""
    slug = machine_slug(machine_info(resolve_device(device)))
    return RESULTS / f"{slug}{'-quick' if quick else ''}.json"
