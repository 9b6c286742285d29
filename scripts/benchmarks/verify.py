"""``hpsearch verify`` as a user runs it: 8 against 32 seeds, fused and one by one (row
verify_seeds)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Context


def row_verify_seeds(ctx: Context) -> dict[str, Any]:
    """``hpsearch verify`` in a fresh process on a digits study (the README's quick start,
    smaller): one question, 8 seeds against 32, fused (the default) and one by one
    (``--fuse 1``, what verify did before). Whole-process wall time, start-up included."""
    small, big = (6, 12) if ctx.args.quick else (8, 32)  # 6: the least one row can use
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "v.db")
        run = [sys.executable, "-m", "hpsearch"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([*run, "optimize", "--dataset", "digits", "--storage", db, "-q",
                        "--trials", "4" if ctx.args.quick else "12", "--epochs", "3"],
                       check=True, capture_output=True, env=env)
        secs: dict[str, dict[int, list[float]]] = {"fused": {}, "one by one": {}}
        for _ in range(ctx.args.reps):
            for how, extra in (("fused", []), ("one by one", ["--fuse", "1"])):
                for n in (small, big):
                    args = [*run, "verify", db, "--question", "batch_norm", "--seeds", str(n),
                            "-q", *extra]
                    start = time.perf_counter()
                    subprocess.run(args, check=True, capture_output=True, env=env)
                    secs[how].setdefault(n, []).append(time.perf_counter() - start)
    ratio = {how: statistics.median(b / s for s, b in zip(v[small], v[big], strict=True))
             for how, v in secs.items()}
    med = {how: {n: statistics.median(x) for n, x in v.items()} for how, v in secs.items()}
    return {
        "seeds": [small, big], "ratio": ratio, "pass": ratio["fused"] <= 2.0,
        "measured": "; ".join(
            f"{how}: {small} seeds {med[how][small]:.1f} s ({med[how][small] / small:.2f} "
            f"s/seed), {big} seeds {med[how][big]:.1f} s ({med[how][big] / big:.2f} s/seed), "
            f"{ratio[how]:.2f}x" for how in secs),
        "raw": {how: {str(n): x for n, x in v.items()} for how, v in secs.items()},
    }
