"""Soak the storage layer: many short trials across worker processes, then count.

    python scripts/soak.py                                  # 200 trials x 4 workers, on a
                                                            # throw-away journal file
    python scripts/soak.py --url postgresql://u:pw@host/db  # and on a PostgreSQL database
    python scripts/soak.py --storage s.log --storage study.db --trials 500

Each worker is a process running ``hpsearch.optimize.workers.run_trials`` (the budget loop of
``hpsearch optimize``) on a trial that samples the whole search space and stores its config
like the real objective, but trains nothing: the figures are the storage's overhead alone.
A worker logs every trial it finished; the report compares those logs with the storage:

- completed: finished (complete + pruned) trials in the storage; must equal --trials
- lost: finished in a worker's log but not in the storage
- duplicated: a trial number finished twice (in the logs or in the storage)
- skipped: trials created in a race for the last places and failed without running
- trials/s: finished trials per second, first trial start to last trial end
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.optimize.study import FINISHED
from hpsearch.optimize.workers import OVER_BUDGET, run_trials
from hpsearch.space import sample_config
from hpsearch.storage import kind, mask, open_storage


def _objective(trial: optuna.Trial) -> float:
    cfg = sample_config(trial)
    schema.set_config(trial, cfg.as_dict())
    return cfg.lr * (1.0 - cfg.dropout)


class _Log:
    """``on_trial`` callback: one line per trial this worker finished."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with self.path.open("a") as f:
            f.write(f"{trial.number} {trial.state.name}\n")


def _worker(spec: str, study_name: str, trials: int, log: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(spec, create=True, heartbeat=kind(spec) != "journal")
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=optuna.samplers.RandomSampler())
    run_trials(study, _objective, trials, linger=30.0, on_trial=_Log(log))


def soak(spec: str, *, trials: int = 200, workers: int = 4,
         logdir: Path | None = None) -> dict[str, Any]:
    """Run ``trials`` trivial trials across ``workers`` processes on ``spec``; count them."""
    logdir = Path(logdir or tempfile.mkdtemp(prefix="hpsearch-soak-"))
    name = f"soak-{uuid.uuid4().hex[:8]}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name=name,
                                direction="maximize")
    logs = [logdir / f"{name}-worker{i}.log" for i in range(workers)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(spec, name, trials, log)) for log in logs]
    start = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.monotonic() - start

    db = study.get_trials(deepcopy=False)
    finished = [t for t in db if t.state in FINISHED]
    seen = [int(line.split()[0]) for log in logs if log.exists()
            for line in log.read_text().splitlines() if line.split()[1] in ("COMPLETE", "PRUNED")]
    per_worker = [sum(1 for line in log.read_text().splitlines()) if log.exists() else 0
                  for log in logs]
    numbers = Counter(t.number for t in db)
    span = (max(t.datetime_complete for t in finished if t.datetime_complete)
            - min(t.datetime_start for t in finished if t.datetime_start)).total_seconds()
    return {
        "storage": mask(spec), "workers": workers, "target": trials,
        "completed": len(finished),
        "lost": len(set(seen) - {t.number for t in finished}),
        "duplicated": (sum(n - 1 for n in Counter(seen).values() if n > 1)
                       + sum(n - 1 for n in numbers.values() if n > 1)),
        "skipped": sum(1 for t in db if schema.failure_reason(t) == OVER_BUDGET),
        "failed": sum(1 for t in db if t.state == TrialState.FAIL),
        "left_running": sum(1 for t in db if t.state in (TrialState.RUNNING,
                                                         TrialState.WAITING)),
        "per_worker": per_worker,
        "exit_codes": [p.exitcode for p in procs],
        "trials_per_s": round(len(finished) / span, 1) if span > 0 else float("inf"),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", action="append", default=[],
                        help="URL, SQLite or journal file (repeatable); default: a throw-away "
                        "journal file")
    parser.add_argument("--url", action="append", default=[], metavar="postgresql://...",
                        help="a PostgreSQL database to soak too (repeatable); a throw-away "
                        "server: tests/support/postgres.py shows how to start one")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", action="store_true",
                        help="print each storage's counts as one JSON line")
    args = parser.parse_args(argv)

    bad = [u for u in args.url if not u.startswith(("postgresql://", "postgresql+"))]
    if bad:
        parser.error(f"--url {mask(bad[0])}: expected a postgresql://user:pw@host/db URL")
    specs = [*args.url, *args.storage]
    tmp = Path(tempfile.mkdtemp(prefix="hpsearch-soak-"))
    if not specs:
        print("no --url or --storage: soaking a journal file only")
        specs.append(str(tmp / "soak.log"))
    ok = True
    try:
        for spec in specs:
            r = soak(spec, trials=args.trials, workers=args.workers, logdir=tmp)
            ok &= (r["completed"] == args.trials and r["lost"] == 0 and r["duplicated"] == 0
                   and r["left_running"] == 0)
            if args.json:
                print(json.dumps(r), flush=True)
                continue
            print(f"{r['storage']}: {r['workers']} workers, {r['completed']}/{r['target']} "
                  f"completed, {r['lost']} lost, {r['duplicated']} duplicated, "
                  f"{r['skipped']} skipped, {r['trials_per_s']} trials/s "
                  f"(wall {r['wall_s']} s with process start-up; per worker "
                  f"{r['per_worker']})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
