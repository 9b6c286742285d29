"""Which study design settles its question with fewer trainings, and what it costs the search.

Planted studies (no training: hpsearch.planted's truth, with a per-config noise that both
arms of a paired trial share and a per-arm noise they do not) for the ``bn_placement``
question under the three designs, at equal training cost:

- ``none``: today's default, TPE with a randomized share choosing every param;
- ``balanced``: the question's param assigned by permuted blocks, TPE for the rest;
- ``paired``: every config trained under both arms on one seed, pruned together
  (a paired trial costs two trainings, so it gets half the trials).

For each planted difference (above the margin, below it, none) and each budget it prints,
over ``--studies`` studies per cell: the share settled (a difference or an equivalence
within the margin), false differences (a difference called where none was planted, or the
wrong sign), false equivalences (equivalence called where the planted difference exceeds
the margin), and the best value each search found (points).

    python scripts/compare_designs.py                 # about 10 minutes on 2 cores
    python scripts/compare_designs.py --studies 5 --budgets 60   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from hpsearch import schema
from hpsearch.analysis import answer_questions
from hpsearch.optimize import Arms, DesignedSampler, make_pruner, make_sampler
from hpsearch.planted import Truth
from hpsearch.settings import MARGIN
from hpsearch.space import QUESTION_BY_ID, Preset, load_preset, sample_config

QUESTION = QUESTION_BY_ID["bn_placement"]
ALPHA = 0.05
EPOCHS = 4
# Noise, in points, calibrated on a real paired study (bn_placement preset, digits, 40
# random configs x 2 arms, 4 epochs, no pruning): the two arms of a config correlate 0.91,
# their values spread by 2.8 pts, their difference by 1.3 pts. Per arm (not shared) 0.9;
# per config (shared by its arms) 1.5, on top of the planted lr term.
ARM_NOISE = 0.9
CONFIG_NOISE = 1.5
DESIGN_NAMES = ("none", "balanced", "paired")


@dataclass
class Outcome:
    settled: str         # "difference" | "equivalent" | "open"
    estimate: float      # before - after, points
    best: float          # the best final value the search found, points


def planted(diff: float, config_noise: float = CONFIG_NOISE) -> Truth:
    """batch_norm before - after = ``diff`` points; other params as hpsearch.planted's."""
    return Truth(effects={"batch_norm": {"before": diff / 2, "after": -diff / 2}},
                 epochs=EPOCHS, noise=config_noise, base=92.0)


def run_study(design: str, truth: Truth, trainings: int, seed: int, preset: Preset,
              arm_noise: float = ARM_NOISE) -> Outcome:
    rng = np.random.default_rng([seed, 11])
    arms = Arms(design, QUESTION.id, QUESTION.param, ("before", "after"))
    base = make_sampler("tpe", seed, 0.2)
    sampler = base if design == "none" else DesignedSampler(base, arms, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                pruner=make_pruner("median", EPOCHS))
    best = [-math.inf]

    def arm_curves(values: dict, config_noise: float) -> dict[str, list[float]]:
        out = {}
        for v in arms.values:
            vals = {**values, "batch_norm": v}
            final = truth.final(vals, config_noise + rng.normal(0, arm_noise))
            out[v] = [truth.at_epoch(vals, e, final, rng) for e in range(1, EPOCHS + 1)]
        return out

    def objective(trial: optuna.Trial) -> float:
        values = sample_config(trial, preset).as_dict()
        noise = rng.normal(0, truth.noise)
        if design != "paired":
            final = truth.final(values, noise + rng.normal(0, arm_noise))
            curve = [truth.at_epoch(values, e, final, rng) for e in range(1, EPOCHS + 1)]
            for e, y in enumerate(curve, 1):
                trial.report(y / 100, e)
                if e < EPOCHS and trial.should_prune():
                    raise optuna.TrialPruned()
            best[0] = max(best[0], curve[-1])
            return curve[-1] / 100
        curves = arm_curves(values, noise)
        for e in range(1, EPOCHS + 1):
            trial.report(float(np.mean([c[e - 1] for c in curves.values()])) / 100, e)
            if e < EPOCHS and trial.should_prune():
                schema.set_arms(trial, {v: {"val_acc": [y / 100 for y in c[:e]]}
                                        for v, c in curves.items()})
                raise optuna.TrialPruned()
        schema.set_arms(trial, {v: {"val_acc": [y / 100 for y in c]}
                                for v, c in curves.items()})
        best[0] = max(best[0], *(c[-1] for c in curves.values()))
        return float(np.mean([c[-1] for c in curves.values()])) / 100

    n_trials = trainings // (len(arms.values) if design == "paired" else 1)
    study.optimize(objective, n_trials=n_trials)
    trials = study.get_trials(deepcopy=False)
    # Every design is read as the report reads it (the paired one by paired differences).
    answer = answer_questions(trials, questions=[QUESTION], alpha=ALPHA, margin=MARGIN)[0]
    if answer.status != "answered" or not answer.headline:
        return Outcome("open", math.nan, best[0])
    h = answer.headline
    est = h["diff"] if h["a"] == "before" else -h["diff"]
    return Outcome(answer.settled, est, best[0])


