"""Numbers and tables for a person: what every report format (HTML, Markdown, note, terminal)
shows the same way.

Values are formatted once here, so the page and the Markdown agree: accuracies to 4
decimals, other floats to 4 significant digits (``0.6000000000000001`` -> ``0.6``,
``7.092160224267873e-06`` -> ``7.1e-06``), differences with a sign that never reads
``-0.00``, p-values as ``<0.001``. The table builders return ``(head, rows)`` of plain
strings and numbers; escaping is the renderer's job (:mod:`.html`, :mod:`.markdown`).

This module imports neither the report nor a renderer: the renderers import it.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN
from hpsearch.space import PARAM_BY_NAME, active_params
from hpsearch.text import DASH, num, param_value, plural

Table = tuple[list[str], list[list[Any]]]

# verify's command where the study is not known (the analysis' words name no storage), and
# how a verify cell that names one begins.
ANY_VERIFY = "hpsearch verify STORAGE"
NOT_RUN = "not run: "
OBSERVATIONAL = ("How to read the verdicts: differences are in accuracy points (objective x "
                 "100; objective units for other objectives), the effect at the end of "
                 "training, adjusted for every other param the study sampled, from all "
                 "finished trials (pruned ones carried on from the epoch they reached). Each "
                 "interval is at the level Holm's procedure decided that question at "
                 "(ci_level in its details), and one interval decides three ways: "
                 "\"difference\" when it excludes 0, \"equivalent\" when it lies inside "
                 "+-margin (printed with the verdict), \"open\" otherwise, with what would "
                 "settle it. The seeds' questions and the study's other params are one Holm "
                 "family (weighted towards the seeds'), the interactions another. "
                 "\"associated\": the sampler "
                 "chose the params together, so the study alone is observational; "
                 "\"matters\": randomized trials settle it. The verify column is the causal "
                 "answer: twins of the best config that differ only in that param, on the "
                 f"same seeds, on the test set (`{ANY_VERIFY}`).")
TOP_TRIALS = 10
# Settings that say how a trial was run, shown in the header; the rest go to provenance.
SETTINGS_SHOWN = ("epochs", "trials", "sampler", "pruner", "patience", "seed", "jobs", "device")


# ---------------------------------------------------------------------------- numbers


def acc(value: Any) -> str:
    """An objective value (accuracy in [0, 1] for hpsearch studies): 4 decimals."""
    if isinstance(value, float) and math.isfinite(value) and 0 <= value <= 1:
        return f"{value:.4f}"
    return num(value)


def signed(value: Any, decimals: int = 2) -> str:
    """A difference: ``+0.42``, ``-1.30``, and ``0.00`` rather than ``-0.00``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return DASH
    text = f"{value:+.{decimals}f}"
    return text[1:] if float(text) == 0 else text


def signed_num(value: Any, digits: int = 3) -> str:
    """A difference to ``digits`` significant digits with its sign: ``+0.4``, ``-0.0042``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return DASH
    text = num(value, digits)
    return text if text.startswith("-") or text == "0" else "+" + text


def pct(value: Any, decimals: int = 1) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return DASH
    return f"{100 * value:.{decimals}f}%"


def p_value(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def seconds(value: Any) -> str:
    """A duration: ``0.6 s``, ``42 s``, ``3 min 12 s``, ``1 h 05 min``."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return DASH
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def states_text(n_trials: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in n_trials.items() if n) or "no trials"


