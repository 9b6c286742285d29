"""Paired answers on planted truths: verify's twins on seeds, and paired-design studies.

No training: every accuracy is drawn from a planted truth, so each rate below is measured
against what was planted. Two parts:

``verify``: per-seed test accuracies of two twins (a shared per-seed term, a per-twin term,
a planted shift among trainings that learned) where a twin may never learn (chance, 10 %)
on a share of seeds. Each family runs :func:`hpsearch.analysis.seeds.run_looks` as
``hpsearch verify`` does, ``before`` as it did (a failure's accuracy averaged into the
differences), ``after`` with the failures kept apart (:mod:`hpsearch.analysis.discordant`).

``studies``: paired-design studies (every config trained under both arms, pruned together
on the arms' mean by a median rule) whose arm may never learn, and whose difference may
depend on the config's quality (linearly, or not). Each study is analysed by
:func:`hpsearch.analysis.arms.paired_effects`, ``before`` as it was (no chance level:
failures averaged in; pruned configs imputed by the fitted-slope chain) and ``after``
(failures kept apart; each pruned config's own difference carried to the end).

Per row: detection (a difference called where one was planted), false
differences (called where none was planted, or the wrong sign), false equivalences
(equivalent called where the truth is not), and coverage of the 95 % interval::

    python scripts/check_paired.py --reps 200 --out docs/paired.md   # docs/paired.md
    python scripts/check_paired.py --part verify --reps 400
    python scripts/check_paired.py --part studies --reps 100
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.analysis import gate, paired_effects, plan_looks, run_looks

ALPHA, MARGIN, CHANCE = 0.05, 0.5, 0.1


# ---------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyCase:
    name: str
    shift: float        # alternative - baseline among seeds where both learned, points
    fail_base: float    # per-seed probability that the twin never learns
    fail_alt: float
    sd: float = 0.4     # per-twin noise, points
    family: int = 1
    n_max: int = 16

    @property
    def truth(self) -> str:
        """What a correct answer says: a difference in accuracy or in failures, or neither."""
        if self.fail_base != self.fail_alt or abs(self.shift) > MARGIN:
            return "difference"
        return "equivalent" if abs(self.shift) < MARGIN else "open"


VERIFY_CASES = (
    VerifyCase("null, no failures", 0.0, 0.0, 0.0),
    VerifyCase("null, both fail 10%", 0.0, 0.1, 0.1),
    VerifyCase("alt fails 1 seed in 20", 0.0, 0.0, 0.05),
    VerifyCase("alt fails 1 in 20, 3 rows", 0.0, 0.0, 0.05, family=3),
    VerifyCase("alt fails 30%", 0.0, 0.0, 0.3, n_max=24),
    VerifyCase("+1 pt, no failures", 1.0, 0.0, 0.0),
    VerifyCase("+1 pt, alt fails 10%", 1.0, 0.0, 0.1),
)


def _seeds(case: VerifyCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, alternative) test accuracies in points, one row per comparison."""
    shape = (case.family, case.n_max)
    common = 97 + rng.normal(0, 0.5, shape)
    base = common + rng.normal(0, case.sd / math.sqrt(2), shape)
    alt = common + case.shift + rng.normal(0, case.sd / math.sqrt(2), shape)
    at_chance = 100 * CHANCE + rng.normal(0, 0.3, shape)
    base = np.where(rng.random(shape) < case.fail_base, at_chance, base)
    alt = np.where(rng.random(shape) < case.fail_alt, at_chance, alt)
    return base, alt


def verify_row(case: VerifyCase, reps: int, *, failures: bool, seed: int = 0) -> dict:
    """Rates over ``reps`` families of ``case``; ``failures`` False is verify before."""
    from hpsearch.analysis import never_learned

    rng = np.random.default_rng([seed, 7])
    plan = plan_looks(case.n_max, ALPHA / case.family)
    states, covered, seeds = [], [], []
    for _ in range(reps):
        base, alt = _seeds(case, rng)
        d = np.round(alt - base, 10)
        if failures:
            fb, fa = (never_learned(x / 100, CHANCE) for x in (base, alt))
            rows = [np.column_stack([d[i], fb[i], fa[i]]) for i in range(case.family)]
        else:
            rows = [d[i] for i in range(case.family)]
        decisions = run_looks(case.family, plan,
                              lambda active, n, rows=rows: [rows[i][:n] for i in active],
                              alpha=ALPHA, margin=MARGIN)
        states += [x.settled for x in decisions]
        covered += [x.ci_low <= case.shift <= x.ci_high for x in decisions]
        seeds += [x.n for x in decisions]
    return _rates(states, case.truth, case.shift, covered) | {"seeds": float(np.mean(seeds))}


