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
    python scripts/check_answers.py --calibrate 20   # settled states, interactions, ...

``--calibrate N`` runs N planted studies per row in memory (no storage) and counts the
three verdict states (:func:`calibrate`): nulls, an effect above the margin (0.66 pts), one
below it (0.2 pts), TPE slow starters that end equal, an interaction with no main effects,
strong main effects with no interaction, and a study with foreign param names.
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

from hpsearch.optimize.samplers import make_pruner, make_sampler
from hpsearch.planted import (
    ADDITIVE_TRUTH,
    BN_TRUTH,
    INTERACTION_TRUTH,
    NULL_TRUTH,
    SLOW_STARTER_TRUTH,
    Truth,
    foreign_space,
    planted_study,
)
from hpsearch.report import report

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


# ---------------------------------------------------------------------------- calibrate


@dataclass
class CalRow:
    name: str
    sampler: str              # "random" | "tpe"
    trials: int
    truth: Truth
    planted: dict[str, str]   # question -> the planted winner (a difference to find)
    above: tuple[str, ...] = ()   # questions whose planted difference exceeds the margin
    skip: tuple[str, ...] = ()    # questions with an effect that is neither null nor scored
    foreign: bool = False
    target: str = ""


PLACEMENT_066 = Truth(effects={"batch_norm": {"before": 0.66}})
PLACEMENT_020 = Truth(effects={"batch_norm": {"before": 0.2}})
FOREIGN_066 = Truth(effects={"classifier": {"svc": 0.66}}, lr_param="rate")
FOREIGN_NULL = Truth(lr_param="rate")

CAL_ROWS = [
    CalRow("random null", "random", 200, NULL_TRUTH, {}, target="false diff <= 1/20"),
    CalRow("tpe null", "tpe", 150, NULL_TRUTH, {}, target="false diff <= 1/20"),
    CalRow("random 0.66 placement", "random", 200, PLACEMENT_066,
           {"bn_placement": "before"}, above=("bn_placement",), skip=("batch_norm",),
           target="found in most; false equiv <= 1/20"),
    CalRow("tpe 0.66 placement", "tpe", 150, PLACEMENT_066, {"bn_placement": "before"},
           above=("bn_placement",), skip=("batch_norm",), target="false equiv <= 1/20"),
    CalRow("random 0.2 placement", "random", 200, PLACEMENT_020, {},
           skip=("bn_placement", "batch_norm"), target="(below the margin: information)"),
    CalRow("tpe slow starter", "tpe", 150, SLOW_STARTER_TRUTH, {},
           target="dropout called <= 1/12"),
    CalRow("random interaction", "random", 200, INTERACTION_TRUTH,
           {"dropout_x_activation": "depends"}, above=("dropout_x_activation",),
           skip=("dropout", "activation"), target="found in most of 10"),
    CalRow("random additive", "random", 200, ADDITIVE_TRUTH, {},
           skip=("dropout", "activation"), target="interaction called <= 1/10"),
    CalRow("random foreign 0.66", "random", 200, FOREIGN_066, {"classifier": "svc"},
           above=("classifier",), foreign=True, target="found in most"),
    CalRow("tpe foreign null", "tpe", 150, FOREIGN_NULL, {}, foreign=True,
           target="false diff <= 1/20"),
]


def _verdicts(study: optuna.Study) -> dict[str, dict[str, object]]:
    """Every answer and interaction of ``study``, by question: settled, best, family."""
    from hpsearch.analysis import answer_questions
    from hpsearch.analysis.interactions import answer_interactions
    from hpsearch.analysis.matrix import build_design
    from hpsearch.analysis.table import finished_table
    from hpsearch.space import INTERACTIONS

    out: dict[str, dict[str, object]] = {}
    for a in answer_questions(study.trials):
        out[a.question] = {"settled": a.settled, "best": a.best, "family": a.family,
                           "param": a.param}
    table = finished_table(study.trials, study.direction)
    for r in answer_interactions(table, build_design(table.trials, [], 5), INTERACTIONS,
                                 margin=0.5):
        out[r["question"]] = {"settled": r["settled"], "best": "depends",
                              "family": "interactions", "param": r["question"]}
    return out


def calibrate(n_studies: int, rows: list[CalRow], seed0: int = 9000) -> None:
    """Per row: found (the planted difference, right winner), false difference (any
    question with no planted effect; lr, the planted hump, is never counted), false
    equivalence (a planted difference above the margin called equivalent), and how many
    questions settled either way per study."""
    print(f"{'row':24} {'n':>3} {'found':>6} {'false diff':>10} {'(of which seeds)':>16} "
          f"{'false equiv':>11} {'inter. false':>12} {'settled/study':>13}  target")
    for row in rows:
        found = false = false_seeds = false_eq = false_int = 0
        settled = 0
        for k in range(n_studies):
            seed = seed0 + k
            study = planted_study(row.truth, row.trials, sampler=sampler_for(row.sampler, seed),
                                  pruner=optuna.pruners.MedianPruner(), seed=seed,
                                  space=foreign_space if row.foreign else None)
            v = _verdicts(study)
            found += all(v[q]["settled"] == "difference" and v[q]["best"] == w
                         for q, w in row.planted.items()) and bool(row.planted)
            nulls = {q: x for q, x in v.items() if q not in row.planted and q not in row.skip
                     and x["param"] not in ("lr", "rate") and q not in row.above}
            false += any(x["settled"] == "difference" for x in nulls.values())
            false_seeds += any(x["settled"] == "difference" and x["family"] == "seeds"
                               for x in nulls.values())
            false_int += any(x["settled"] == "difference" and x["family"] == "interactions"
                             for x in nulls.values())
            false_eq += any(v[q]["settled"] == "equivalent" for q in row.above)
            settled += sum(x["settled"] != "open" for x in v.values())
        print(f"{row.name:24} {n_studies:3d} {found:3d}/{n_studies:<2} {false:7d}/{n_studies:<2} "
              f"{false_seeds:13d}/{n_studies:<2} {false_eq:8d}/{n_studies:<2} "
              f"{false_int:9d}/{n_studies:<2} {settled / n_studies:13.1f}  {row.target}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny study per row")
    parser.add_argument("--fresh-process", action="store_true",
                        help="also read each row's first study with the CLI in a new process")
    parser.add_argument("--seed", type=int, default=100, help="first study's seed")
    parser.add_argument("--rates", type=int, metavar="N",
                        help="instead: N null and N planted random-sampler studies in memory, "
                             "for the false-call and detection rates")
    parser.add_argument("--calibrate", type=int, metavar="N",
                        help="instead: N studies per row of the settled-state, interaction, "
                             "slow-starter and foreign-param checks (in memory)")
    parser.add_argument("--rows", default="",
                        help="with --calibrate: only rows whose name contains this")
    parser.add_argument("--cal-seed", type=int, default=9000,
                        help="with --calibrate: the first study's seed (rows share seeds, "
                             "so the random rows draw the same params; shift for new draws)")
    args = parser.parse_args()
    if args.calibrate:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        calibrate(args.calibrate, [r for r in CAL_ROWS if args.rows in r.name], args.cal_seed)
        return
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
