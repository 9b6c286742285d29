"""Time what `hpsearch report` does before it renders: load a study, analyse it.

Builds a planted study (hpsearch's full space with its conditionals, 10-epoch curves, a
share of pruned trials; no training) in a SQLite file, then times each stage from a freshly
opened storage, so reading the trials is counted:

    .venv/bin/python scripts/bench_report.py                  # 1,000 trials, with fANOVA
    .venv/bin/python scripts/bench_report.py --no-fanova --out bench.json
    .venv/bin/python scripts/bench_report.py --db /tmp/bench.db   # build once, reuse

Writing the study costs far more than reading it (Optuna commits each trial: ~50 ms on
tmpfs, ~150 ms on disk), so the temporary file goes to /dev/shm where there is one, and
--db keeps it for the next run. Every stage is one entry of STAGES; a rendering stage is
one more entry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpsearch import schema
from hpsearch.analysis import analyze
from hpsearch.space import PARAM_BY_NAME, PARAMS
from hpsearch.storage import load_study

STUDY = "bench"
EPOCHS = 10
PRUNED_SHARE = 0.3      # about what the median pruner stops in our studies


def planted_trial(rng: np.random.Generator) -> FrozenTrial:
    """One trial drawn like the space; batch_norm "before" is planted +1.5 pts better."""
    params: dict[str, Any] = {}
    for p in PARAMS:
        if not p.active(params):
            continue
        if p.kind == "categorical":
            params[p.name] = p.choices[rng.integers(len(p.choices))]
        elif p.step:  # dropout rates 0.0, 0.1, ...
            n_steps = round((p.high - p.low) / p.step)
            params[p.name] = round(p.low + p.step * int(rng.integers(n_steps + 1)), 10)
        else:
            x = (np.exp(rng.uniform(np.log(p.low), np.log(p.high))) if p.log
                 else rng.uniform(p.low, p.high))
            params[p.name] = int(round(x)) if p.kind == "int" else float(x)
    value = 0.95 + (0.015 if params["batch_norm"] == "before" else 0.0) + rng.normal(0, 0.01)
    pruned = rng.random() < PRUNED_SHARE
    epochs = int(rng.integers(1, EPOCHS)) if pruned else EPOCHS
    return create_trial(
        state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
        value=None if pruned else value, params=params,
        distributions={k: PARAM_BY_NAME[k].distribution() for k in params},
        intermediate_values={e: value - 0.1 / e for e in range(1, epochs + 1)})


def build(path: Path, n: int, seed: int) -> str:
    """A planted study of ``n`` trials in SQLite file ``path`` (reused if it has one)."""
    url = f"sqlite:///{path}"
    if path.exists():
        have = len(optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False))
        if have != n:
            raise SystemExit(f"{path} holds {have} trials, not {n}: delete it or pass --trials")
        return str(path)
    rng = np.random.default_rng(seed)
    study = optuna.create_study(storage=url, study_name=STUDY, direction="maximize")
    study.add_trials([planted_trial(rng) for _ in range(n)])
    study.set_user_attr(schema.PROVENANCE, {"settings": {"epochs": EPOCHS}})
    return str(path)


def _load(storage: str) -> int:
    return len(load_study(storage, STUDY).get_trials(deepcopy=False))


def _analyze(evaluators: tuple[str, ...]) -> Callable[[str], int]:
    def run(storage: str) -> int:
        return len(analyze(load_study(storage, STUDY), evaluators=evaluators).answers)
    return run


def _render(fmt: str) -> Callable[[str], int]:
    def run(storage: str) -> int:
        from hpsearch.report import report

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"report.{fmt}"
            report(storage, fmt=fmt, out=out, publish=False)  # publish would write to the db
            return out.stat().st_size
    return run


def _command(fmt: str) -> Callable[[str], int]:
    def run(storage: str) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"report.{fmt}"
            cmd = [sys.executable, "-m", "hpsearch", "report", storage, "--format", fmt,
                   "--out", str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
            return out.stat().st_size
    return run


# (name, note, stage(storage) -> a count that shows the stage did its work: trials,
# answers or bytes written). Each stage starts from a freshly opened storage.
STAGES: list[tuple[str, str, Callable[[str], int]]] = [
    ("load", "open storage + read all trials", _load),
    ("load+analyze", "default: PED-ANOVA, 20 bootstrap + 20 shuffled-objective refits",
     _analyze(("ped_anova",))),
    ("report md", "in process: load + analyze + render markdown", _render("md")),
    ("report html", "in process: load + analyze + render html", _render("html")),
    ("hpsearch report json", "fresh process: imports + load + analyze + json",
     _command("json")),
    ("hpsearch report html", "fresh process: ... + figures + publish (note, artifact)",
     _command("html")),
    ("load+analyze+fanova", "slower: adds one fANOVA fit (no CI)",
     _analyze(("ped_anova", "fanova"))),
]


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the fresh-process stages):
    on a shared machine they vary less than wall seconds do."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_stage(stage: Callable[[str], int], storage: str) -> dict[str, float]:
    """Wall and CPU seconds (CPU: this process plus the subprocess a stage ran)."""
    wall, cpu = time.perf_counter(), _cpu()
    count = stage(storage)
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu,
            "count": count}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fanova", action="store_true", help="skip the fANOVA stage")
    ap.add_argument("--db", type=Path, help="keep the planted study in this SQLite file "
                    "and reuse it next time (default: a temporary file)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None,
                                     ) as tmp:
        t0 = time.perf_counter()
        storage = build(args.db or Path(tmp) / "bench.db", args.trials, args.seed)
        print(f"planted study: {args.trials} trials in {storage} "
              f"(ready in {time.perf_counter() - t0:.1f} s, not timed below)")
        print(f"{'stage':<22} {'n_trials':>8} {'wall_s':>8} {'cpu_s':>8}  what")
        rows = []
        for name, note, stage in STAGES:
            if args.no_fanova and "fanova" in name:
                continue
            rows.append({"stage": name, "note": note, "n_trials": args.trials,
                         **time_stage(stage, storage)})
            r = rows[-1]
            print(f"{name:<22} {r['n_trials']:>8} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f}"
                  f"  {note}", flush=True)
    result = {"rows": rows, "python": platform.python_version(), "optuna": optuna.__version__,
              "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
              "machine": platform.machine()}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
