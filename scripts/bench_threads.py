"""The quick start's trials with torch's default threads against hpsearch's choice, side by side.

Runs `python -m hpsearch optimize --dataset digits --trials N --epochs 4 --pruner none` (the
README's quick start, fewer trials) in fresh processes, alternating:

- ``default``: one torch thread per core, what optimize used before it chose threads per
  model (``OMP_NUM_THREADS=<cores>`` reproduces it);
- ``hpsearch``: its own choice (``training.threads_for``: one thread for an MLP on a CPU).

``--busy K`` keeps K other processes busy meanwhile (a machine shared with other work;
``--busy 0`` is as idle as the machine is: the load average is printed beside each run).
Prints per run the command's wall seconds and the seconds per trial its trials recorded,
then the medians per setting and their ratio:

    .venv/bin/python scripts/bench_threads.py                  # 10 trials, idle and busy 1
    .venv/bin/python scripts/bench_threads.py --trials 5 --reps 1 --busy 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from benchmarks.common import busy

from hpsearch import schema
from hpsearch.storage import load_study

ROOT = Path(__file__).resolve().parents[1]


def run_study(directory: Path, trials: int, threads: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    db = directory / f"s{time.monotonic_ns()}.db"
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpsearch", "optimize", "--dataset", "digits",
                    "--trials", str(trials), "--epochs", "4", "--pruner", "none", "-q",
                    "--storage", str(db)], env=env, check=True, capture_output=True,
                   text=True)
    wall = time.perf_counter() - t0
    study = load_study(str(db))
    curves = [schema.learning_curve(t) for t in study.trials]
    per_trial = [sum(c["seconds"]) for c in curves if c]
    return {"wall": wall, "trial": statistics.median(per_trial), "load": load}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1],
                    help="other busy processes meanwhile, one block per value")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cores = str(os.cpu_count() or 1)
    settings = ((f"default ({cores} threads)", cores), ("hpsearch (1 thread/MLP)", None))
    print(f"quick start, {args.trials} digits trials x 4 epochs; {cores} cores")
    print(f"{'busy':>4}  {'threads':<24} {'wall_s':>7} {'s/trial':>8} {'load':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for n_busy in args.busy:
            got: dict[str, list[float]] = {name: [] for name, _ in settings}
            with busy(n_busy):
                for _ in range(args.reps):
                    for name, threads in settings:
                        r = run_study(Path(tmp), args.trials, threads)
                        got[name].append(r["wall"])
                        print(f"{n_busy:>4}  {name:<24} {r['wall']:7.1f} {r['trial']:8.2f} "
                              f"{r['load']:5.1f}", flush=True)
            (a, wa), (b, wb) = ((name, statistics.median(got[name])) for name, _ in settings)
            print(f"{n_busy:>4}  median wall: {a} {wa:.1f} s, {b} {wb:.1f} s; "
                  f"default / hpsearch = {wa / wb:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
