"""Where `hpsearch best --retrain` spends its time: the whole command against its trainings.

Runs `python -m hpsearch best DB --retrain --seeds N` in fresh processes, alternately with
torch's default threads (one per core, what `best` used before it pinned one thread:
OMP_NUM_THREADS=<cores> reproduces that) and with hpsearch's default, and prints per run
the command's wall seconds, the seconds its trainings took (the `best` user attr's
`train_seconds`), and the study's own seconds for the same config times N (what the
trainings "should" cost). `--busy K` keeps K other processes busy meanwhile, as on a
machine shared with other people:

    .venv/bin/python scripts/bench_best.py                       # digits study built once
    .venv/bin/python scripts/bench_best.py --busy 1 --reps 2 --db /tmp/best.db
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from benchmarks.common import busy

from hpsearch import schema
from hpsearch.storage import load_study

STUDY_CMD = ["optimize", "--dataset", "digits", "--trials", "12", "--epochs", "4", "-q"]


def run_best(db: str, seeds: int, threads: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpsearch", "best", db, "--retrain", "--seeds",
                    str(seeds)], env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    study = load_study(db)
    best = study.user_attrs[schema.BEST]
    trial = study.trials[best["trial_number"]]
    own = sum(trial.user_attrs[schema.LEARNING_CURVE]["seconds"])
    return {"wall": wall, "trainings": sum(best["train_seconds"]), "threads": best["threads"],
            "study": own * seeds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="the digits study to use (built there if missing)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--busy", type=int, default=0, help="other busy processes meanwhile")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "digits.db")
        if not Path(db).exists():
            subprocess.run([sys.executable, "-m", "hpsearch", *STUDY_CMD, "--storage", db],
                           check=True, capture_output=True, env={**os.environ,
                                                                 "OMP_NUM_THREADS": "1"})
        cores = str(os.cpu_count() or 1)
        print(f"best --retrain --seeds {args.seeds} on {db}; {cores} cores, "
              f"{args.busy} other busy process(es)")
        print(f"{'threads':<22} {'wall_s':>7} {'train_s':>8} {'study_s':>8}  overhead")
        with busy(args.busy):
            for _ in range(args.reps):
                for name, threads in ((f"before: {cores} (1/core)", cores),
                                      ("after: hpsearch's", None)):
                    r = run_best(db, args.seeds, threads)
                    print(f"{name:<22} {r['wall']:7.1f} {r['trainings']:8.1f} "
                          f"{r['study']:8.1f}  {r['wall'] - r['trainings']:.1f} s "
                          f"({r['threads']} thread(s))", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
