"""Detection and false-call rates of the report's answers on planted studies.

Each study is a real Optuna study in a SQLite file (no training: see hpsearch.planted),
read back the way a user reads it, through ``hpsearch report --format json`` (in-process;
``--fresh-process`` runs the CLI for the first study of each row as well). Rows:

- random sampler, 100 trials, median pruner: batch norm planted (+0.7 pts vs none,
  before +0.45 over after, noise 0.4, a dominant lr term) and null studies;
- Optuna's multivariate TPE with a median pruner, 150 trials (planted and null);
- hpsearch's default sampler (TPE with a randomized share) and pruner, 150 trials;
- other learning-curve shapes (information), and what the randomized share costs the
  best value found.

A question is *found* when it is significant with the planted winner as ``best``; a
*false call* is a significant question whose param has no planted effect.

    python scripts/check_answers.py            # about 10 minutes on 2 cores
    python scripts/check_answers.py --quick    # the smoke test's tiny run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpsearch.optimize.samplers import make_pruner, make_sampler  # noqa: E402
from hpsearch.planted import BN_TRUTH, NULL_TRUTH, Truth, planted_study  # noqa: E402
from hpsearch.report import report  # noqa: E402

PLANTED = {"batch_norm": "any", "bn_placement": "before"}


@dataclass
class Row:
    name: str
    sampler: str          # "random" | "tpe" (Optuna's) | "default" (hpsearch's)
    trials: int
    studies: int
    truth: Truth
    target: str = ""


def sampler_for(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return make_sampler("tpe", seed, 0.2)


def pruner_for(kind: str, epochs: int) -> optuna.pruners.BasePruner:
    return make_pruner("median", epochs) if kind == "default" else optuna.pruners.MedianPruner()


def answers_of(storage: str, fresh: bool) -> dict[str, dict]:
    if fresh:
        out = subprocess.run([sys.executable, "-m", "hpsearch", "report", storage,
                              "--format", "json"], capture_output=True, text=True, check=True)
        doc = json.loads(out.stdout[out.stdout.index("{"):])
    else:
        doc = json.loads(report(storage, fmt="json", publish=False).text)
    return {a["question"]: a for a in doc["analysis"]["answers"]}


def run_row(row: Row, tmp: Path, fresh: bool, seed0: int) -> dict[str, float]:
    found = {q: 0 for q in PLANTED}
    false_calls, seconds = 0, []
    planted = set(PLANTED) if row.truth.effects else set()
    for k in range(row.studies):
        storage = str(tmp / f"{row.name.replace(' ', '_')}-{k}.db")
        seed = seed0 + k
        planted_study(row.truth, row.trials, sampler=sampler_for(row.sampler, seed),
                      pruner=pruner_for(row.sampler, row.truth.epochs), seed=seed,
                      storage=f"sqlite:///{storage}", study_name="planted")
        start = time.perf_counter()
        answers = answers_of(storage, fresh and k == 0)
        seconds.append(time.perf_counter() - start)
        for q, winner in PLANTED.items():
            a = answers[q]
            found[q] += bool(q in planted and a["significant"] and a["best"] == winner)
        called = [q for q, a in answers.items() if a["significant"] and q not in planted]
        false_calls += bool(called)
    out = {f"found {q}": found[q] for q in PLANTED} if planted else {}
    return {**out, "false": false_calls, "seconds": float(np.mean(seconds))}


def share_cost(n_seeds: int, trials: int) -> tuple[float, float]:
    """Mean best accuracy (pts) found by plain TPE and by TPE with a 20% randomized share."""
    best = {0.0: [], 0.2: []}
    for seed in range(n_seeds):
        for share in best:
            study = planted_study(BN_TRUTH, trials, sampler=make_sampler("tpe", seed, share),
                                  pruner=make_pruner("median", BN_TRUTH.epochs), seed=seed)
            best[share].append(100 * study.best_value)
    return float(np.mean(best[0.0])), float(np.mean(best[0.2]))


def rates(n_studies: int, planted: bool) -> str:
    """The same random-sampler rows over many more studies, in memory (no storage)."""
    from hpsearch.analysis import answer_questions

    truth = BN_TRUTH if planted else NULL_TRUTH
    false, found = 0, {q: 0 for q in PLANTED}
    for seed in range(5000, 5000 + n_studies):
        study = planted_study(truth, 100, sampler=sampler_for("random", seed),
                              pruner=pruner_for("random", truth.epochs), seed=seed)
        answers = {a.question: a for a in answer_questions(study.trials)}
        skip = set(PLANTED) if planted else set()
        false += any(a.significant for q, a in answers.items() if q not in skip)
        for q, winner in PLANTED.items():
            found[q] += answers[q].significant and answers[q].best == winner
    what = (f"batch_norm found in {found['batch_norm']}, bn_placement in "
            f"{found['bn_placement']}, " if planted else "")
    return (f"{n_studies} {'planted' if planted else 'null'} random-sampler studies of 100 "
            f"trials: {what}a false call in {false} ({false / n_studies:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny study per row")
    parser.add_argument("--fresh-process", action="store_true",
                        help="also read each row's first study with the CLI in a new process")
    parser.add_argument("--seed", type=int, default=100, help="first study's seed")
    parser.add_argument("--rates", type=int, metavar="N",
                        help="instead: N null and N planted random-sampler studies in memory, "
                             "for the false-call and detection rates")
    args = parser.parse_args()
    if args.rates:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        print(rates(args.rates, planted=False))
        print(rates(args.rates, planted=True))
        return
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    scale = (lambda n: 1) if args.quick else (lambda n: n)
    trials = (lambda n: 40) if args.quick else (lambda n: n)
    rows = [
        Row("random planted", "random", trials(100), scale(10), BN_TRUTH,
            "batch_norm >= 8/10, bn_placement >= 5/10, false <= 1/10"),
        Row("random null", "random", trials(100), scale(20), NULL_TRUTH, "false <= 1/20"),
        Row("tpe planted", "tpe", trials(150), scale(6), BN_TRUTH, "batch_norm >= 4/6"),
        Row("tpe null", "tpe", trials(150), scale(6), NULL_TRUTH,
            "false <= 1 of 12 (planted + null)"),
        Row("default planted", "default", trials(150), scale(6), BN_TRUTH, "batch_norm >= 4/6"),
        Row("default null", "default", trials(150), scale(6), NULL_TRUTH,
            "false <= 1 of 12 (planted + null)"),
        Row("random iid-noise curves", "random", trials(100), scale(10),
            replace(BN_TRUTH, curve="iid"), "(information)"),
        Row("random slow starters", "random", trials(100), scale(10),
            replace(BN_TRUTH, curve="slow"), "(information)"),
    ]
    print(f"{'row':26} {'studies':>7}  {'bn found':>8} {'place':>6} {'false':>6} "
          f"{'s/report':>8}  target")
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            r = run_row(row, Path(tmp), args.fresh_process, args.seed)
            bn = f"{r['found batch_norm']}/{row.studies}" if "found batch_norm" in r else "-"
            pl = f"{r['found bn_placement']}/{row.studies}" if "found bn_placement" in r else "-"
            print(f"{row.name:26} {row.studies:7d}  {bn:>8} {pl:>6} "
                  f"{r['false']:>3}/{row.studies:<2} {r['seconds']:8.2f}  {row.target}",
                  flush=True)
    plain, shared = share_cost(2 if args.quick else 20, trials(150))
    print(f"randomized share: best accuracy found, plain TPE {plain:.2f} pts, with a 20% "
          f"random share {shared:.2f} pts ({shared - plain:+.2f}; mean over "
          f"{2 if args.quick else 20} seeds, 150 planted trials)")


if __name__ == "__main__":
    main()