# ---------------------------------------------------------------------------- design


@dataclass(frozen=True)
class DesignCase:
    name: str
    diff: float         # a - b at the end of training, averaged over configs that learn
    fail_b: float       # share of configs whose arm b never learns
    link: str = "none"  # how the difference depends on config quality q ~ N(0, 1)
    configs: int = 24
    epochs: int = 4
    prune: bool = True
    emerging: bool = False  # the difference grows over training (half of it at epoch 1)

    @property
    def truth(self) -> str:
        if self.fail_b > 0 or abs(self.diff) > MARGIN:
            return "difference"
        return "equivalent"


def _link(link: str, q: np.ndarray) -> np.ndarray:
    """The difference's dependence on quality, centred (mean 0 over q ~ N(0, 1))."""
    if link == "linear":
        return 0.5 * q
    if link == "quadratic":      # larger in bad and in good configs: (q^2 - 1) / 2
        return 0.5 * (q ** 2 - 1)
    if link == "bad_configs":    # the effect lives in configs the pruner stops
        return 1.2 * (np.where(q < 0, 1.0, 0.0) - 0.5)
    return np.zeros_like(q)


DESIGN_CASES = (
    DesignCase("null, no failures", 0.0, 0.0),
    DesignCase("0.6 pt, no failures", 0.6, 0.0),
    DesignCase("0.6 pt, b fails 8%, 5 cfgs", 0.6, 0.08, configs=5, prune=False),
    DesignCase("0.6 pt, b fails 8%, 10 cfgs", 0.6, 0.08, configs=10, prune=False),
    DesignCase("0.6 pt, b fails 8%, 24 cfgs", 0.6, 0.08, configs=24),
    DesignCase("0.6 pt, linear link", 0.6, 0.0, "linear", configs=60),
    DesignCase("0.6 pt, quadratic link", 0.6, 0.0, "quadratic", configs=60),
    DesignCase("0.6 pt, bad-config link", 0.6, 0.0, "bad_configs", configs=60),
    DesignCase("0.6 pt emerging, linear link", 0.6, 0.0, "linear", configs=60,
               emerging=True),
    DesignCase("0.6 pt emerging, bad-config link", 0.6, 0.0, "bad_configs", configs=60,
               emerging=True),
)


def design_study(case: DesignCase, rng: np.random.Generator) -> list:
    """Paired trials whose arms' curves rise to ``95 + 2q +- diff/2`` (plus the link)."""
    q = rng.normal(0, 1, case.configs)
    d_end = case.diff + _link(case.link, q) + rng.normal(0, 0.4, case.configs)
    fails = rng.random(case.configs) < case.fail_b
    rise = np.linspace(-4.0, 0.0, case.epochs)     # the curve's approach to its end
    share = np.linspace(0.5 if case.emerging else 1.0, 1.0, case.epochs)
    trials, means = [], []
    for i in range(case.configs):
        end = 95 + 2 * q[i]
        a = end + share * d_end[i] / 2 + rise * (1 + 0.3 * rng.random()) + rng.normal(0, 0.3,
                                                                            case.epochs)
        b = end - share * d_end[i] / 2 + rise * (1 + 0.3 * rng.random()) + rng.normal(0, 0.3,
                                                                            case.epochs)
        if fails[i]:
            b = 100 * CHANCE + rng.normal(0, 0.3, case.epochs)
        means.append((a + b) / 2)
        trials.append((a, b))
    out = []
    for i, (a, b) in enumerate(trials):
        stop = case.epochs
        if case.prune:   # the median rule on the arms' mean, at each epoch after the first
            for e in range(1, case.epochs - 1):
                if means[i][e] < np.median([m[e] for m in means]):
                    stop = e + 1
                    break
        state = TrialState.COMPLETE if stop == case.epochs else TrialState.PRUNED
        out.append(optuna.trial.create_trial(
            state=state, value=float((a[-1] + b[-1]) / 200) if stop == case.epochs else None,
            intermediate_values={e + 1: float((a[e] + b[e]) / 200) for e in range(stop)},
            user_attrs={schema.DESIGN: {"design": "paired", "question": "bn_placement",
                                      "param": "batch_norm", "arms": ["before", "after"]},
                        schema.ARMS: {"before": {"val_acc": list(a[:stop] / 100)},
                                    "after": {"val_acc": list(b[:stop] / 100)}}}))
    return out


