"""Reproduce every seed experiment as a preset study and write docs/findings.md.

For each preset in studies/ (one per seed notebook):

1. the **tuned** study: the preset searched (its question assigned by the paired design);
2. the **seed's config** (`<preset>-seed`, same database): the preset with its ``[seed]``
   values fixed, as the seed ran it where the seed says, trained under each choice;
3. the answers: the study's analysis (as `hpsearch report --format json`), then `hpsearch
   verify` of the question at the tuned best config and at the seed's config, side by side:
   whether an effect survives tuning is itself a finding.

Then every claim the seeds make is one row (docs/findings.json; the page is rendered from it):
the built-in question a preset is for, and the seeds' other claims (the effect of dropout over
training, the interactions, BN in train vs eval mode, per-class accuracy, ...). A row is
settled (a difference or an equivalence) or open with what would settle it and why that was
not spent. Nothing in the output is typed by hand.

The evidence is part of the repository: the studies and verify's stored trainings live in
``docs/seeds/*.db`` (committed). Every run resumes from them, on any machine:

    python scripts/reproduce_seeds.py                      # full Fashion-MNIST, 10 epochs: hours
    python scripts/reproduce_seeds.py --studies-only       # the studies alone (resumable)
    python scripts/reproduce_seeds.py --as-they-are        # the page from the committed evidence
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpsearch import schema
from hpsearch.analysis import MIN_EFFECT, repeated_draws, settle
from hpsearch.text import param_value

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("bn_placement", "batchnorm_vs_none", "dense_bn_activation", "dropout_activation",
           "cnn_regularization")
EVIDENCE = ROOT / "docs" / "seeds"
# best --retrain's seeds: 6 is the least a paired signed-rank test (BN's eval vs train mode,
# one model per seed) reaches 0.05 with.
BEST_SEEDS = 6
# "Dropout may hurt at few epochs and pay with more": verify's twins trained for EARLY_EPOCHS
# and for the page's epochs on the same seeds; the change is the per-seed difference of the
# two effects. Both answers are kept in the study user attr OVER_EPOCHS + question (verify's
# own attr holds its last run only).
EARLY_EPOCHS = 2
# The seed study's user attr: the tuned trial whose params its config took where the seed is
# silent (a preset with seed_rest = "tuned").
SEED_FROM = "seeds:tuned_from"
OVER_EPOCHS = "seeds:over_epochs:"


@dataclass(frozen=True)
class Claim:
    """One claim a seed notebook makes, and where the evidence for it is.

    ``kind``: "question" (a built-in question: the study's answer and verify at the tuned
    best and at the seed's config), "interaction" (the study's interaction answer and
    verify's factorial twins), "over_epochs" (the question's effect at the first analysed
    epoch and at the end), "best" (``hpsearch best --retrain``: ``part`` is ``bn_modes`` or
    ``per_class``), "bias" (the best config with and without a bias before each BN, trained
    as twins: :mod:`hpsearch.bias`; hpsearch builds those layers without one).

    ``at``: the config whose verify answers a "question" claim. "best" (the tuned best; the
    study's answer where it is open); "seed" for a claim about a value only the seed's config
    has (weight decay 0.1: the study samples the strength, so neither it nor the tuned best
    tests 0.1). ``focus``: the two choices the claim compares, where the question has more
    (none vs l2 of weight_penalty's four): the row is that comparison's, and verify where
    the claim is answered compares every choice with the first (``verify --baseline``),
    not with the config's own (at the seed's config that was l1, which made no none-vs-l2
    comparison). ``says``: the choice the claim says wins and the one it says loses ("on"
    for any of a question's choices but its "off" one, as BN before or after against none),
    where it names them: the answer then says whether the evidence goes the claim's way.
    """

    seed: str
    text: str
    preset: str
    kind: str
    id: str = ""
    part: str = ""
    at: str = "best"
    focus: tuple[str, ...] = ()
    says: tuple[str, str] | tuple[()] = ()


CLAIMS: tuple[Claim, ...] = (
    Claim("000", "BN before the activation did better than after", "bn_placement", "question",
          "bn_placement", says=("before", "after")),
    Claim("001", "Dense -> BN -> act beats Dense -> act -> BN (Adam, 256-128-64)",
          "dense_bn_activation", "question", "bn_placement", says=("before", "after")),
    Claim("002", "BN 97.8% vs none 94.1% after 10 epochs of SGD", "batchnorm_vs_none",
          "question", "batch_norm", says=("on", "off")),
    # The best BN model: bn_placement's best has batch norm by construction (batchnorm_vs_none's
    # best may have none, and then neither claim is about it).
    Claim("002", "a BN model must be evaluated in eval mode (running statistics)",
          "bn_placement", "best", part="bn_modes"),
    Claim("002", "per-class accuracy of the best BN model", "bn_placement", "best",
          part="per_class"),
    Claim("002", "a Linear layer followed by BN needs no bias", "bn_placement", "bias",
          "bias"),
    Claim("003", "ReLU + dropout beats sigmoid + dropout", "dropout_activation", "question",
          "activation", says=("relu", "sigmoid")),
    Claim("003", "dropout may hurt at few epochs and pay with more", "dropout_activation",
          "over_epochs", "dropout"),
    Claim("003", "dropout goes well with ReLU (and not with sigmoid)", "dropout_activation",
          "interaction", "dropout_x_activation", says=("relu", "sigmoid")),
    Claim("004", "weight_decay = 0.1 destroyed accuracy", "cnn_regularization", "question",
          "weight_penalty", at="seed", focus=("none", "l2"), says=("none", "l2")),
    Claim("004", "He init for ReLU", "cnn_regularization", "interaction", "init_x_activation"),
    Claim("004", "schedulers compared", "cnn_regularization", "question", "scheduler"),
    Claim("004", "optimizers compared", "cnn_regularization", "question", "optimizer"),
    Claim("004", "flip is wrong for digits", "cnn_regularization", "question", "augmentation"),
    Claim("004", "input normalization compared", "cnn_regularization", "question",
          "input_norm"),
)


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
                         "no training")
    ap.add_argument("--from-evidence", type=Path, metavar="JSON",
                    help="the page from a findings-full.json an earlier run wrote (the "
                         "evidence read from the databases), without opening them")
    ap.add_argument("--no-new-verify", action="store_true",
                    help="answer from the studies as they are: verify only what a verify "
                         "run already stored (a study's verify is resumable: run it alone)")
    ap.add_argument("--long-epochs", type=int, default=None,
                    help="the longest verify of an over-training claim (default: the "
                         "preset's own epochs, the seed's length, where it exceeds --epochs; "
                         "0: none)")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--work-dir", type=Path, default=EVIDENCE,
                    help="where the studies live (default: the committed docs/seeds/)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "findings.md")
    return ap.parse_args(argv)


def storage_of(name: str, args: argparse.Namespace) -> str:
    return str(args.work_dir / f"{name}-{args.dataset}.db")


def _shown(path: str) -> str:
    """A storage path as a fresh clone's command line would give it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


# ------------------------------------------------------------------------------ the runs


def run_study(name: str, args: argparse.Namespace, *, at_seed: bool = False) -> float:
    """Run (or resume) one preset's study, or its seed's config; returns its wall seconds."""
    from hpsearch.optimize import optimize
    from hpsearch.settings import Settings
    from hpsearch.space import load_preset

    preset = load_preset(name)
    tuned = None
    if at_seed:
        if not preset.seed:
            return 0.0
        made = _study(storage_of(name, args), f"{name}-seed")
        # Stopped before its one trial finished, a study made from the tuned best has not
        # recorded which trial yet: made again from the best.
        fresh = made is None or (SEED_FROM not in made.user_attrs and not any(
            t.state.name == "COMPLETE" for t in made.get_trials(deepcopy=False)))
        if preset.seed_rest == "tuned" and fresh:  # from the tuned best, once made
            tuned = _study(storage_of(name, args), name).best_trial
        elif preset.seed_rest == "tuned":  # made: resumed with the config it was made with
            if SEED_FROM not in made.user_attrs:
                raise SystemExit(f"{name}-seed in {storage_of(name, args)} was made with the "
                                 "unstated params drawn, and the preset now takes them from "
                                 "the tuned best: delete that study to make it again")
            tuned = _study(storage_of(name, args), name).trials[made.user_attrs[SEED_FROM]]
        preset = preset.at_seed(tuned.params if tuned else None)
    # A study resumed by hpsearch before its draws were seeded per trial may hold replayed
    # configs, which the analysis leaves out: the budget is distinct configs.
    replays = 0 if at_seed else len(repeated_draws(_trials(storage_of(name, args), name)))
    settings = Settings(dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                        trials=1 if at_seed else args.trials + replays,
                        storage=storage_of(name, args),
                        device=args.device, jobs=args.jobs, val_size=args.val_size,
                        study_name=preset.name, train_size=args.train_size or None)
    t0 = time.perf_counter()
    optimize(preset, settings, progress=False)
    if tuned is not None:
        _study(storage_of(name, args), preset.name).set_user_attr(SEED_FROM, tuned.number)
    return time.perf_counter() - t0


def _study(storage: str, name: str) -> Any:
    import optuna

    if not Path(storage).is_file():  # reading must not create an empty database
        return None
    try:
        return optuna.load_study(study_name=name, storage=f"sqlite:///{storage}")
    except KeyError:
        return None


def _trials(storage: str, name: str) -> list[Any]:
    study = _study(storage, name)
    return [] if study is None else study.get_trials(deepcopy=False)


def _config_minutes(study: Any) -> list[float]:
    """Minutes each config that ran to the end of training took (pruned ones stop early)."""
    if study is None:
        return []
    return [(t.datetime_complete - t.datetime_start).total_seconds() / 60
            for t in study.trials if t.state.name == "COMPLETE"
            and t.datetime_start and t.datetime_complete]


def _wall_minutes_per_config(study: Any) -> float | None:
    """Minutes of the study's running time (the union of its finished trials' spans, so
    neither the gaps between sessions nor configs trained side by side count twice) per
    finished config; None before one finished."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in study.trials
                   if t.state.name in ("COMPLETE", "PRUNED")
                   and t.datetime_start and t.datetime_complete)
    if not spans:
        return None
    total, (start, end) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > end:
            total += (end - start).total_seconds()
            start, end = a, b
        else:
            end = max(end, b)
    total += (end - start).total_seconds()
    return total / 60 / len(spans)


def _span(study: Any) -> float:
    """Seconds of training in the study's finished trials (0: no such study). Not the span
    from first start to last end: a study resumed across sessions has hours of gaps."""
    if study is None:
        return 0.0
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
               if t.state.name in ("COMPLETE", "PRUNED")
               and t.datetime_start and t.datetime_complete)


def _verified(storage: str, study_name: str, question: str, args: argparse.Namespace,
              baseline: str | None = None) -> dict[str, Any] | None:
    """verify's answer for one question (``baseline``: its comparisons with that value, as
    ``verify --baseline`` makes them): run (resumes from the stored trainings) unless only
    stored answers are wanted; None where there is neither."""
    from hpsearch.verify import verify

    study = _study(storage, study_name)
    if study is None or not any(t.state.name == "COMPLETE" for t in study.trials):
        return None
    ran = None
    if not (args.no_new_verify or args.as_they_are):
        ran = verify(storage, question, seeds=args.seeds, study_name=study_name,
                     epochs=args.epochs, device=args.device, jobs=args.jobs,
                     baseline=baseline).question_dict(question)
    # verify keeps the stored answer when this run's family or seeds are smaller (an answer
    # from 24 seeds is not replaced by one from 16), and one against another baseline (this
    # run's goes beside it): the page shows what the study holds against this baseline.
    return _answer_against(study.user_attrs.get(schema.verify_key(question)), baseline) or ran


def _answer_against(stored: Any, baseline: str | None) -> dict[str, Any] | None:
    """Of a stored verify answer and those kept beside it, the one against ``baseline`` on
    the most seeds (None: the config's own value)."""
    if not isinstance(stored, dict):
        return None
    answers = [stored, *(v for v in (stored.get("beside") or {}).values()
                         if isinstance(v, dict))]
    fits = [a for a in answers if a.get("baseline") == baseline]
    return max(fits, key=lambda a: int(a.get("seeds") or 0), default=None)


def _verified_over_epochs(storage: str, study_name: str, question: str,
                          args: argparse.Namespace) -> dict[str, Any] | None:
    """verify's answer for ``question`` after EARLY_EPOCHS, after the page's epochs and after
    the seed's own length where it is longer (``--long-epochs``): the parts "early", "end"
    and "long". Runs each, resuming from stored trainings, unless only stored answers are
    wanted."""
    from hpsearch.space import load_preset
    from hpsearch.verify import verify

    study = _study(storage, study_name)
    early = min(EARLY_EPOCHS, args.epochs - 1)
    if study is None or early < 1 or not any(t.state.name == "COMPLETE" for t in study.trials):
        return None
    key = OVER_EPOCHS + question
    if args.no_new_verify or args.as_they_are:
        return study.user_attrs.get(key)
    long = (args.long_epochs if args.long_epochs is not None
            else int(load_preset(study_name).settings.get("epochs", 0)))
    parts = [("early", early), ("end", args.epochs)] + (
        [("long", long)] if long > args.epochs else [])
    got: dict[str, Any] = {}
    for part, epochs in parts:
        got[part] = verify(storage, question, seeds=args.seeds, study_name=study_name,
                           epochs=epochs, device=args.device,
                           jobs=args.jobs).question_dict(question)
    study.set_user_attr(key, got)
    return got


def evidence(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything stored for one preset: its analysis, verify at the tuned best and at the
    seed's config for each claim that asks, ``best`` where a claim asks for it."""
    from hpsearch.analysis import analyze
    from hpsearch.best import best
    from hpsearch.bias import bias_twins
    from hpsearch.space import load_preset

    storage = storage_of(name, args)
    study = _study(storage, name)
    out: dict[str, Any] = {"preset": name, "storage": _shown(storage),
                           "question": load_preset(name).question, "analysis": None,
                           "verify": {}, "verify_seed": {}, "over_epochs": {}, "best": None,
                           "bias": None,
                           "study_seconds": _span(study), "seed_study": False,
                           "config_minutes": _config_minutes(study),
                           "finished": 0}
    if study is None:
        return out
    trials = study.get_trials(deepcopy=False)  # read once (study.trials copies them all)
    out["started"] = bool(trials)
    out["replays"] = len(repeated_draws(trials))  # the analysis leaves them out
    out["finished"] = sum(t.state.name in ("COMPLETE", "PRUNED")
                          for t in trials) - out["replays"]
    out["wall_minutes_per_config"] = _wall_minutes_per_config(study)
    out["minutes_per_training"] = _minutes_per_training(name, out["config_minutes"])
    out["verify_plans"] = {}
    if not out["finished"]:  # started, nothing finished yet: as if not started
        return out
    out["analysis"] = analyze(study).to_dict()
    out["chance"] = study.user_attrs.get(schema.CHANCE)  # what "never learned" means here
    seed = _study(storage, f"{name}-seed")
    out["seed_study"] = seed is not None
    out["seed_config"] = _seed_config(name, seed)
    t0 = time.perf_counter()
    for c in (c for c in CLAIMS if c.preset == name):
        if c.kind in ("question", "interaction"):
            # The config that answers the claim first: a session's CPU goes to it.
            at = ["best"] + (["seed"] if _twins_at_seed(c, out) else [])
            for where in sorted(at, key=lambda w: w != c.at):
                of = name if where == "best" else f"{name}-seed"
                out["verify_plans"].setdefault(c.id, {})[where] = _planned(storage, of, c.id)
                # A claim about one value against another is verified against the first
                # (weight decay 0.1 against none) where it is answered.
                against = c.focus[0] if c.focus and where == c.at else None
                out["verify" if where == "best" else "verify_seed"][c.id] = _verified(
                    storage, of, c.id, args, against)
        if c.kind == "over_epochs":
            out["over_epochs"][c.id] = _verified_over_epochs(storage, name, c.id, args)
        if c.kind == "best" and out["best"] is None:
            out["best"] = _of_best(study, study.user_attrs.get(schema.BEST))
            if out["best"] is None and not (args.as_they_are or args.no_new_verify):
                out["best"] = best(storage, study_name=name, retrain=True, seeds=BEST_SEEDS,
                                   device=args.device, data_dir=args.data_dir).to_dict()
        if c.kind == "bias":
            out["bias"] = _of_best(study, study.user_attrs.get(schema.BIAS_TWINS))
            if out["bias"] is None and not (args.as_they_are or args.no_new_verify):
                out["bias"] = bias_twins(storage, study_name=name, seeds=BEST_SEEDS,
                                         device=args.device, data_dir=args.data_dir)
    out["verify_seconds"] = time.perf_counter() - t0
    return out


def _seed_config(name: str, seed: Any) -> dict[str, Any] | None:
    """The seed's config as trained: the preset's ``[seed]`` values and what its study drew
    once from the rest of the preset's space (the seed does not say), the question's param
    left out (trained under each choice)."""
    from hpsearch.space import QUESTION_BY_ID, load_preset

    trial = next((t for t in seed.get_trials(deepcopy=False)
                  if t.state.name == "COMPLETE"), None) if seed is not None else None
    if trial is None:
        return None
    preset = load_preset(name)
    question = QUESTION_BY_ID.get(preset.question or "")
    return {"trial": trial.number,
            "seed": {k: param_value(k, v) for k, v in preset.seed.items()},
            "tuned_from": seed.user_attrs.get(SEED_FROM),
            "drawn": {k: param_value(k, v) for k, v in trial.params.items()
                      if question is None or k != question.param}}


def _planned(storage: str, study_name: str,
             question: str) -> tuple[int, int, int, int] | None:
    """What verify of ``question`` at the study's best would train: (twins, seeds at its
    first look, seeds at most, trainings the study's verify has stored: of any question);
    None where it has nothing to compare."""
    from hpsearch.errors import ConfigError
    from hpsearch.storage import COMPANION_SUFFIX
    from hpsearch.verify import planned_trainings

    study, stored = _study(storage, study_name), _study(storage,
                                                        study_name + COMPANION_SUFFIX)
    done = 0 if stored is None else sum(t.state.name == "COMPLETE"
                                        for t in stored.get_trials(deepcopy=False))
    try:
        return None if study is None else (*planned_trainings(study, question), done)
    except ConfigError:
        return None


def _minutes_per_training(name: str, config_minutes: list[float]) -> float | None:
    """One training's minutes here: a config that ran to the end trained one arm per choice
    of the preset's question (the paired design)."""
    from hpsearch.space import QUESTION_BY_ID, load_preset

    if not config_minutes:
        return None
    question = QUESTION_BY_ID.get(load_preset(name).question or "")
    arms = (len(load_preset(name).param(question.param).choices) or 2) if question else 1
    return float(np.median(config_minutes)) / arms


def _of_best(study: Any, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A result stored for the study's best trial, or None once another trial is best (the
    study went on after it was measured: it is measured again)."""
    if not stored or stored.get("trial_number") != study.best_trial.number:
        return None
    return stored


# ------------------------------------------------------------------------------ the rows


def _answer(ev: dict[str, Any], kind: str, id_: str) -> dict[str, Any] | None:
    if not ev.get("analysis"):
        return None
    key = "interactions" if kind == "interaction" else "answers"
    return next((a for a in ev["analysis"].get(key, []) if a["question"] == id_), None)


def _verify_summary(v: dict[str, Any] | None,
                    focus: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """verify's answer as one row: its state and the comparison it turns on (``focus``: the
    comparison of those two choices where verify made it, with its own state; else the
    largest shift, with the question's state)."""
    if not v or not v.get("rows"):
        return None
    rows = v["rows"]
    top, focused = _claims_row(rows, focus)
    settled = top.get("settled", "open") if focused else v.get("settled", "open")
    return {"settled": settled, "estimate": top.get("shift"),
            "ci_low": top.get("ci_low"), "ci_high": top.get("ci_high"),
            "ci_level": top.get("ci_level"), "seeds": top.get("n"),
            "comparison": top.get("label") or
            f"{top.get('alternative', '?')} vs {top.get('baseline', '?')}",
            "accuracy_settled": top.get("accuracy_settled"),
            "failures_seeds_needed": top.get("failures_seeds_needed"),
            "never_learned": {param_value(str(v.get("param")), top.get(k)): n for k, n in
                              (top.get("never_learned") or {}).items()},
            "trainings": v.get("trainings"), "margin": v.get("margin"),
            "rows": [{k: r.get(k) for k in ("settled", "shift", "ci_low", "ci_high", "n",
                                              "alternative", "baseline", "label")}
                     for r in rows]}


def _remaining(ev: dict[str, Any], args: argparse.Namespace, what: str = "verify",
               cost: str = "") -> str:
    """Why the budget that would settle a row was not spent (``cost``: what it is, where
    known), and the command that spends it."""
    cmd = f"`python scripts/reproduce_seeds.py --presets {ev['preset']}` (resumes)"
    if ev.get("analysis") is None:
        state = ("has started, and no config has finished yet" if ev.get("started")
                 else "has not started")
        return (f"the study {state} ({args.trials} configs x {args.epochs} epochs on "
                f"{args.dataset} still to train: hours of CPU); {cmd}")
    if ev["finished"] < args.trials:
        left = args.trials - ev["finished"]
        took = ev.get("config_minutes") or [ev["study_seconds"] / ev["finished"] / 60]
        lo, hi = min(took), max(took)
        each = (f"a config that ran to the end took {lo:.0f} to {hi:.0f} min here"
                if hi > 1.2 * lo else f"a config took about {lo:.0f} min here")
        # The pace of the study's own running time: configs trained side by side (--jobs)
        # finish faster than one config's time says.
        pace = ev.get("wall_minutes_per_config") or lo
        cost = (f"{each}, and the study finished one every {pace:.0f} min of its running "
                f"time, so about {left * pace / 60:.0f} h of training remain")
        return (f"the study stands at {ev['finished']} of {args.trials} configs ({cost}, "
                f"less where pruning stops a config early, and its verify after it): the "
                f"runs stopped when their "
                f"sessions' time ran out; {cmd}")
    started = "has not finished on it" if "stored" in cost else "has not run on it yet"
    return (f"the study is complete; {what} {started}"
            + (f" ({cost})" if cost else "") + f": the CPU went to the studies first; {cmd}")


def claim_row(c: Claim, ev: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One seed claim, machine-readable (docs/findings.json)."""
    row: dict[str, Any] = {"seed": c.seed, "claim": c.text, "preset": c.preset,
                           "kind": c.kind, "id": c.id or c.part, "storage": ev["storage"],
                           "settled": "open", "source": None, "verdict": None, "study": None,
                           "verify_best": None, "verify_seed": None, "needed": None,
                           "on_claim": "",
                           "at": c.at}
    if c.kind == "bias":
        return _bias_row(row, ev, args)
    if c.kind == "best":
        return _best_row(row, c, ev, args)
    a = _answer(ev, c.kind, c.id)
    if a is not None:
        row["study"] = {"settled": a.get("settled", "open"), "verdict": a.get("verdict"),
                        "status": a.get("status"),
                        "trainability": a.get("trainability")}
        row["verdict"] = a.get("verdict")
    if c.kind == "over_epochs":
        return _over_epochs_row(row, a, ev, args)
    row["verify_best"] = _verify_summary(ev["verify"].get(c.id), c.focus)
    row["verify_seed"] = _verify_summary(ev["verify_seed"].get(c.id), c.focus)
    key = VERIFY_AT[c.at]
    chosen = row[key] if row[key] and row[key]["settled"] != "open" else None
    if chosen:
        row.update(settled=chosen["settled"], source=f"verify at {WHERE[c.at]}")
    elif c.at == "best" and row["study"] and row["study"]["settled"] != "open":
        row.update(settled=row["study"]["settled"], source="study" + _against(
            (a or {}).get("headline_winner"), row))
    row["on_claim"] = _on_claim(c, row, a)
    if row["settled"] == "open":
        needed = (a or {}).get("needed") or "" if c.at == "best" else (
            f"the claim is about the seed's own value ({_seed_values(c.preset)}), which only "
            "verify at the seed's config trains (the study samples it)")
        wanted = [VERIFY_AT[c.at]] + (["verify_seed"] if c.at == "best"
                                      and _twins_at_seed(c, ev) else [])
        ran = all(row[k] for k in wanted)
        row["needed"] = "; ".join(x for x in (needed, _ran_out(ev, c, key) if ran
                                              else _remaining(ev, args, cost=_cost(ev, c)))
                                  if x)
    return row


def _on_claim(c: Claim, row: dict[str, Any], a: dict[str, Any] | None) -> str:
    """Whether a settled answer goes the way the claim says (``c.says``): "as the claim
    says", "the opposite of the claim" or, for an equivalence, that neither wins; "" where
    the claim names no winner, the answer is open, or its difference is between other
    choices."""
    if not c.says or row["settled"] == "open":
        return ""
    if row["settled"] == schema.EQUIVALENT:
        return "neither wins by the margin, where the claim says one does"
    win, lose = c.says
    # the study's difference: its headline pair's winner, as the claim names its side
    winner = str((a or {}).get("headline_winner"))
    won = ("off" if winner in OFF else "on") if "on" in c.says else winner
    if (row["source"] or "").startswith("study"):
        return ("as the claim says" if won == win else
                f"the opposite of the claim ({winner} won)" if won == lose else "")
    found = _directions(row[VERIFY_AT[c.at]] or {})
    pair = (win, lose) if (win, lose) in found else (lose, win) if (lose, win) in found else None
    if pair is None:
        return ""
    said = ("as the claim says" if pair == (win, lose) else "the opposite of the claim")
    if c.kind == "interaction":  # the winner is where the first param's effect is better
        found = {pair: f"{c.id.split('_x_')[0]} does better with {pair[0]} than with {pair[1]}"}
    # The study's difference the other way is an average over the configs it sampled.
    other = (row["study"] or {}).get("settled") == schema.DIFFERENCE and won == pair[1]
    return f"{said} ({found[pair]}" + (
        f"; the study's {pair[1]} > {pair[0]} is over the configs it sampled)" if other
        else ")")


def _twins_at_seed(c: Claim, ev: dict[str, Any]) -> bool:
    """Is the claim verified at the seed's config too? Its preset's own question is (issue
    28: answered at both, side by side), and a claim about the seed's value; the other
    questions a preset's study answers are verified at the tuned best alone."""
    return (c.kind == "question" and bool(ev.get("seed_study"))
            and (c.id == ev.get("question") or c.at == "seed"))


VERIFY_AT = {"best": "verify_best", "seed": "verify_seed"}  # a claim's config: its row key
WHERE = {"best": "the tuned best", "seed": "the seed's config"}


def _seed_values(preset: str) -> str:
    from hpsearch.space import load_preset

    seed = load_preset(preset).seed
    return ", ".join(f"{k}={param_value(k, v)}" for k, v in seed.items())


def _cost(ev: dict[str, Any], c: Claim) -> str:
    """The trainings verify of a claim's question still needs at each config it runs at,
    and their CPU time at the study's own pace (a config trains one arm per choice)."""
    plans = ev.get("verify_plans", {}).get(c.id) or {}
    per = ev.get("minutes_per_training")
    parts = []
    if c.at == "seed" and not ev.get("seed_study"):
        parts.append(f"at the seed's config, once its study (`{c.preset}-seed`: the one "
                     "config trained under each choice) has run")
    for where in sorted((w for w in plans if plans[w]), key=lambda w: w != c.at):
        twins, first, most, stored = plans[where]
        lo, hi = twins * first, twins * most
        time = (f", about {lo * per / 60:.0f} to {hi * per / 60:.0f} h of one core at "
                f"{per:.0f} min a training" if per else "")
        parts.append(f"at {WHERE[where]} {twins} twins x {first} to {most} seeds = {lo} to "
                     f"{hi} trainings{time}" + (f"; {stored} of them stored" if stored
                                                else ""))
    return "verify " + "; ".join(parts) if parts else ""


def _claims_row(rows: list[dict[str, Any]],
                focus: tuple[str, ...]) -> tuple[dict[str, Any], bool]:
    """The verify row a claim turns on: the comparison of its ``focus`` choices where verify
    made it (True), else the largest shift (False)."""
    for r in rows:
        if focus and {str(r.get("baseline")), str(r.get("alternative"))} == set(focus):
            return r, True
    return max(rows, key=lambda r: abs(r.get("shift") or 0.0)), False


def _ran_out(ev: dict[str, Any], c: Claim, key: str = "verify_best") -> str:
    """An open verify: its seeds ran out, and what verify says would settle it (of the
    claim's comparison where it has one)."""
    v = ev["verify" if key == "verify_best" else "verify_seed"].get(c.id) or {}
    top, _ = _claims_row(v.get("rows") or [{}], c.focus)
    said = f"verify's {v['seeds']} seeds" if v.get("seeds") else "verify's seeds"
    said += " ran out before it settled"
    if top.get("accuracy_settled") == schema.EQUIVALENT and top.get("failures_seeds_needed"):
        arms = 4 if v.get("kind") == "interaction" else 2  # factorial cells, or twins
        seeds = int(top["failures_seeds_needed"])
        more = (seeds - int(v.get("seeds") or 0)) * arms
        study = c.preset if key == "verify_best" else f"{c.preset}-seed"
        against = (f" --baseline {shlex.quote(c.focus[0])}"
                   if c.focus and key == VERIFY_AT[c.at] else "")
        return (f"{said}: equivalent within +-{v.get('margin')} pts in accuracy where both "
                f"learned, but the failure rates to learn are not bounded: about {seeds} "
                f"seeds would bound them within {top.get('failures_margin')} pts "
                f"(`hpsearch verify {shlex.quote(str(ev['storage']))} --study-name {study} "
                f"--question {c.id}{against} --seeds {seeds}`, which resumes from the stored "
                f"trainings: at most {more} more, fewer where another question's twins "
                "stored them; not spent here: the CPU went to the questions still open on "
                "accuracy)")
    verdict = str(top.get("verdict") or "")
    hint = next((part.strip() for part in reversed(verdict.replace(";", ",").split(","))
                 if "seeds would" in part), "")
    return said + (f" ({hint})" if hint else "")


def _against(winner: Any, row: dict[str, Any]) -> str:
    """Where the study's answer (an effect averaged over the configs it sampled) and a
    verify at one config disagree: that verify found the study's winner the loser."""
    if winner is None:
        return ""
    where = [label for label, key in (("the tuned best", "verify_best"),
                                      ("the seed's config", "verify_seed"))
             if row[key] and row[key]["settled"] == schema.DIFFERENCE
             and any(lose == str(winner) for _, lose in _directions(row[key]))]
    return (f"; verify at {' and '.join(where)} finds the opposite: the study's effect is "
            f"over the configs it sampled" if where else "")


def _over_epochs_row(row: dict[str, Any], a: dict[str, Any] | None, ev: dict[str, Any],
                     args: argparse.Namespace) -> dict[str, Any]:
    """The effect after a few epochs, at the page's length and at the seed's own (where
    longer), from verify's twins on the same seeds: the row is settled where the effect's
    sign is known at the shortest and the longest, or by the change between them (a paired
    test over the seeds where every training learned); the study's effect over training is
    kept beside it."""
    series = (a or {}).get("effect_by_epoch") or []
    if len(series) >= 2:
        row["over_epochs"] = {"first": series[0], "last": series[-1]}
    v = (ev.get("over_epochs") or {}).get(row["id"])
    change = _change_over_epochs(v, ev) if v else None
    if change is None:
        row["needed"] = (f"verify's twins after {EARLY_EPOCHS} epochs and after {args.epochs} "
                         f"on the same seeds; " + _remaining(ev, args))
        return row
    row["over_epochs_verify"] = change
    lengths = change["lengths"]
    row["source"] = (f"verify at the tuned best after "
                     f"{', '.join(str(x['epochs']) for x in lengths[:-1])} and "
                     f"{lengths[-1]['epochs']} epochs (the same seeds)")
    from hpsearch.space import load_preset

    own = load_preset(row["preset"]).settings.get("epochs")
    seed_length = {"long": " (the seed's length)"} if lengths[-1]["epochs"] == own else {}
    row["verdict"] = (f"{change['what']}: " + "; ".join(
        f"after {x['epochs']} epochs{seed_length.get(x['part'], '')} {_pts(x)} "
        f"({x['n']} seeds, Holm p={x['p']:.2g})" for x in lengths)
        + f"; change from {lengths[0]['epochs']} to {lengths[-1]['epochs']} epochs "
        f"{_pts(change['change'])}, nominal p={change['change']['p']:.2g} (the "
        f"{change['n']} seeds all used)" + _reading(change))
    lo, hi = change["change"]["ci_low"], change["change"]["ci_high"]
    if _sign(lengths[0]) and _sign(lengths[-1]):
        row["settled"] = schema.DIFFERENCE  # the effect's sign known at both ends
    elif lo is not None and hi is not None:
        row["settled"] = settle([(lo, hi)], MIN_EFFECT)
    if row["settled"] == schema.OPEN:
        row["needed"] = ("more seeds at every length: the change's interval spans 0 and "
                         f"reaches past +-{MIN_EFFECT} pts")
    return row


def _sign(e: dict[str, Any]) -> int:
    """+1 or -1 where an effect's interval excludes 0 (and verify, where it answered,
    called it a difference), else 0."""
    if e.get("settled", schema.DIFFERENCE) != schema.DIFFERENCE:
        return 0
    lo, hi = e.get("ci_low"), e.get("ci_high")
    return 0 if lo is None or hi is None or lo <= 0 <= hi else (1 if lo > 0 else -1)


def _reading(change: dict[str, Any]) -> str:
    """What the shortest and the longest effect say of "hurts at few epochs, pays with
    more"."""
    first, last = change["lengths"][0], change["lengths"][-1]
    early, end = _sign(first), _sign(last)
    n = last["epochs"]
    if early < 0 and end > 0:
        return f": it hurts early and pays after {n} epochs, as the claim says"
    if early < 0 and end < 0:
        grew = _sign(change["change"])
        how = (", and the cost grew" if grew < 0 else ", and the cost shrank" if grew > 0
               else "")
        return f": it hurts at every length{how}; it did not pay within {n} epochs"
    if early >= 0 and end < 0:
        return f": it hurts after {n} epochs"
    if end > 0:
        return f": it helps after {n} epochs"
    return ""


PARTS = ("early", "end", "long")  # the over-training verify runs, shortest first


def _change_over_epochs(v: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any] | None:
    """Per seed, the twins' difference (pts) at every length verify ran, each length's
    answer as verify gave it, and the paired statistics of the longest minus the shortest.
    Seeds where a training never learned are left out of the change (a failure to train is
    not an accuracy)."""
    from hpsearch.analysis import never_learned, paired_stats

    parts = [p for p in PARTS if (v.get(p) or {}).get("rows")]
    rows = [v[p]["rows"][0] for p in parts]
    if len(rows) < 2 or len({(r["baseline"], r["alternative"]) for r in rows}) != 1:
        return None
    k = min(len(r["baseline_accs"]) for r in rows)
    accs = np.array([[r["baseline_accs"][:k], r["alternative_accs"][:k]] for r in rows])
    keep = ~never_learned(accs.reshape(-1, k), ev.get("chance")).any(axis=0)
    if keep.sum() < 2:
        return None
    # Oriented as the question's effect: the "on" choice minus "off" where one is off
    # (dropout 0.4 vs 0), else alternative minus baseline.
    base, alt = rows[0]["baseline"], rows[0]["alternative"]
    on, off = (base, alt) if param_value("", alt) in OFF else (alt, base)
    sign = -1 if on == base else 1
    diffs = sign * 100 * (accs[:, 1, keep] - accs[:, 0, keep])  # lengths x seeds

    def verified(part: str, r: dict[str, Any]) -> dict[str, Any]:
        """verify's own answer, oriented: its interval holds for its sequential looks."""
        lo, hi, shift = r.get("ci_low"), r.get("ci_high"), r.get("shift")
        if sign < 0:
            lo, hi = (None if hi is None else -hi), (None if lo is None else -lo)
            shift = None if shift is None else -shift
        return {"part": part, "epochs": v[part].get("epochs"), "shift": shift,
                "p": r.get("p_holm"), "ci_low": lo, "ci_high": hi,
                "settled": r.get("settled"), "n": r.get("n")}

    ps = paired_stats(diffs[0], diffs[-1])  # longest - shortest, per seed
    name = str(v[parts[-1]].get("param"))
    return {"what": f"{name}={param_value(name, on)} vs {param_value(name, off)}",
            "lengths": [verified(p, r) for p, r in zip(parts, rows, strict=True)],
            "n": int(keep.sum()), "left_out": int((~keep).sum()),
            # a fixed-sample test on the seeds every run used (each stopped on its own
            # looks, so this p is nominal)
            "change": {"shift": ps.shift, "p": ps.p_wilcoxon,
                       "ci_low": ps.ci_low if np.isfinite(ps.ci_low) else None,
                       "ci_high": ps.ci_high if np.isfinite(ps.ci_high) else None}}


def _pts(e: dict[str, Any]) -> str:
    ci = (f" [{e['ci_low']:+.2f}, {e['ci_high']:+.2f}]" if e.get("ci_low") is not None
          and e.get("ci_high") is not None else "")
    return f"{e['shift']:+.2f} pts{ci}"


def _best_row(row: dict[str, Any], c: Claim, ev: dict[str, Any],
              args: argparse.Namespace) -> dict[str, Any]:
    b = ev.get("best")
    if not b:
        row["needed"] = (f"`hpsearch best {ev['storage']} --retrain --seeds {BEST_SEEDS}`; "
                         + _remaining(ev, args, "best --retrain"))
        return row
    row["source"] = f"best --retrain (trial #{b['trial_number']}, {b['test_acc_n']} seeds)"
    if c.part == "bn_modes":
        bn = b.get("bn_train_vs_eval")
        if not bn:
            row["verdict"] = "the best config has no batch norm, so its modes cannot differ"
            row["needed"] = "a best config with batch norm"
            return row
        size = (b.get("config") or {}).get("batch_size")
        row["verdict"] = (f"eval mode {100 * bn['eval_mode']:.2f}% vs train mode "
                          f"{100 * bn['train_mode']:.2f}% on the test set (train mode: "
                          f"batches of {size}, the model's batch size, each normalized by "
                          f"its own statistics)")
        if bn.get("ci_low") is None:
            row["needed"] = (f"{BEST_SEEDS} seeds' models, each measured in both modes, for "
                             f"an interval (have {bn.get('n', 1)})")
            return row
        _settle_paired(row, bn, "train mode", "each model in both modes, ")
    else:
        per = {k: v for k, v in (b.get("per_class") or {}).items() if v is not None}
        if per:
            lo, hi = min(per, key=per.__getitem__), max(per, key=per.__getitem__)
            row["verdict"] = (f"test accuracy {100 * b['test_acc']:.2f}% (n={b['test_acc_n']}"
                              f" seeds); per class (seed {b['seeds'][0]}'s model): weakest "
                              f"{lo} {100 * per[lo]:.1f}%, strongest {hi} {100 * per[hi]:.1f}%")
            row["settled"] = "measured"
    return row


def _bias_row(row: dict[str, Any], ev: dict[str, Any],
              args: argparse.Namespace) -> dict[str, Any]:
    b = ev.get("bias")
    if not b:
        row["needed"] = (f"{BEST_SEEDS} seeds of the best config trained with and without "
                         "a bias before each BN; "
                         + _remaining(ev, args, "the twins with and without the bias"))
        return row
    row["source"] = (f"twins with and without the bias (trial #{b['trial_number']}'s config "
                     f"with BN before, {b['n']} seeds)")
    ratio = b.get("grad_ratio")
    row["verdict"] = (
        f"with the bias {100 * float(np.mean(b['with_bias'])):.2f}% vs without "
        f"{100 * float(np.mean(b['without_bias'])):.2f}% on the test set; twins from the "
        "same weights on the same batches agree on "
        f"{100 * min(b['agreement']):.2f}% or more of the test predictions"
        + (f" (two seeds' models without it: {100 * float(np.mean(b['seed_agreement'])):.2f}%)"
           if b.get("seed_agreement") else "")
        + (f", and the bias's gradient is at most {ratio:.1g} of its layer's weight's "
           "(rounding: BN's batch mean removes it)" if ratio is not None else ""))
    if b.get("ci_low") is None:
        row["needed"] = f"{BEST_SEEDS} seeds for an interval (have {b['n']})"
        return row
    _settle_paired(row, b, "with minus without", "")
    return row


def _settle_paired(row: dict[str, Any], stats: dict[str, Any], what: str, how: str) -> None:
    """A paired comparison's shift and interval added to the row's verdict, which it settles
    (within the margin: equivalent; clear of 0: a difference; else open, for more seeds)."""
    lo, hi = stats["ci_low"], stats["ci_high"]
    row["verdict"] += (f"; {what} {stats['shift']:+.2f} pts [{lo:+.2f}, {hi:+.2f}] "
                       f"(95%, {stats['n']} seeds, {how}p={stats['p']:.2g})")
    row["settled"] = settle([(lo, hi)], MIN_EFFECT)
    if row["settled"] == schema.OPEN:
        row["needed"] = "more seeds: the interval spans 0 and reaches past the margin"


def _fmt(e: dict[str, Any]) -> str:
    lo, hi = e.get("ci_low"), e.get("ci_high")
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else ""
    return f"{e.get('diff', float('nan')):+.2f} pts{ci}"


def _verify_text(v: dict[str, Any] | None) -> str:
    if not v:
        return "—"
    ci = (f" [{v['ci_low']:+.2f}, {v['ci_high']:+.2f}]" if v.get("ci_low") is not None
          else "")
    level = f" at {100 * v['ci_level']:.1f}%" if v.get("ci_level") else ""
    failed = {k: n for k, n in (v.get("never_learned") or {}).items() if n}
    failures = ("; never learned: " + ", ".join(f"{k} on {n} of {v['seeds']} seeds"
                                                for k, n in failed.items())) if failed else ""
    if v.get("estimate") is None:  # no seed where both learned: no accuracy to compare
        return f"{v['settled']}: {v['comparison']}: no accuracy difference{failures}"
    gated = (f" (within +-{v['margin']} pts in accuracy; the failure rates to learn are "
             f"not bounded yet)" if v["settled"] == schema.OPEN
             and v.get("accuracy_settled") == schema.EQUIVALENT else "")
    return (f"{v['settled']}{gated}: {v['comparison']}: {v['estimate']:+.2f} pts{ci}{level}, "
            f"{v['seeds']} seeds{failures}")


OFF = ("none", "0", "0.0")  # a question's "off" choice (no batch norm, no dropout)


def _directions(v: dict[str, Any]) -> dict[tuple[str, str], str]:
    """A verify's settled differences as ``{(winner, loser): text}``, and for a comparison
    with an "off" choice also under ``("on", "off")``: BN before beating none at one config
    and BN after beating it at another is the same finding."""
    out: dict[tuple[str, str], str] = {}
    for r in v.get("rows") or []:
        if r.get("settled") != schema.DIFFERENCE or not r.get("shift"):
            continue
        win, lose = ((str(r["alternative"]), str(r["baseline"])) if r["shift"] > 0
                     else (str(r["baseline"]), str(r["alternative"])))
        out[(win, lose)] = f"{win} > {lose}"
        if lose in OFF or win in OFF:
            out[("off", "on") if win in OFF else ("on", "off")] = f"{win} > {lose}"
    return out


def _survives(row: dict[str, Any]) -> str:
    """Does the effect at the seed's config survive tuning? The same winner of the same
    comparison at both configs (both verify answers needed). Not asked of a claim about the
    seed's own value: the two configs differ in that value, not in tuning."""
    if row.get("at") == "seed":
        return "not asked: the claim is about the seed's own value"
    b, s = row.get("verify_best"), row.get("verify_seed")
    if not b or not s:
        return "—"
    if b["settled"] == "open" or s["settled"] == "open":
        return "not yet known (a verify is open)"
    if b["settled"] == s["settled"] == schema.EQUIVALENT:
        return "equivalent at both"
    if b["settled"] != s["settled"]:
        return f"no: {s['settled']} at the seed's config, {b['settled']} once tuned"
    tuned, seed = _directions(b), _directions(s)
    same = [k for k in seed if k in tuned]
    if same:
        k = same[0]
        return (f"yes: {seed[k]} at the seed's config, {tuned[k]} once tuned"
                if seed[k] != tuned[k] else f"yes: {seed[k]} at both")
    flipped = [k for k in seed if (k[1], k[0]) in tuned]
    if flipped:
        k = flipped[0]
        return f"no, reversed: {seed[k]} at the seed's config, {tuned[(k[1], k[0])]} once tuned"
    return (f"not comparable: {', '.join(seed.values())} at the seed's config, "
            f"{', '.join(tuned.values())} once tuned")


# ------------------------------------------------------------------------------ the page


def _failures(tr: dict[str, Any] | None) -> str:
    """A question's failures to train, where any trial never learned: the counts per choice
    and the trainability answer's state (the accuracy verdict is among trials that learned)."""
    choices = (tr or {}).get("choices") or {}
    if not tr or not any(c.get("never_learned") for c in choices.values()):
        return ""
    counts = ", ".join(f"{k} {c['never_learned']}/{c['n']}" for k, c in choices.items())
    return f"; never learned: {counts} ({tr['settled']} on how often training fails)"


def render(rows: list[dict[str, Any]], evs: dict[str, dict[str, Any]],
           args: argparse.Namespace) -> str:
    """docs/findings.md from the rows (every figure comes from the stored evidence)."""
    import torch

    from hpsearch import __version__
    from hpsearch.optimize import git_hash

    wall = sum(ev.get("study_seconds", 0.0) for ev in evs.values())
    lines = [
        "# Findings: the seeds' claims, re-tested",
        "",
        f"Generated by `scripts/reproduce_seeds.py` on {time.strftime('%Y-%m-%d')} "
        f"(hpsearch {__version__}, git {git_hash()}, torch {torch.__version__}, "
        f"{platform.machine()}, device {args.device}) from the evidence committed in "
        f"`{_shown(str(args.work_dir))}/`; {wall / 60:.1f} minutes of study time stored "
        "(2 CPU cores unless the device says otherwise).",
        "",
        f"Dataset **{args.dataset}** (validation: {args.val_size} held out of the training "
        f"set; test set whole); per preset **up to {args.trials} configs x {args.epochs} "
        "epochs**, the preset's question assigned by the paired design (every config "
        "trained under each choice on one seed). verify: twins on paired seeds on the test "
        "set, at the **tuned best** config and at the **seed's own config** (the preset's "
        "`[seed]` values), seeds added in looks until settled. Each row is settled (a "
        "difference or an equivalence within the margin) or open with what would settle it "
        "and why it was not spent (docs/method.md).",
        "",
        "Reproduce: `python scripts/reproduce_seeds.py --presets PRESET` resumes from the "
        "committed databases; `hpsearch report docs/seeds/PRESET-"
        f"{args.dataset}.db --study-name PRESET` gives the study's answers and verify's "
        "(each database also holds `PRESET-seed`, the seed's own config, and verify's "
        "stored trainings).",
        "",
        "How to read a row. The **study** column is the effect over the configs the study "
        "sampled (the question's param assigned within each config, the rest varying), "
        "among trials that learned; trials that never learned (at chance) are counted "
        "apart as failures to train. **verify** is the effect at one config: twins that "
        "differ only in the question's param, trained on the same seeds and tested on the "
        "test set, seeds added in looks until the answer is settled. The two can differ "
        "and both be right: ReLU can beat sigmoid on average over learning rates and "
        "optimizers, and not at the tuned config. The **answer** is verify's at the tuned "
        "best where it settled, else the study's; a claim about a value only the seed's "
        "config has (weight decay 0.1) is answered by verify at the seed's config alone; "
        "where the claim names a winner, the answer says whether it goes the claim's way. "
        "verify calls twins *equivalent* only "
        "when their interval lies within +-0.5 pts and the failure rates to learn are "
        "bounded within +-5 pts too, which takes about 100 seeds; with fewer, a comparison "
        "that is within 0.5 pts on accuracy stays open and says so.",
        "",
        "| seed | claim | preset | answer | study (n) | verify at the tuned best | "
        "verify at the seed's config | survives tuning? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ev = evs[r["preset"]]
        state = (r["settled"] + (f" ({r['source']})" if r["source"] else "")
                 + (f": {r['on_claim']}" if r.get("on_claim") else ""))
        study = ((r["verdict"] or "—") + _failures((r.get("study") or {}).get("trainability"))
                 + (f" (n={ev['finished']})" if ev["finished"] else ""))
        if r["settled"] == "open" and r["needed"]:
            study += f"<br>*would settle it:* {r['needed']}"
        lines.append(f"| {r['seed']} | {r['claim']} | `{r['preset']}` | {state} | {study} | "
                     f"{_verify_text(r['verify_best'])} | {_verify_text(r['verify_seed'])} | "
                     f"{_survives(r)} |")
    lines += ["", "## Every question answered by each study", ""]
    for name, ev in evs.items():
        if ev.get("analysis") is None:
            continue
        replays = (f"; {ev['replays']} more replayed an earlier config and are left out"
                   if ev.get("replays") else "")
        lines += [f"### `{name}` ({ev['finished']} configs{replays}, "
                  f"{ev['study_seconds'] / 60:.1f} min of training stored)", ""]
        if ev.get("seed_config"):
            sc = ev["seed_config"]
            drawn = ", ".join(f"{k}={v}" for k, v in sc["drawn"].items()) or "nothing"
            rest = (f"the rest (the seed does not say) as the tuned study's best trial "
                    f"#{sc['tuned_from']} had them when it was made" if sc.get("tuned_from")
                    is not None else "drawn once from the rest of the preset's space (the "
                    f"seed does not say): {drawn}")
            lines += [f"The seed's config (`{name}-seed`, trial #{sc['trial']}): the seed's "
                      f"{', '.join(f'{k}={v}' for k, v in sc['seed'].items())}; {rest}. "
                      "The study's answers:", ""]
        for a in ev["analysis"]["answers"]:
            if a["status"] != "not_sampled":
                lines.append(f"- **{a['question']}**: {a['verdict']}"
                             + _failures(a.get("trainability")))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = parse_args(argv)
    if args.from_evidence:
        evs = json.loads(args.from_evidence.read_text())
        write_page({n: ev for n, ev in evs.items() if n in args.presets}, args)
        return 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    # Every study first (the tuned one, then the seed's config), then the answers: a run
    # interrupted half-way resumes from the stored trials on re-run.
    if not args.as_they_are:
        for name in args.presets:
            for at_seed in (False, True):
                what = f"{name}{'-seed' if at_seed else ''}"
                print(f"[{time.strftime('%H:%M:%S')}] study {what} ...", file=sys.stderr,
                      flush=True)
                seconds = run_study(name, args, at_seed=at_seed)
                print(f"[{time.strftime('%H:%M:%S')}] study {what}: {seconds / 60:.1f} min",
                      file=sys.stderr, flush=True)
    if args.studies_only:
        return 0
    evs = {}
    for name in args.presets:
        print(f"[{time.strftime('%H:%M:%S')}] answers {name} ...", file=sys.stderr, flush=True)
        evs[name] = evidence(name, args)
    (args.work_dir / "findings-full.json").write_text(json.dumps(evs, indent=1, default=str))
    write_page(evs, args)
    return 0


def write_page(evs: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    """The page (``--out``) and its rows (``.json`` beside it) from each preset's evidence."""
    rows = [claim_row(c, evs[c.preset], args) for c in CLAIMS if c.preset in evs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, evs, args))
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt as stop:  # SIGTERM too (hpsearch's Terminated): no traceback
        print(f"[{time.strftime('%H:%M:%S')}] stopped ({stop or 'Ctrl-C'}): every finished "
              "trial and training is stored; the same command resumes", file=sys.stderr)
        raise SystemExit(143 if "SIGTERM" in str(stop) else 130) from None
