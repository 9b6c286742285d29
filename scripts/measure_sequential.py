"""Error rates and savings of verify's sequential looks on planted paired differences.

    .venv/bin/python scripts/measure_sequential.py [--reps 2000]

No training: per-seed differences (test-accuracy points) are drawn with a planted shift and
fed through :func:`hpsearch.analysis.seeds.sequential.run_looks`, as verify feeds its trainings.
"""

from __future__ import annotations

import argparse

import numpy as np

from hpsearch.analysis import plan_looks, run_looks
from hpsearch.settings import MARGIN

CASES = [  # (what, planted shift, sd of the per-seed difference, family size)
    ("null, sd 0.8", 0.0, 0.8, 1),
    ("null, sd 0.8, family 4", 0.0, 0.8, 4),
    ("null, sd 0.1 (equivalence true)", 0.0, 0.1, 1),
    ("shift 0.6 > margin, sd 0.25", 0.6, 0.25, 1),
    ("shift 0.55 > margin, sd 0.15, family 4", 0.55, 0.15, 4),
    ("shift -0.6 > margin, sd 1.0", -0.6, 1.0, 1),
    ("shift 2.0 (large), sd 0.5", 2.0, 0.5, 1),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000, help="comparisons per case")
    ap.add_argument("--seeds", type=int, default=16, help="the most seeds per comparison")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"margin {MARGIN} pts, alpha 0.05, at most {args.seeds} seeds, "
          f"{args.reps} comparisons per case")
    print(f"{'case':42} {'looks':12} {'difference':>10} {'equivalent':>10} {'open':>6} "
          f"{'seeds/fixed':>11}")
    for what, shift, sd, family in CASES:
        plan = plan_looks(args.seeds, 0.05 / family)
        states = {"difference": 0, "equivalent": 0, "open": 0}
        seeds = 0
        for _ in range(args.reps // family):
            data = shift + rng.normal(0, sd, (family, args.seeds))
            for d in run_looks(family, plan, lambda rows, n, x=data: [x[i, :n] for i in rows],
                               alpha=0.05, margin=MARGIN):
                states[d.settled] += 1
                seeds += d.n
        total = sum(states.values())
        looks = ",".join(map(str, plan.looks))
        print(f"{what:42} {looks:12} " + " ".join(
            f"{states[k] / total:>10.3f}" for k in ("difference", "equivalent"))
            + f" {states['open'] / total:>6.3f} {seeds / (total * args.seeds):>11.2f}")


if __name__ == "__main__":
    main()