# ---------------------------------------------------------------------------- nested values


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``a.b`` rows; lists of scalars joined; empty ones left out."""
    if isinstance(obj, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list | tuple):
        if not obj:
            return []
        if all(not isinstance(v, Mapping | list | tuple) for v in obj):
            return [(prefix, ", ".join(num(v) for v in obj))]
        return [row for i, v in enumerate(obj) for row in flatten(v, f"{prefix}[{i}]")]
    return [(prefix, obj)]


def best_config(best: Mapping[str, Any]) -> dict[str, Any]:
    """The active params of ``best["config"]``; as stored if another version wrote it."""
    config = best.get("config") or {}
    try:
        return dict(active_params(config))
    except (ConfigError, TypeError):
        return dict(config) if isinstance(config, Mapping) else {}


# ---------------------------------------------------------------------------- tables


_PRUNING_LABELS = {
    "n_complete": "complete trials", "n_pruned": "pruned trials", "n_failed": "failed trials",
    "max_epochs": "epochs per trial", "epochs_run": "epochs run",
    "epochs_saved": "epochs saved by pruning", "share_saved": "share of epochs saved",
    "epochs_saved_early_stopping": "epochs saved by early stopping",
}


def pruning_table(pruning: Mapping[str, Any]) -> Table:
    """What pruning saved, one row per fact, and one row per epoch that trials were pruned at.

    ``pruned_at`` ({epochs reported: n trials}) becomes rows "pruned after epoch k", not a
    JSON cell; keys this version does not know are shown under their own name.
    """
    rows: list[list[Any]] = []
    if not pruning.get("max_epochs") and not pruning.get("n_pruned"):
        return ["", "value"], []  # no trial reported an epoch: nothing was or could be pruned
    source = pruning.get("max_epochs_source")
    for key, value in pruning.items():
        if key in ("pruned_at", "max_epochs_source"):
            continue
        label = _PRUNING_LABELS.get(key, key.replace("_", " "))
        if key == "share_saved":
            shown: Any = pct(value)
        elif key == "max_epochs" and source:
            shown = f"{num(value)} ({source})"
        else:
            shown = value if not isinstance(value, Mapping | list) else "; ".join(
                f"{k} {num(v)}" for k, v in flatten(value))
        rows.append([label, shown])
    at = pruning.get("pruned_at") or {}
    for epochs, n in sorted(at.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit()
                            else 0):
        rows.append([f"pruned after epoch {epochs}", f"{num(n)} trial{'s' if n != 1 else ''}"])
    return ["", "value"], rows


def top_trials_table(rows: Sequence[Mapping[str, Any]], importances: Sequence[str], *,
                     maximize: bool = True, n: int = TOP_TRIALS, max_params: int = 6) -> Table:
    """The ``n`` best complete trials: value, epochs, time and their most important params.

    ``rows`` are the report's trial rows (``report.trial_rows``), best first after sorting
    here; ``importances`` names params most important first (others follow in table order).
    """
    complete = sorted((r for r in rows if r["state"] == "COMPLETE"),
                      key=lambda r: (-r["value"] if maximize else r["value"], r["number"]))[:n]
    if not complete:
        return [], []
    seen = [p for p in importances if any(p in r["params"] for r in complete)]
    seen += [p for p in PARAM_BY_NAME if p not in seen and any(p in r["params"] for r in complete)]
    seen += sorted({p for r in complete for p in r["params"]} - set(seen))
    params = seen[:max_params]
    head = ["#", "trial", "value", "epochs", "best epoch", "time", *params]
    out = []
    for i, r in enumerate(complete, 1):
        out.append([i, f"#{r['number']}", acc(r["value"]), r.get("epochs"),
                    r.get("best_epoch"), seconds(r.get("seconds")),
                    *(param_value(p, r["params"][p]) if p in r["params"] else DASH
                      for p in params)])
    return head, out


def best_table(best: Mapping[str, Any]) -> Table:
    """The ``best`` user attr (``hpsearch best``) as facts: accuracies, seeds, artifacts."""
    rows: list[list[Any]] = []
    if "trial_number" in best:
        rows.append(["trial", f"#{best['trial_number']}"])
    if best.get("val_acc") is not None:
        rows.append(["validation accuracy (the study's)", acc(best["val_acc"])])
    if best.get("retrain_val_acc") is not None:
        rows.append(["validation accuracy (retrained)", acc(best["retrain_val_acc"])])
    if best.get("test_acc") is not None:
        n = best.get("test_acc_n") or 1
        accs = best.get("test_accs")
        agreed = isinstance(accs, list) and len(accs) > 1 and len(set(accs)) == 1
        spread = (f" on every seed (all {n} seeds agreed, std 0)" if agreed else
                  f" ± {best['test_acc_std']:.4f} (mean ± std, n={n} seeds)" if n > 1
                  and isinstance(best.get("test_acc_std"), float) else "")
        rows.append(["test accuracy", acc(best["test_acc"]) + spread])
    bn = best.get("bn_train_vs_eval")
    if isinstance(bn, Mapping) and {"eval_mode", "train_mode"} <= set(bn):
        paired = _paired(bn, "each model in both modes")  # its interval is the shift's
        shift = bn["shift"] if paired else 100 * (bn["train_mode"] - bn["eval_mode"])
        rows.append(["batch norm: eval vs train mode",
                     f"{acc(bn['eval_mode'])} vs {acc(bn['train_mode'])} "
                     f"({signed(shift)} pts in train mode{paired})"])
    bias = best.get("bias_twins")
    if isinstance(bias, Mapping) and isinstance(bias.get("agreement"), list):
        rows.append(["batch norm: a bias before it (twins)",
                     f"{signed(bias.get('shift'))} pts with it{_paired(bias, 'paired twins')}"
                     f"; the twins (this config with BN before the activation) agree on "
                     f"{min(bias['agreement']):.2%} or more of the test predictions"])
    for key in ("dataset", "epochs", "retrain", "created"):
        if best.get(key) is not None:
            rows.append([key, best[key]])
    if best.get("seeds"):
        rows.append(["seeds", ", ".join(map(str, best["seeds"]))])
    if best.get("train_seconds"):
        secs = best["train_seconds"]
        threads = (f", {plural(best['threads'], 'torch thread')}"
                   if isinstance(best.get("threads"), int) else "")
        rows.append(["trainings", f"{len(secs)} in {seconds(sum(secs))}{threads}"])
    for name, artifact in (best.get("artifacts") or {}).items():
        rows.append([f"artifact: {name}", artifact])
    skip = {"config", "per_class", "confusion", "classes", "trial_number", "val_acc",
            "retrain_val_acc", "test_acc", "test_acc_std", "test_acc_n", "test_accs",
            "bn_train_vs_eval", "dataset", "epochs", "retrain", "created", "seeds",
            "artifacts", "study_name", "artifact_dir", "train_seconds", "threads",
            "bias_twins"}
    rows += [[k, v] for k, v in flatten({k: v for k, v in best.items() if k not in skip})]
    return ["", "value"], rows


def _paired(stats: Mapping[str, Any], how: str) -> str:
    """`` [lo, hi] (95%, n seeds, how, p = ...)`` of a paired comparison, where it has one."""
    lo, hi, p = stats.get("ci_low"), stats.get("ci_high"), stats.get("p")
    if not all(isinstance(v, int | float) for v in (lo, hi, p)):
        return ""
    return f" [{signed(lo)}, {signed(hi)}] (95%, {stats.get('n')} seeds, {how}, p = {p:.2g})"


def per_class_items(best: Mapping[str, Any]) -> list[tuple[str, float]]:
    per_class = best.get("per_class")
    if isinstance(per_class, Mapping):
        items = list(per_class.items())
    elif isinstance(per_class, list):
        names = best.get("classes") or list(range(len(per_class)))
        items = list(zip(names, per_class, strict=False))
    else:
        items = []
    return [(str(k), float(v)) for k, v in items
            if isinstance(v, int | float) and not isinstance(v, bool)]


def splits_text(h: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The real split sizes, as a trial recorded them (``run.splits``), else the setting.

    ``val_size`` is a request: it is clamped to a fifth of a small training set, so the
    setting alone (10000 on the 1,797-image digits set) would mislead.
    """
    for r in rows:
        splits = r.get("splits")
        if isinstance(splits, Mapping) and splits:
            return " / ".join(f"{k} {num(v)}" for k, v in splits.items()) + " images"
    settings = (h.get("provenance") or {}).get("settings") or {}
    if settings.get("val_size") is not None:
        return (f"validation hold-out: up to {num(settings['val_size'])} images (a fifth of "
                "the training set at most; the study did not record the sizes)")
    return None


