"""Benchmark hpsearch's trainer and studies against seed 000's loop, side by side.

Every row is measured in one run on one machine, each figure the median of ``--reps``
repetitions, and reported as a ratio or a share (absolute seconds on a shared machine are
noise; ratios of interleaved repetitions are not). Prints a table and writes JSON, by
default to ``scripts/benchmarks/results/<machine>.json`` (GPU or CPU model and cores).

    python scripts/bench.py                          # fashion-mnist when installed, else digits
    python scripts/bench.py --skip memory --reps 5   # leave out rows, more repetitions
    python scripts/bench.py --quick --out /tmp/b.json  # tiny sizes: the smoke test's run
    python scripts/bench.py --only fused_digits fused_seed000 fused_optimize

Rows (targets in benchmarks.suite.TARGETS), one module per area under scripts/benchmarks/:
``training`` (epoch ratio vs seed 000's DataLoader loop from ``reference``, FLOP/s
efficiency against this machine's matmul speed, time to the seed's accuracy, torch threads,
torch.compile's break-even and, on CUDA or on a CPU with native bf16, bf16 vs fp32 parity
and speed), ``optimize`` (study throughput and Optuna's overhead per trial, memory growth
over a 100-trial study), ``fused`` (trainings per minute at K = 1, 4, 16, 64 models per
fused run for a digits MLP and for seed 000's MLP, and whether fusing a study's sampled
trials would pay) and ``verify`` (8 vs 32 seeds). A row that fails with an exception is
recorded as an error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.optimize import memory_child
from benchmarks.suite import ROWS, default_out, format_table, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--dataset", default=None,
                    help="default: fashion-mnist when installed, else digits")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per figure (median)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process, both sides (0: all cores); see THREADS")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: scripts/benchmarks/results/<machine>[-quick].json")
    ap.add_argument("--skip", nargs="+", default=[], choices=ROWS, metavar="ROW",
                    help=f"rows to leave out: {', '.join(ROWS)}")
    ap.add_argument("--only", nargs="+", default=[], choices=ROWS, metavar="ROW",
                    help="run only these rows (e.g. --only fused_digits fused_seed000)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only and args.skip:
        ap.error("--only and --skip do not go together")
    if args.reps < 1:
        ap.error(f"--reps must be >= 1, got {args.reps}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return {}
    command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = run(args, command.strip())
    print(format_table(doc))
    out = args.out or default_out(args.device, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return doc


if __name__ == "__main__":
    main()