def run_real(design: str, dataset: str, trainings: int, seed: int, epochs: int,
             work: Path) -> Outcome:
    """A real ``bn_placement`` study on ``dataset`` with ``design``, read as the report does."""
    from hpsearch.analysis import analyze
    from hpsearch.optimize import optimize
    from hpsearch.settings import Settings
    from hpsearch.storage import load_study

    storage = str(work / f"{dataset}-{design}-{seed}.db")
    n = trainings // (2 if design == "paired" else 1)
    settings = Settings(dataset=dataset, trials=n, epochs=epochs, storage=storage,
                        study_name="designs", seed=seed, design=design, train_size=None)
    optimize(load_preset("bn_placement"), settings, progress=False)
    study = load_study(storage, "designs")
    answer = next(a for a in analyze(study, n_bootstrap_importance=0, n_noise=0).to_dict()[
        "answers"] if a["question"] == QUESTION.id)
    arms = [schema.arms(t) for t in study.trials]
    best = max([100 * v["final"] for a in arms if a for v in a.values()]
               + [100 * (t.value or 0) for t in study.trials
                  if t.value is not None and not schema.arms(t)], default=math.nan)
    est = next((e["diff"] if e["choice"] == "before" else -e["diff"]
                for e in answer.get("effects", [])
                if {e["choice"], e["vs"]} == {"before", "after"}), math.nan)
    return Outcome(answer.get("settled", "open"), est, best)


