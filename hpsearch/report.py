"""``hpsearch report``: a study's findings as a self-contained HTML page, Markdown or JSON.

:func:`report` opens the study read-only (a missing file is an error, never a new empty
database), runs :func:`hpsearch.analysis.analyze` and renders one document. With the HTML
format it also publishes: the page is uploaded as an Optuna artifact of the study (into
``storage.artifact_dir(STORAGE)``, which ``hpsearch dashboard`` serves) and the verdicts
table is saved as the study's note, which optuna-dashboard shows on the study page.

The JSON document (``--format json``) has these keys; programs may rely on them:

``schema``
    ``1``; raised when a key below changes meaning or goes away.
``generated``
    UTC time of the report, ISO 8601.
``header``
    ``study_name``, ``storage`` (credentials masked), ``dataset``, ``question`` (the
    preset's question or null), ``direction``, ``n_trials`` ({state: count}),
    ``best_value``, ``best_trial_number``, ``provenance`` (the study's ``provenance``
    user attr as ``hpsearch optimize`` stored it: preset, fixed, narrowed, settings,
    versions, git_hash, ...; every string credential-masked).
``analysis``
    ``analyze(study).to_dict()`` unchanged: study_name, direction, n_trials,
    best_value, best_params, best_trial_number, importances, importance_agreement,
    answers, pruning, curves, notes (see ``hpsearch.analysis``).
``verify``
    {question: the study's ``verify:<question>`` user attr} as ``hpsearch verify``
    stored it (question, param, seeds, rows [...]); ``{}`` when verify has not run.
``best``
    The study's ``best`` user attr as ``hpsearch best`` stored it (config, val_acc,
    test_acc, per_class, confusion, ...), or null.

Non-finite numbers are written as null, so the output is strict JSON.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.errors import ConfigError, HPSearchError
from hpsearch.results import best_record
from hpsearch.space import active_params
from hpsearch.storage import check_output, load_study, mask

FORMATS = ("html", "md", "json")
SCHEMA = 1
DEFAULT_OUT = "report.html"
OBSERVATIONAL = ("Verdicts come from the study's own trials, which are observational: the "
                 "sampler chose the other params too. `hpsearch verify STORAGE --question ID` "
                 "gives the causal answer (paired re-runs that differ only in one param).")


@dataclass
class ReportResult:
    """What :func:`report` did: the file written (or None), the document and its data."""

    path: Path | None
    summary: str              # the questions + verdicts table, plain text for a terminal
    data: dict[str, Any]      # the JSON document (see the module docstring)
    text: str                 # the rendered document (HTML, Markdown or JSON)
    artifact_id: str | None = None
    warnings: list[str] = field(default_factory=list)


def report(storage: str, *, study_name: str | None = None, fmt: str = "html",
           out: str | Path | None = None, evaluators: Sequence[str] = ("ped_anova",),
           publish: bool = True) -> ReportResult:
    """Analyse the study in ``storage`` and render it as ``fmt`` (html, md or json).

    ``out``: where to write; HTML defaults to ``report.html``, Markdown and JSON are only
    returned (``ReportResult.text``) when ``out`` is None. ``publish`` (HTML only) uploads
    the page as a study artifact and saves the verdicts as the study note.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is unknown; choose from {', '.join(FORMATS)}")
    from hpsearch.analysis import analyze

    if out is not None or fmt == "html":  # a report must never replace a study
        check_output(out if out is not None else DEFAULT_OUT, storage)
    study = load_study(storage, study_name)
    trials = study.get_trials(deepcopy=False)
    analysis = analyze(study, evaluators=tuple(evaluators)).to_dict()
    data = clean({"schema": SCHEMA, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()),
                  "header": header(study, storage, analysis), "analysis": analysis,
                  "verify": verify_results(study),
                  "best": best_record(study.user_attrs.get("best"))})
    if fmt == "html":
        from hpsearch.report_html import render

        text = render(data, trial_rows(trials))
    elif fmt == "md":
        text = markdown(data)
    else:
        text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    path = Path(out) if out is not None else (Path(DEFAULT_OUT) if fmt == "html" else None)
    result = ReportResult(path, summary_table(data), data, text)
    if path is not None:
        _write(path, text)
        if fmt == "html" and publish:
            result.artifact_id = _publish(study, storage, path, notes_markdown(data),
                                          result.warnings)
    return result