def header_facts(h: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """The study in a few rows: dataset, splits, trials, best value, how it was run."""
    prov = h.get("provenance") or {}
    settings = prov.get("settings") or {}
    best = (f"{acc(h['best_value'])} (trial #{h['best_trial_number']})"
            if h.get("best_value") is not None else "no completed trial")
    run = ", ".join(f"{k} {settings[k]}" for k in SETTINGS_SHOWN
                    if settings.get(k) is not None)
    versions = ", ".join(f"{k.removesuffix('_version')} {prov[k]}" for k in
                         ("hpsearch_version", "optuna", "torch", "python") if prov.get(k))
    own = prov.get("objective")
    if isinstance(own, Mapping):  # a user's objective: its own model and data
        run = ", ".join(f"{k} {settings[k]}" for k in SETTINGS_SHOWN
                        if settings.get(k) is not None and k not in ("epochs", "patience"))
        sha = str(own.get("sha256") or "")[:12]
        facts = [("objective", f"{own.get('spec')} ({own.get('path') or own.get('module')}"
                               + (f", sha256 {sha}" if sha else "") + ")"),
                 ("question", h.get("question")), ("direction", h.get("direction")),
                 ("trials", states_text(h.get("n_trials") or {})), ("best value", best),
                 ("run with", run or None), ("storage", h.get("storage")),
                 ("git", prov.get("git_hash")), ("versions", versions or None)]
    else:
        facts = [("dataset", h.get("dataset")), ("splits", splits_text(h, rows)),
                 ("question", h.get("question")), ("direction", h.get("direction")),
                 ("trials", states_text(h.get("n_trials") or {})), ("best value", best),
                 ("run with", run or None), ("storage", h.get("storage")),
                 ("preset", prov.get("preset")), ("git", prov.get("git_hash")),
                 ("versions", versions or None)]
    return [(k, v) for k, v in facts if v is not None]


def provenance_rows(prov: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] = (),
                    ) -> list[tuple[str, Any]]:
    """Everything the study stored about how it was made, one row per leaf value.

    ``settings.val_size`` is the request; the size used (clamped to a fifth of a small
    training set: 269 of digits' images, not 10000) is shown beside it, as the trials
    recorded it (``rows``: the report's trial rows)."""
    shown = {"hpsearch_version", "optuna", "torch", "python", "preset", "git_hash"}
    out = flatten({k: v for k, v in prov.items() if k not in shown})
    used = next((r["splits"].get("validation") for r in rows
                 if isinstance(r.get("splits"), Mapping)), None)
    if isinstance(used, int):
        out = [(k, f"{num(v)} requested; {num(used)} used (at most a fifth of the training "
                   "set)" if k == "settings.val_size" and v != used else v) for k, v in out]
    return out


