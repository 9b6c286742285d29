"""Reproduce every seed experiment as a preset study and write docs/findings.md.

For each preset in studies/ (one per seed notebook): run the study, analyse it (the same
analysis as `hpsearch report --format json`), run `hpsearch verify` for the preset's
question, and write one row per question: the seed's claim, the study's verdict with its
effect size, CI and n, the paired re-run's answer, the dataset, the budget and the command
that reproduces the row. Nothing in the output is typed by hand.

    python scripts/reproduce_seeds.py                      # full Fashion-MNIST, 10 epochs: hours
    python scripts/reproduce_seeds.py --studies-only       # the studies alone (resumable)
    python scripts/reproduce_seeds.py --dataset mnist --trials 100 --epochs 10 --seeds 10
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("bn_placement", "batchnorm_vs_none", "dense_bn_activation", "dropout_activation",
           "cnn_regularization")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--trials", type=int, default=24, help="finished trials per preset")
    ap.add_argument("--epochs", type=int, default=10,
                    help="epochs per trial and per re-run (the seeds trained 10)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="paired seeds for verify (default: verify's, the least its family "
                         "can reach significance with and at least 10)")
    ap.add_argument("--val-size", type=int, default=10_000)
    ap.add_argument("--train-size", type=int, default=0,
                    help="seeded training subset per trial (0 = the whole training split)")
    ap.add_argument("--studies-only", action="store_true",
                    help="run (or resume) the preset studies and stop before the answers")
    ap.add_argument("--as-they-are", action="store_true",
                    help="answer from the stored studies and verify results as they are: "
                         "no training (presets with no study yet are listed as not run)")
    ap.add_argument("--no-new-verify", action="store_true",
                    help="answer from the studies as they are: verify only what a verify "
                         "run already stored (a study's verify is resumable: run it alone)")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "seeds")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "findings.md")
    return ap.parse_args(argv)


def _storage(name: str, args: argparse.Namespace) -> str:
    return str(args.work_dir / f"{name}-{args.dataset}.db")


def run_study(name: str, args: argparse.Namespace) -> float:
    """Run (or resume) one preset's study; returns its wall time in seconds."""
    from hpsearch.optimize import optimize
    from hpsearch.settings import Settings
    from hpsearch.space.presets import load_preset

    settings = Settings(dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                        trials=args.trials, storage=_storage(name, args), device=args.device,
                        jobs=args.jobs, val_size=args.val_size, study_name=name,
                        train_size=args.train_size or None)
    t0 = time.perf_counter()
    optimize(load_preset(name), settings, progress=False)
    return time.perf_counter() - t0


def answer(name: str, args: argparse.Namespace, study_seconds: float) -> dict[str, Any]:
    """Analysis (as `report --format json`) and verify for one preset's finished study."""
    from hpsearch.analysis import analyze
    from hpsearch.space.presets import load_preset
    from hpsearch.storage.open import load_study
    from hpsearch.verify import verify

    preset = load_preset(name)
    storage = _storage(name, args)
    study = load_study(storage, name)
    analysis = analyze(study).to_dict()
    study_seconds = max(study_seconds, _span(storage, name))  # however many runs it took
    t0 = time.perf_counter()
    question = preset.question or "bn_placement"
    verified = None
    if not args.no_new_verify or f"verify:{question}" in study.user_attrs:
        verified = verify(storage, question, seeds=args.seeds, study_name=name,
                          epochs=args.epochs, device=args.device).question_dict(question)
    return {"preset": name, "question": preset.question, "storage": storage,
            "analysis": analysis, "verify": verified, "study_seconds": study_seconds,
            "verify_seconds": max(time.perf_counter() - t0, _span(storage, f"{name}:verify"))}


def _span(storage: str, study_name: str) -> float:
    """Seconds from the first trial's start to the last one's end (0: no such study)."""
    import optuna

    try:
        trials = optuna.load_study(study_name=study_name, storage=f"sqlite:///{storage}").trials
    except KeyError:
        return 0.0
    done = [t for t in trials if t.datetime_start and t.datetime_complete]
    if not done:
        return 0.0
    return (max(t.datetime_complete for t in done)
            - min(t.datetime_start for t in done)).total_seconds()