def main_real(args: argparse.Namespace) -> int:
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"real {args.real} studies, bn_placement preset, {args.epochs} epochs; "
          f"{args.studies} seeds per row")
    for budget in args.budgets:
        for design in DESIGN_NAMES:
            t0 = time.perf_counter()
            outs = [run_real(design, args.real, budget, seed, args.epochs, work)
                    for seed in range(args.studies)]
            states = ", ".join(f"{o.settled} {o.estimate:+.2f}" for o in outs)
            print(f"{budget:6d} trainings {design:>9}: settled "
                  f"{np.mean([o.settled != 'open' for o in outs]):.2f} ({states}); best "
                  f"{np.mean([o.best for o in outs]):.2f} pts; "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=20, help="studies per cell")
    parser.add_argument("--budgets", type=int, nargs="+", default=[60, 120, 200],
                        help="trainings per study")
    parser.add_argument("--diffs", type=float, nargs="+", default=[0.66, 0.3, 0.0],
                        help="planted before - after, points")
    parser.add_argument("--config-noise", type=float, default=CONFIG_NOISE,
                        help="points of noise a config's arms share")
    parser.add_argument("--arm-noise", type=float, default=ARM_NOISE,
                        help="points of noise per arm")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    parser.add_argument("--markdown", type=Path,
                        help="also write the table, with how it was made, as Markdown here")
    parser.add_argument("--real", metavar="DATASET",
                        help="real studies on DATASET (digits, fashion-mnist) instead of "
                             "planted ones")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per real trial")
    parser.add_argument("--work-dir", default="runs/designs", help="where real studies go")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.real:
        return main_real(args)
    preset = load_preset("bn_placement")
    rows = []
    start = time.perf_counter()
    print(f"{'diff':>5} {'budget':>6} {'design':>9} {'settled':>8} {'false diff':>10} "
          f"{'false equiv':>11} {'best value':>10}   (n={args.studies} studies per row; "
          f"margin {MARGIN} pts; noise {args.config_noise} per config, {args.arm_noise} per "
          "arm)")
    for diff in args.diffs:
        truth = planted(diff, args.config_noise)
        for budget in args.budgets:
            for design in DESIGN_NAMES:
                outs = [run_study(design, truth, budget, seed, preset, args.arm_noise)
                        for seed in range(args.studies)]
                settled = np.mean([o.settled != "open" for o in outs])
                false_diff = np.mean([o.settled == "difference" and (
                    diff == 0 or np.sign(o.estimate) != np.sign(diff)) for o in outs])
                false_eq = (float(np.mean([o.settled == "equivalent" for o in outs]))
                            if abs(diff) > MARGIN else None)
                best = float(np.mean([o.best for o in outs]))
                rows.append({"diff": diff, "budget": budget, "design": design,
                             "settled": float(settled), "false_difference": float(false_diff),
                             "false_equivalence": false_eq, "best_value": best,
                             "studies": args.studies})
                fe = "—" if false_eq is None else f"{false_eq:.2f}"
                print(f"{diff:5.2f} {budget:6d} {design:>9} {settled:8.2f} {false_diff:10.2f} "
                      f"{fe:>11} {best:10.2f}", flush=True)
    seconds = time.perf_counter() - start
    print(f"wall time {seconds:.0f} s")
    for line in summary(rows):
        print(line)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(rows, args, seconds))
    return 0


def cheapest(rows: list[dict], diff: float, design: str, share: float = 0.8) -> int | None:
    """The smallest budget (trainings) at which ``share`` of the studies settled."""
    ok = [r["budget"] for r in rows if r["diff"] == diff and r["design"] == design
          and r["settled"] >= share]
    return min(ok) if ok else None


def summary(rows: list[dict]) -> list[str]:
    out = ["trainings for 80% of studies to settle (difference or equivalence):"]
    for diff in sorted({r["diff"] for r in rows}, reverse=True):
        cells = [f"{d} {cheapest(rows, diff, d) or '>' + str(max(r['budget'] for r in rows))}"
                 for d in DESIGN_NAMES]
        out.append(f"  planted {diff:+.2f} pts: " + ", ".join(cells))
    return out


def markdown(rows: list[dict], args: argparse.Namespace, seconds: float) -> str:
    """The page docs/designs.md: the table as measured, and the command that measured it."""
    cmd = "python scripts/compare_designs.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in (("studies", args.studies), ("budgets", args.budgets),
                     ("diffs", args.diffs), ("config_noise", args.config_noise),
                     ("arm_noise", args.arm_noise)))
    lines = [
        "# Study designs compared: which settles its question with fewer trainings",
        "",
        f"Written by `{cmd} --markdown docs/designs.md` ({seconds / 60:.1f} min, "
        f"{time.strftime('%Y-%m-%d')}). Planted `bn_placement` studies (TPE with a 20% "
        f"randomized share, median pruner, {EPOCHS} epochs; noise {args.config_noise} pts "
        f"per config and {args.arm_noise} pts per arm, calibrated on a real paired digits "
        f"study); {args.studies} studies per row; margin {MARGIN} pts; a paired trial "
        "costs two trainings, so at equal budget it has half the trials.",
        "",
        "| planted before - after (pts) | trainings | design | settled | false difference "
        "| false equivalence | best value found (pts) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fe = "—" if r["false_equivalence"] is None else f"{r['false_equivalence']:.2f}"
        lines.append(f"| {r['diff']:+.2f} | {r['budget']} | {r['design']} | "
                     f"{r['settled']:.2f} | {r['false_difference']:.2f} | {fe} | "
                     f"{r['best_value']:.2f} |")
    lines += ["", "```", *summary(rows), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