# ---------------------------------------------------------------------------- answers


# The columns of the verdicts table, in this order when present; an answer's other scalar
# keys go to its details. The analysis decides what an answer holds: a key it adds shows up
# in the details without a change here.
ANSWER_COLUMNS = ("question", "seed_claim", "settled", "verdict", "p_holm", "needed")
ANSWER_LABELS = {"seed_claim": "seeds' claim", "p_holm": "p (Holm)", "p_value": "p",
                 "settled": "settled", "effect_by_epoch": "effect over training",
                 "best_region": "best region",
                 "needed": "what would settle it", "verify": "verify (paired re-runs)",
                 "p_wilcoxon": "p (Wilcoxon)", "p_improvement": "P(improvement)",
                 "top_quantile": "top quantile", "n_vs": "n vs", "vs": "vs (best)",
                 "ci_low": "CI low", "ci_high": "CI high", "ci_level": "CI level"}
_P_KEYS = ("p_holm", "p_value", "p_wilcoxon", "p_adjusted")


def cell(key: str, value: Any) -> Any:
    """An answer's or a verify row's value, formatted by what its key means."""
    if value is None:
        return DASH
    if key in _P_KEYS or key == "p":
        return p_value(value)
    if key == "p_improvement":
        return num(value, 3)
    if isinstance(value, float) and key in ("diff", "mean_diff", "ci_low", "ci_high", "effect"):
        return signed_num(value)
    if isinstance(value, float) and key in ("median", "mean", "top_quantile"):
        return acc(value)
    return value