def claim_row(r: dict[str, Any]) -> dict[str, Any]:
    """One seed claim, machine-readable: verify's answer where it settled the question,
    else the study's (``source`` says which); both kept in full."""
    q = r["question"]
    a = _answer(r["analysis"], q) or {}
    head = a.get("headline") or {}
    study = {"settled": a.get("settled", "open"), "estimate": head.get("diff"),
             "ci_low": head.get("ci_low"), "ci_high": head.get("ci_high"),
             "margin": a.get("margin"), "verdict": a.get("verdict"),
             "needed": a.get("needed") or (a.get("verdict") if a.get("status") ==
                                           "too_few_trials" else None)}
    v = r.get("verify") or {}
    rows = v.get("rows") or []
    verify = None
    if rows:
        top = max(rows, key=lambda x: abs(x.get("shift") or 0.0))
        verify = {"settled": v.get("settled", "open"), "estimate": top.get("shift"),
                  "ci_low": top.get("ci_low"), "ci_high": top.get("ci_high"),
                  "margin": v.get("margin"), "trainings": v.get("trainings"),
                  "trainings_fixed": v.get("trainings_fixed"), "seeds": v.get("seeds")}
    source = "verify" if verify and verify["settled"] != "open" else "study"
    chosen = verify if source == "verify" else study
    needed = None
    if chosen["settled"] == "open":
        needed = "; ".join(x for x in (
            study["needed"],
            None if verify else f"verify not run yet: `hpsearch verify STORAGE --question "
                                f"{q}` (at most 16 seeds per twin, stopping once settled)")
            if x)
    return {"question": q, "preset": r["preset"], "source": source,
            "settled": chosen["settled"], "estimate": chosen["estimate"],
            "ci_low": chosen["ci_low"], "ci_high": chosen["ci_high"],
            "margin": chosen["margin"], "needed": needed, "study": study, "verify": verify}


def _answer(analysis: dict[str, Any], question: str) -> dict[str, Any] | None:
    return next((a for a in analysis["answers"] if a["question"] == question), None)


def _verify_text(v: dict[str, Any] | None, name: str, q: str) -> str:
    if not v:
        return (f"not run yet: `hpsearch verify runs/seeds/{name}-*.db --question {q}` "
                "(at most 16 seeds per twin, stopping once settled; resumable)")
    parts = []
    for r in v["rows"]:
        parts.append(f"{r.get('settled', 'open')}: {r['alternative']} vs {r['baseline']}: "
                     f"{r['shift']:+.2f} pts [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], "
                     f"n={r['n']} seeds")
    done = v.get("trainings")
    if done is not None:
        parts.append(f"{done} trainings (fixed plan: {v.get('trainings_fixed')})")
    return "<br>".join(parts) or "—"


def _preset_question(name: str) -> str:
    from hpsearch.space.presets import load_preset

    return load_preset(name).question or "bn_placement"


def _budget_text(name: str, args: argparse.Namespace) -> str:
    """What settling a preset's row costs: its study and verify's most."""
    from hpsearch.optimize.designs import study_arms
    from hpsearch.space.presets import load_preset

    arms = study_arms(load_preset(name), None)
    k = len(arms.values) if arms is not None and arms.design == "paired" else 1
    return (f"{args.trials} configs x {k} arms x {args.epochs} epochs "
            f"({args.trials * k} trainings, fewer when pruned), then verify: at most 16 "
            "seeds per twin, stopping once settled; `python scripts/reproduce_seeds.py "
            f"--presets {name}` (resumable)")


def not_run_row(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"question": _preset_question(name), "preset": name, "source": "not run",
            "settled": "open", "estimate": None, "ci_low": None, "ci_high": None,
            "margin": 0.5, "needed": _budget_text(name, args), "study": None,
            "verify": None}


def _wall(results: list[dict[str, Any]]) -> float:
    return sum(r["study_seconds"] + r["verify_seconds"] for r in results)


def _seeds_text(results: list[dict[str, Any]]) -> str:
    seeds = sorted({r["verify"].get("seeds") for r in results if r.get("verify")} - {None})
    return "/".join(str(s) for s in seeds) or "no"