def design_row(case: DesignCase, reps: int, *, failures: bool, seed: int = 0) -> dict:
    from scipy import stats as sps

    rng = np.random.default_rng([seed, 9])
    states, covered, est = [], [], []
    for r in range(reps):
        fx = paired_effects(design_study(case, rng), epochs=case.epochs, seed=r,
                            n_bootstrap=100, chance=CHANCE if failures else None,
                            fit_slope=not failures)
        if fx is None:
            states.append("open")
            covered.append(False)
            continue
        e, se = fx.contrast("before", "after")
        t = float(sps.t.ppf(1 - ALPHA / 2, max(fx.n - 1, 1)))
        lo, hi = e - t * se, e + t * se
        state = ("difference" if lo > 0 or hi < 0 else
                 "equivalent" if -MARGIN < lo and hi < MARGIN else "open")
        f = fx.failures
        if f is not None:   # the failures' own state; "equivalent" needs both (gate)
            fs = f.settle(ALPHA)
            state = "difference" if fs == "difference" else gate(state, fs)
        states.append(state)
        covered.append(bool(lo <= case.diff <= hi))
        est.append(e)
    return _rates(states, case.truth, case.diff, covered) | {
        "bias": float(np.mean(est)) - case.diff if est else math.nan}


# ---------------------------------------------------------------------------- rates


def _rates(states: list[str], truth: str, planted: float, covered: list[bool]) -> dict:
    n = len(states)
    diff = sum(s == "difference" for s in states) / n
    eq = sum(s == "equivalent" for s in states) / n
    return {"n": n, "difference": diff, "equivalent": eq,
            "detection": diff if truth == "difference" else math.nan,
            "false_difference": diff if truth != "difference" else math.nan,
            "false_equivalence": eq if truth != "equivalent" else math.nan,
            "equivalence_found": eq if truth == "equivalent" else math.nan,
            "coverage": float(np.mean(covered))}


def _fmt(x: float) -> str:
    return "-" if isinstance(x, float) and math.isnan(x) else f"{x:.0%}" if x <= 1 else f"{x}"


def table(title: str, cases: tuple, row: Callable[..., dict], reps: int) -> list[str]:
    out = [f"## {title} ({reps} replicates per row; before -> after)", "",
           "| case | truth | detection | false difference | equivalence found | "
           "false equivalence | coverage | extra |", "|---|---|---|---|---|---|---|---|"]
    for case in cases:
        t0 = time.perf_counter()
        b, a = row(case, reps, failures=False), row(case, reps, failures=True)
        extra = (f"bias {b['bias']:+.2f} -> {a['bias']:+.2f} pts" if "bias" in a
                 else f"seeds {b['seeds']:.1f} -> {a['seeds']:.1f}")
        cells = [f"{_fmt(b[k])} -> {_fmt(a[k])}" for k in
                 ("detection", "false_difference", "equivalence_found", "false_equivalence",
                 "coverage")]
        out.append(f"| {case.name} | {case.truth} | " + " | ".join(cells) + f" | {extra} |")
        print(out[-1], f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("verify", "studies", "both"), default="both")
    ap.add_argument("--reps", type=int, default=None,
                    help="replicates per row (default: 1000 verify, 200 design)")
    ap.add_argument("--out", type=Path, metavar="PATH",
                    help="also write the tables to PATH (docs/paired.md), with this command")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lines: list[str] = []
    if args.part in ("verify", "both"):
        lines += table("verify (twins on seeds)", VERIFY_CASES, verify_row, args.reps or 1000)
    if args.part in ("studies", "both"):
        lines += ["", *table("paired-design studies", DESIGN_CASES, design_row,
                             args.reps or 200)]
    print("\n".join(lines))
    if args.out is not None:
        command = "python scripts/check_paired.py " + " ".join(argv or sys.argv[1:])
        args.out.write_text("\n".join([
            "# Paired answers on planted truths", "",
            "[Back to the method](method.md). Written by `scripts/check_paired.py` (its "
            "docstring says what is planted); regenerate with:", "",
            f"    {command.strip()}", "",
            "*before*: a failure to learn averaged into the differences, and (studies) the "
            "chain that fitted the pruned configs' slope; *after*: failures kept apart and "
            "each pruned config's own difference carried to the end.", "", *lines, ""]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