def label(key: str) -> str:
    return ANSWER_LABELS.get(key, key.replace("_", " "))


def answer_columns(answers: Sequence[Mapping[str, Any]]) -> list[str]:
    return [k for k in ANSWER_COLUMNS if any(k in a for a in answers)]


def settled_text(x: Mapping[str, Any]) -> str:
    """An answer's (or verify row's) state in a word, with the margin for equivalence."""
    state = x.get("settled")
    if state == EQUIVALENT and isinstance(x.get("margin"), int | float):
        return f"equivalent (+-{num(x['margin'], 3)} {x.get('unit') or 'pts'})"
    return DASH if state is None else str(state)


def split_unsampled(answers: Sequence[Mapping[str, Any]],
                    interactions: Sequence[Mapping[str, Any]] = (),
                    ) -> tuple[list[Mapping[str, Any]], str]:
    """The answers worth a row, and one line naming the built-in questions and interactions
    this study never sampled (a study of other params should not show ten empty rows, nor
    two such lines)."""
    shown = [a for a in answers if a.get("status") != "not_sampled"]
    skipped = [str(a.get("question")) for a in answers if a.get("status") == "not_sampled"]
    skipped += [str(x.get("question")) for x in interactions
                if x.get("status") == "not_sampled"]
    line = (f"Not sampled in this study ({len(skipped)}): {', '.join(skipped)}."
            if skipped else "")
    return shown, line


# Where a study hpsearch did not make has no verify to run (hpsearch.analysis.study).
VERIFY_NEEDS_OBJECTIVE = (f"{NOT_RUN}verify needs the objective ({ANY_VERIFY} "
                          "--objective FILE.py:NAME)")


def how_to_read(data: Mapping[str, Any]) -> str:
    """:data:`OBSERVATIONAL` for this study: without epochs it names no training; it names
    the verify that runs on this study's storage, or for a study hpsearch did not make the
    verify that can run there."""
    text = OBSERVATIONAL
    if not ((data.get("analysis") or {}).get("pruning") or {}).get("max_epochs"):
        text = text.replace("the effect at the end of training, ", "").replace(
            " (pruned ones carried on from the epoch they reached)", "")
    command = verify_command(data)
    if command is None:
        needs = VERIFY_NEEDS_OBJECTIVE.removeprefix(NOT_RUN)
        return text.replace(f"(`{ANY_VERIFY}`)", f"({needs})")
    return _named(text, command)


def verify_command(data: Mapping[str, Any]) -> str | None:
    """``hpsearch verify`` for this study, as the report was given its storage (a password
    masked); None where hpsearch did not make the study (verify needs its objective)."""
    if not own_study(data):
        return None
    h = data.get("header") or {}
    return (f"hpsearch verify {shlex.quote(str(h.get('storage') or 'STORAGE'))} "
            f"--study-name {shlex.quote(str(h.get('study_name')))}")


def _named(text: str, command: str) -> str:
    """``text`` with the generic "`hpsearch verify STORAGE`" as ``command``."""
    return text.replace(f"`{ANY_VERIFY}`", f"`{command}`")


def own_study(data: Mapping[str, Any]) -> bool:
    """Whether hpsearch made the study (it stored its provenance): verify can retrain it."""
    return bool((data.get("header") or {}).get("provenance"))