def render(results: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    """docs/findings.md from the results (every figure comes from `results`)."""
    import torch

    from hpsearch import __version__
    from hpsearch.optimize.study import git_hash
    from hpsearch.space.questions import QUESTION_BY_ID

    lines = [
        "# Findings: the seeds' claims, re-tested",
        "",
        f"Generated by `scripts/reproduce_seeds.py` on {time.strftime('%Y-%m-%d')} "
        f"(hpsearch {__version__}, git {git_hash()}, torch {torch.__version__}, "
        f"{platform.machine()} {platform.processor() or ''}, device {args.device}); "
        f"{_wall(results) / 60:.1f} minutes of studies and verify runs in all (2 CPU cores "
        "unless the device says otherwise).",
        "",
        f"Dataset **{args.dataset}** (training on a seeded subset of "
        f"{args.train_size or 'all'} examples; validation: {args.val_size} held out of the "
        f"training set; test set whole); budget per preset: **up to {args.trials} trials "
        f"x {args.epochs} epochs** (each row says its n), the preset's question by the "
        "paired design (every config trained under each choice on one seed); verify: best "
        f"config and its twins, **{_seeds_text(results)} paired seeds**, test set, seeds "
        "added in looks until settled. Every answer is a difference, an equivalence within "
        "the margin, or open with what would settle it (docs/method.md).",
        "",
        "Reproduce a row: `python scripts/reproduce_seeds.py --dataset "
        f"{args.dataset} --trials {args.trials} --epochs {args.epochs}"
        + (f" --seeds {args.seeds}" if args.seeds else "")
        + f" --train-size {args.train_size} --presets PRESET`.",
        "",
        "| question | preset | the seed's claim | study verdict (n trials) | verify: paired "
        "re-runs on the test set | best val acc |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        q = r["question"]
        a = _answer(r["analysis"], q)
        verdict = a["verdict"] if a else "not analysed"
        counts = r["analysis"]["n_trials"]
        n = (sum(c["n"] for c in a["choices"]) if a and a["choices"]
             else counts.get("COMPLETE", 0) + counts.get("PRUNED", 0))
        best = r["analysis"].get("best_value")
        lines.append(
            f"| {q} | `{r['preset']}` | {QUESTION_BY_ID[q].seed_claim} | {verdict} (n={n}) | "
            f"{_verify_text(r['verify'], r['preset'], q)} | "
            f"{'—' if best is None else f'{best:.4f}'} |")
    for name in getattr(args, "not_run", []):
        q = _preset_question(name)
        lines.append(f"| {q} | `{name}` | {QUESTION_BY_ID[q].seed_claim} | not run yet: "
                     f"{_budget_text(name, args)} | — | — |")
    lines += ["", "## Every question answered by each study", ""]
    for r in results:
        lines.append(f"### `{r['preset']}` ({r['study_seconds'] / 60:.1f} min study, "
                     f"{r['verify_seconds'] / 60:.1f} min verify)")
        lines.append("")
        for a in r["analysis"]["answers"]:
            if a["status"] != "not_sampled":
                lines.append(f"- **{a['question']}**: {a['verdict']}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # Every study first, then the answers: a study interrupted half-way resumes on re-run.
    seconds = {}
    if args.as_they_are:
        args.no_new_verify = True
        missing = [n for n in args.presets if not Path(_storage(n, args)).exists()]
        args.presets = [n for n in args.presets if n not in missing]
        args.not_run = missing
    for name in args.presets:
        print(f"[{time.strftime('%H:%M:%S')}] study {name} ...", file=sys.stderr, flush=True)
        seconds[name] = 0.0 if args.as_they_are else run_study(name, args)
        print(f"[{time.strftime('%H:%M:%S')}] study {name}: {seconds[name] / 60:.1f} min",
              file=sys.stderr, flush=True)
    if args.studies_only:
        return 0
    results = []
    for name in args.presets:
        print(f"[{time.strftime('%H:%M:%S')}] verify {name} ...", file=sys.stderr, flush=True)
        results.append(answer(name, args, seconds[name]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, args, time.perf_counter() - start))
    (args.work_dir / "findings-full.json").write_text(json.dumps(results, indent=1,
                                                                  default=str))
    args.out.with_suffix(".json").write_text(json.dumps(
        [claim_row(r) for r in results]
        + [not_run_row(n, args) for n in getattr(args, "not_run", [])],
        indent=1, default=str) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
