"""Time ``hpsearch report`` on a planted 1,000-trial study (the bar: < 10 s on 2 cores).

    python scripts/bench_report_render.py [--trials 1000] [--storage /tmp/bench-report.db]

The study is planted once (``tests/test_report.py:plant_study``: no training) and kept at
``--storage`` for the next run; a ``.db`` file takes a few minutes to plant on a busy
machine, a ``.log`` journal seconds. Prints the wall time of the whole command (a fresh
process: imports included) for each format, then the in-process split between loading,
analysis and rendering.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--storage", default=str(Path(tempfile.gettempdir()) / "bench-report.db"))
    ap.add_argument("--evaluator", default="ped_anova")
    args = ap.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from test_report import plant_study  # noqa: E402  (tests/ is on sys.path above)

    from hpsearch.analysis import analyze
    from hpsearch.report import clean, header, trial_rows
    from hpsearch.report_html import render
    from hpsearch.storage import load_study

    storage = args.storage
    if not Path(storage).exists():
        t = time.perf_counter()
        plant_study(storage, args.trials, name="bench")
        print(f"planted {args.trials} trials in {storage}: {time.perf_counter() - t:.1f} s")
    n = len(load_study(storage).trials)

    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("html", "md", "json"):
            out = Path(tmp) / f"report.{fmt}"
            cmd = [sys.executable, "-m", "hpsearch", "report", storage, "--format", fmt,
                   "--out", str(out), "--evaluator", args.evaluator]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
            print(f"hpsearch report --format {fmt:4} ({n} trials): {wall:5.2f} s, "
                  f"{out.stat().st_size / 1e3:.0f} kB")

    t0 = time.perf_counter()
    study = load_study(storage)
    trials = study.get_trials(deepcopy=False)
    t1 = time.perf_counter()
    analysis = analyze(study, evaluators=(args.evaluator,)).to_dict()
    t2 = time.perf_counter()
    data = clean({"schema": 1, "generated": "", "header": header(study, storage, analysis),
                  "analysis": analysis, "verify": {}, "best": None})
    page = render(data, trial_rows(trials))
    t3 = time.perf_counter()
    print(f"in process: load {t1 - t0:.2f} s, analyze {t2 - t1:.2f} s, "
          f"render html {t3 - t2:.2f} s ({len(page) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