def name_verify(data: Mapping[str, Any]) -> None:
    """The analysis' "`hpsearch verify STORAGE`" (its words know no storage) as this
    study's own verify command (:func:`verify_command`), in every answer and interaction
    of ``data``; a study hpsearch did not make already names the objective it needs."""
    command = verify_command(data)
    if command is None:
        return
    analysis = data.get("analysis") or {}
    for a in [*(analysis.get("answers") or []), *(analysis.get("interactions") or [])]:
        for key, text in a.items():
            if isinstance(text, str):
                a[key] = _named(text, command)


def verdict_rows(answers: Sequence[Mapping[str, Any]], verify: Mapping[str, Any],
                 command: str | None = ANY_VERIFY) -> tuple[list[str], list[dict[str, Any]]]:
    """The verdicts table every format shows: the answers' columns and a verify column.

    Rows are dicts of display values by key (``question`` is the title with its id); the
    HTML adds its own markup from the answer itself. ``command``: the study's verify
    (:func:`verify_command`), which a question verify has not run on names with its
    ``--question``; None: hpsearch did not make the study, and verify needs its objective.
    """
    cols = [*answer_columns(answers), "verify"]
    rows = []
    for a in answers:
        row = {k: cell(k, a.get(k)) for k in cols if k != "verify"}
        if "question" in row and a.get("title"):
            row["question"] = f"{a['title']} ({a.get('question')})"
        if "settled" in row:
            row["settled"] = settled_text(a) if a.get("status") == "answered" else DASH
        if not a.get("verdict"):
            row["verdict"] = a.get("status") or DASH
        elif "verdict" in row and (failing := trainability_text(a)):
            row["verdict"] = f"{row['verdict']}; {failing}"
        if not a.get("needed"):
            row["needed"] = DASH
        v = verify.get(str(a.get("question")))
        row["verify"] = verify_summary(v) if v else DASH if a.get("status") != "answered" \
            else f"{NOT_RUN}{command} --question {a.get('question')}" if command \
            else VERIFY_NEEDS_OBJECTIVE
        rows.append(row)
    return cols, rows


def trainability_text(a: Mapping[str, Any]) -> str:
    """An answer's trainability in a few words, when some trial failed to train: "training
    fails: sigmoid 5/12, relu 0/30 (open)" (the accuracy verdict beside it is about the
    trials that learned)."""
    t = a.get("trainability")
    if not isinstance(t, Mapping):
        return ""
    choices = t.get("choices") or {}
    if not any(isinstance(c, Mapping) and c.get("never_learned") for c in choices.values()):
        return ""
    if t.get("settled") == DIFFERENCE:
        return f"trainability: {t.get('verdict')}"
    rates = ", ".join(f"{k} {c.get('never_learned')}/{c.get('n')}" for k, c in choices.items()
                      if isinstance(c, Mapping))
    return f"never learned: {rates} ({t.get('settled')})"


def verify_summary(v: Mapping[str, Any]) -> str:
    """One question's verify result in one line that accounts for every comparison:
    ``relu better (1 of 5); 1 equivalent; 3 open; 13-16 seeds``."""
    rows = [r for r in v.get("rows") or [] if isinstance(r, Mapping)]
    if not rows:
        return DASH
    words = [verify_words(v, r) for r in rows]
    parts = []
    for w in dict.fromkeys(words):  # in the rows' order, each outcome once
        k = words.count(w)
        parts.append(f"{w} ({k} of {len(rows)})" if k < len(rows) else w)
    seeds = sorted({r["n"] for r in rows if isinstance(r.get("n"), int)})
    if seeds:
        span = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
        parts.append(f"{span} seed{'s' if seeds[-1] != 1 else ''}")
    return "; ".join(parts)


def _verify_value(v: Mapping[str, Any], r: Mapping[str, Any], side: str) -> str:
    value = r.get(side)
    param = v.get("param")
    return param_value(str(param), value) if param else str(value)