# ---------------------------------------------------------------------------- the data


def header(study: optuna.Study, storage: str, analysis: Mapping[str, Any]) -> dict[str, Any]:
    """Who/what/where of the study: the part of the report that is not statistics."""
    prov = study.user_attrs.get("provenance") or {}
    return {
        "study_name": study.study_name, "storage": mask(storage),
        "dataset": study.user_attrs.get("dataset", prov.get("dataset")),
        "question": study.user_attrs.get("question", prov.get("question")),
        "direction": analysis["direction"],
        "n_trials": {s: n for s, n in analysis["n_trials"].items() if n},
        "best_value": analysis["best_value"],
        "best_trial_number": analysis["best_trial_number"],
        "provenance": _masked(prov),
    }


def verify_results(study: optuna.Study) -> dict[str, Any]:
    attrs = study.user_attrs
    return {k.split(":", 1)[1]: attrs[k] for k in sorted(attrs) if k.startswith("verify:")}


def trial_rows(trials: Sequence[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Per-trial rows for the figures: number, state, value and the sampled params.

    ``trial.params`` holds exactly the params that were active and not fixed by a preset,
    which is what varies across trials (the ``config`` user attr adds the constants).
    """
    rows = []
    for t in trials:
        value = t.value
        if value is None and t.state == TrialState.PRUNED and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]  # as Optuna's tell does
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or value is None:
            continue
        rows.append({"number": t.number, "state": t.state.name, "value": value,
                     "params": t.params})
    return rows


def best_config(best: Mapping[str, Any]) -> dict[str, Any]:
    """The active params of ``best["config"]``; as stored if another version wrote it."""
    config = best.get("config") or {}
    try:
        return dict(active_params(config))
    except (ConfigError, TypeError):
        return dict(config) if isinstance(config, Mapping) else {}


def clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, tuples -> lists, other objects -> str."""
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return clean(obj.item())
    return str(obj)


def _masked(obj: Any) -> Any:
    if isinstance(obj, str):
        return mask(obj)
    if isinstance(obj, Mapping):
        return {k: _masked(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_masked(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------- text


def _plain(value: Any) -> str:
    """A user-controlled string for a terminal: no control characters (escape codes)."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(value))


def _p(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def summary_table(data: Mapping[str, Any]) -> str:
    """The questions and their verdicts, aligned for a terminal (printed in every format)."""
    h = data["header"]
    states = ", ".join(f"{n} {s.lower()}" for s, n in h["n_trials"].items()) or "no trials"
    best = (f"best {h['best_value']:.4f} (trial #{h['best_trial_number']})"
            if h["best_value"] is not None else "no completed trial")
    lines = [f"study {_plain(h['study_name'])}: {states}; {best}"]
    rows = [("question", "param", "verdict", "p (Holm)")]
    for a in data["analysis"].get("answers", []):
        rows.append((_plain(a.get("question")), _plain(a.get("param")),
                     _plain(a.get("verdict") or a.get("status") or ""), _p(a.get("p_holm"))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True))
                     + "  " + r[3])
    return "\n".join(lines)


def _md(value: Any) -> str:
    """Markdown text (a table cell): no pipes, no newlines, no raw HTML."""
    text = value if isinstance(value, str) else _num(value)
    # "<" is what opens raw HTML in Markdown; ">" alone cannot, and "a > b" reads better.
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")
            .replace("\n", " "))


def _num(value: Any) -> str:
    from hpsearch.report_svg import fmt

    return fmt(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]


def notes_markdown(data: Mapping[str, Any]) -> str:
    """The verdicts table as Markdown: the study note optuna-dashboard shows."""
    h = data["header"]
    lines = [f"## hpsearch report ({data['generated']})", "",
             f"best value {_num(h['best_value'])} (trial #{h['best_trial_number']}); "
             f"trials: {_md(', '.join(f'{n} {s.lower()}' for s, n in h['n_trials'].items()))}",
             ""]
    rows = [(a.get("question"), a.get("param"), a.get("verdict") or a.get("status"),
             _p(a.get("p_holm"))) for a in data["analysis"].get("answers", [])]
    lines += _table(["question", "param", "verdict", "p (Holm)"], rows)
    return "\n".join(lines) + "\n"


def markdown(data: Mapping[str, Any]) -> str:
    """The same findings as the HTML page, as Markdown (a terminal or a PR comment)."""
    h, a = data["header"], data["analysis"]
    prov = h.get("provenance") or {}
    lines = [f"# hpsearch report: {_md(h['study_name'])}", "",
             f"- dataset: {_md(h.get('dataset'))}; direction: {h['direction']}",
             f"- trials: {_md(', '.join(f'{n} {s.lower()}' for s, n in h['n_trials'].items()))}",
             f"- best value: {_num(h['best_value'])} (trial #{h['best_trial_number']})",
             f"- storage: {_md(h['storage'])}; preset: {_md(prov.get('preset', '–'))}; "
             f"hpsearch {_md(prov.get('hpsearch_version', '–'))}, git "
             f"{_md(prov.get('git_hash', '–'))}", "", "## Questions", ""]
    answers = a.get("answers", [])
    lines += _table(["question", "param", "verdict", "best", "test", "p (Holm)"],
                    [(f"{x.get('title')} ({x.get('question')})", x.get("param"),
                      x.get("verdict") or x.get("status"), x.get("best"), x.get("test"),
                      _p(x.get("p_holm"))) for x in answers])
    if answers:
        lines += ["", f"> {OBSERVATIONAL}"]
    for ev, rows in (a.get("importances") or {}).items():
        lines += ["", f"## Importance ({_md(ev)})", ""]
        lines += _table(["param", "importance", "95% CI"],
                        [(r["param"], r["value"],
                          f"[{_num(r.get('ci_low'))}, {_num(r.get('ci_high'))}]")
                         for r in rows])
    agreement = (a.get("importance_agreement") or {}).get("summary")
    if agreement and len(a.get("importances") or {}) > 1:
        lines += ["", f"Agreement between evaluators: {_md(agreement)}"]
    if a.get("pruning"):
        lines += ["", "## Pruning", ""]
        lines += _table(["", "value"], [(k, _plainval(v)) for k, v in a["pruning"].items()])
    for question, v in (data.get("verify") or {}).items():
        lines += ["", f"## Verify: {_md(question)} ({_md(v.get('seeds', '?'))} seeds)", ""]
        lines += _table(["baseline", "alternative", "n", "mean diff [95% CI]", "p (Wilcoxon)",
                         "P(improvement)"],
                        [(r.get("baseline"), r.get("alternative"), r.get("n"),
                          f"{_num(r.get('mean_diff'))} [{_num(r.get('ci_low'))}, "
                          f"{_num(r.get('ci_high'))}]", _p(r.get("p_wilcoxon")),
                          _num(r.get("p_improvement"))) for r in v.get("rows", [])])
    best = data.get("best")
    if best:
        lines += ["", "## Best config", ""]
        lines += _table(["", "value"], [(k, _plainval(v)) for k, v in best.items()
                                        if k not in ("config", "per_class", "confusion")])
        lines += [""] + _table(["param", "value"],
                               list(best_config(best).items()))
    if a.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {_md(n)}" for n in a["notes"]]
    return "\n".join(lines) + "\n"


def _plainval(v: Any) -> str:
    return v if isinstance(v, str) else (_num(v) if not isinstance(v, dict | list) else
                                         json.dumps(v, default=str)[:200])


# ---------------------------------------------------------------------------- files


def _write(path: Path, text: str) -> None:
    """Write via a temporary file, so a reader never sees half a report; the temp files
    of runs killed before their rename are removed."""
    from hpsearch.results import clean_stale_temps, write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path.parent, path.name)
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise HPSearchError(f"cannot write the report to {path}: "
                            f"{exc.strerror or exc}") from None


def _publish(study: optuna.Study, storage: str, path: Path, note: str,
             warnings: list[str]) -> str | None:
    """Upload the page as a study artifact and save the note; failures only warn."""
    from optuna_dashboard import save_note

    from hpsearch.results import upload

    try:
        save_note(study, note)
    except Exception as exc:  # a read-only database must not cost the user the report
        warnings.append(f"could not save the study note: {mask(str(exc))[:200]}")
    try:
        return upload(study, storage, path, mimetype="text/html")
    except Exception as exc:
        warnings.append(f"could not upload the report as an artifact: {mask(str(exc))[:200]}")
        return None