def verify_words(v: Mapping[str, Any], r: Mapping[str, Any]) -> str:
    """A comparison's outcome in a few words: ``relu better``, ``equivalent (±0.5 pts)``,
    ``open``; an interaction's: ``depends on activation``; then which twin never learned
    on how many seeds, when one did (``sigmoid never learned on 1 of 16 seeds``)."""
    words = _outcome_words(v, r)
    failed = r.get("never_learned")
    if isinstance(failed, Mapping) and r.get("kind") != "interaction":
        n = r.get("n")
        for side in ("baseline", "alternative"):
            k = failed.get(side)
            if isinstance(k, int) and k > 0:
                words += (f"; {_verify_value(v, r, side)} never learned on {k}"
                          + (f" of {n} seeds" if isinstance(n, int) else " seeds"))
    return words


def _outcome_words(v: Mapping[str, Any], r: Mapping[str, Any]) -> str:
    state = r.get("settled") or (DIFFERENCE if r.get("significant") else OPEN)
    if state == EQUIVALENT:
        margin = r.get("margin", v.get("margin"))
        return (f"equivalent (±{num(margin, 3)} pts)" if isinstance(margin, int | float)
                else "equivalent")
    if state != DIFFERENCE and r.get("accuracy_settled") == EQUIVALENT:
        # equivalent accuracies where both learned, failures to learn not settled
        margin = r.get("margin", v.get("margin"))
        within = f" ±{num(margin, 3)} pts" if isinstance(margin, int | float) else ""
        return f"open: accuracies equivalent{within}, failures to learn not settled"
    if state != DIFFERENCE:
        return OPEN if r.get("ties") is None or r.get("ties") != r.get("n") else \
            "open: the same on every seed"
    shift = r.get("shift", r.get("mean_diff"))
    if r.get("kind") == "interaction":
        return f"depends on {(r.get('params') or ['', 'B'])[1]}"
    if not isinstance(shift, int | float):
        return "difference"
    return f"{_verify_value(v, r, 'alternative' if shift > 0 else 'baseline')} better"


def level_text(level: Any) -> str:
    """An interval's confidence level: ``95%``, ``99.77%``."""
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0 < level < 1:
        return DASH
    return f"{100 * level:.4g}%"


def interval_text(low: Any, high: Any, level: Any = None) -> str:
    """``[-0.10, +0.80] at 99.77%``: an interval with the level it was decided at."""
    text = f"[{signed(low)}, {signed(high)}]"
    return text + (f" at {level_text(level)}" if level_text(level) != DASH else "")


VERIFY_HEAD = ["question", "comparison", "seeds", "test accuracy", "shift (pts)",
               "interval (pts)", "p (Holm)", "verdict"]


def verify_rows(verify: Mapping[str, Any]) -> Table:
    """Every verify comparison as one compact row, the same in every format: what was
    compared, the seeds it used, both twins' mean test accuracy, the shift with its
    interval at the level it was decided at, Holm's p and the verdict in words."""
    rows: list[list[Any]] = []
    for question, v in verify.items():
        several = len({r.get("trial_number") for r in v.get("rows") or []}) > 1
        for r in v.get("rows") or []:
            if r.get("kind") == "interaction" and r.get("label"):
                what = str(r["label"])
            else:
                what = (f"{v.get('param') or ''} {_verify_value(v, r, 'baseline')} -> "
                        f"{_verify_value(v, r, 'alternative')}").strip()
            if several and r.get("trial_number") is not None:
                what += f" (trial #{r['trial_number']})"
            base, alt = r.get("baseline_acc_mean"), r.get("alternative_acc_mean")
            accs = f"{acc(base)} -> {acc(alt)}" if base is not None and alt is not None \
                else DASH
            shift = r.get("shift", r.get("mean_diff"))
            rows.append([question, what, r.get("n", DASH), accs, signed(shift),
                         interval_text(r.get("ci_low"), r.get("ci_high"), r.get("ci_level")),
                         p_value(r.get("p_holm")), verify_words(v, r)])
    return VERIFY_HEAD, rows


def verify_facts(verify: Mapping[str, Any]) -> list[str]:
    """How each verify run was made, one line per distinct run (questions verified
    together share a line): the Holm family, seeds, data, when."""
    runs: dict[tuple[Any, ...], list[str]] = {}
    for question, v in verify.items():
        key = tuple(v.get(k) for k in ("family", "seeds", "dataset", "epochs", "n_test",
                                       "margin", "created"))
        runs.setdefault(key, []).append(question)
    out = []
    for (family, seeds, dataset, epochs, n_test, margin, created), questions in runs.items():
        bits = [", ".join(questions) + ":"]
        if isinstance(family, int):
            bits.append(f"{plural(family, 'comparison')} in one Holm family")
        if isinstance(seeds, int):
            bits.append(f"up to {plural(seeds, 'seed')} (added in looks)")
        if isinstance(margin, int | float):
            bits.append(f"equivalence margin ±{num(margin, 3)} pts")
        data = ", ".join(x for x in (
            str(dataset) if dataset else "",
            plural(epochs, "epoch") if isinstance(epochs, int) else "",
            f"test split n={num(n_test)}" if isinstance(n_test, int) else "") if x)
        if data:
            bits.append(data)
        if created:
            bits.append(f"run {created}")
        out.append(" ".join(bits[:2]) + ("; " + "; ".join(bits[2:]) if bits[2:] else ""))
    return out


VERIFY_NOTE = ("Twins of the best config that differ only in this param, trained on the "
               "same seeds (paired): a causal answer. Shift: alternative - baseline in test "
               "accuracy points (Hodges-Lehmann); each interval is at the level Holm's "
               "procedure decided its comparison at.")


def records_table(records: Sequence[Mapping[str, Any]]) -> Table:
    """A list of dicts (an answer's choices or effects) as one table, keys as columns."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys and not isinstance(r[k], Mapping | list)]
    return [label(k) for k in keys], [[cell(k, r.get(k)) for k in keys] for r in records]


# ---------------------------------------------------------------------------- interactions


INTERACTION_COLUMNS = ("question", "settled", "verdict", "p_holm")


def interaction_rows(interactions: Sequence[Mapping[str, Any]]) -> Table:
    """The interactions table: question (title and id), state, verdict, p (Holm)."""
    rows = []
    for x in interactions:
        if x.get("status") == "not_sampled":
            continue
        rows.append([f"{x.get('title') or x.get('question')} ({x.get('question')})",
                     settled_text(x) if x.get("status") == "answered" else DASH,
                     x.get("verdict") or x.get("status") or DASH, p_value(x.get("p_holm"))])
    return [label(k) for k in INTERACTION_COLUMNS], rows


def oriented(series: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The effect over training with the verdict's sign: ``winner - other``, so the end
    reads as the verdict does ("exponential > multistep by 1.10" is +1.10, not -1.10). The
    analysis stores ``a - b`` for its headline pair; the last row is the end of training."""
    rows = [dict(r) for r in series]
    end = rows[-1].get("diff") if rows else None
    if not isinstance(end, int | float) or not end < 0:
        return rows
    flip = {"a": "b", "b": "a"}
    out = []
    for r in rows:
        x = {flip.get(k, k): v for k, v in r.items()}
        for key in ("diff",):
            x[key] = -r[key] if isinstance(r.get(key), int | float) else r.get(key)
        lo, hi = r.get("ci_low"), r.get("ci_high")
        x["ci_low"] = -hi if isinstance(hi, int | float) else hi
        x["ci_high"] = -lo if isinstance(lo, int | float) else lo
        out.append(x)
    return out


def effect_by_epoch_table(series: Sequence[Mapping[str, Any]], unit: str = "pts") -> Table:
    """A question's headline contrast at every analysed epoch (95% pointwise), with the
    verdict's sign (:func:`oriented`)."""
    if not series:
        return [], []
    series = oriented(series)
    first = series[0]
    what = f"{first.get('a')} - {first.get('b')}" if first.get("a") is not None else "effect"
    return (["when", f"{what} ({unit})", "95% interval"],
            [[r.get("label"), signed_num(r.get("diff")),
              f"[{signed_num(r.get('ci_low'))}, {signed_num(r.get('ci_high'))}]"]
             for r in series])
