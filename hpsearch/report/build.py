"""``hpsearch report``: a study's findings as a self-contained HTML page, Markdown or JSON.

:func:`report` opens the study read-only (a missing file is an error, never a new empty
database), runs :func:`hpsearch.analysis.analyze` and renders one document: HTML
(:mod:`.html`, figures by :mod:`.figures`), Markdown (:mod:`.markdown`) or JSON. The renderers
import nothing from here. With the HTML format it also publishes: the page becomes the
study's ``report.html`` artifact (into ``storage.artifact_dir(STORAGE)``, which ``hpsearch
dashboard`` serves; a re-run replaces it in place), the verdicts with the verify and best
results become the study's note and a table on its page in optuna-dashboard.

The JSON document (``--format json``) has these keys; programs may rely on them:

``schema``
    ``2``; raised when a key below changes meaning or goes away (2: the answers are
    adjusted effects from every finished trial, see :mod:`hpsearch.analysis.effects`).
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
    answers (each with ``settled``, ``margin``, ``effect_by_epoch``, ...), pruning,
    curves, notes, interactions (see ``hpsearch.analysis.answers``).
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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.errors import ConfigError
from hpsearch.report.format import OBSERVATIONAL, best_config, name_verify
from hpsearch.report.markdown import markdown, notes_markdown, summary_table
from hpsearch.report.publish import (
    name_objective,
    publish_page,
    show_on_study_page,
    write_report,
)
from hpsearch.storage import best_record, check_output, load_study, mask

FORMATS = ("html", "md", "json")


SCHEMA = 2  # 2: answers adjusted from every finished trial (hpsearch.analysis.effects)


DEFAULT_OUT = "report.html"


# Re-exported: the renderers live in report/format.py, markdown.py and html.py, which never
# import this module (data flows one way: report -> renderers).
__all__ = ["FORMATS", "OBSERVATIONAL", "ReportResult", "best_config", "clean", "header",
           "markdown", "notes_markdown", "report", "summary_table", "trial_rows",
           "verify_results"]


@dataclass
class ReportResult:
    """What :func:`report` did: the file written (or None), the document and its data."""

    path: Path | None
    summary: str              # the questions + verdicts table, plain text for a terminal
    data: dict[str, Any]      # the JSON document (see the module docstring)
    text: str                 # the rendered document (HTML, Markdown or JSON)
    artifact_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what the CLI says besides "wrote"


def report(storage: str, *, study_name: str | None = None, fmt: str = "html",
           out: str | Path | None = None, evaluators: Sequence[str] = ("ped_anova",),
           publish: bool = True, margin: float | None = None,
           questions: Sequence[str] = (), interactions: Sequence[str] = (),
           chance: float | None = None, metric: int | str | None = None) -> ReportResult:
    """Analyse the study in ``storage`` and render it as ``fmt`` (html, md or json).

    ``margin``: what "equivalent" means, in accuracy points (default 0.5, see
    ``hpsearch.settings.MARGIN``); ``questions``: report only these (ids,
    params or interaction ids); ``interactions``: more interaction questions (``A:B``);
    ``chance``: the objective's chance level, for a study whose dataset hpsearch does not
    know (trials at chance never learned: answered as trainability, apart from accuracy);
    ``metric``: which objective of a multi-objective study (its index or its name from
    ``set_metric_names``; such a study without one is a :class:`ConfigError` that lists them).

    ``out``: where to write; HTML defaults to ``report.html``, Markdown and JSON are only
    returned (``ReportResult.text``) when ``out`` is None. ``publish`` (HTML only) uploads
    the page as a study artifact and saves the verdicts as the study note. A partial
    report (``questions`` given) is written but not published: it would replace the full
    report that the study's dashboard shows.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is unknown; choose from {', '.join(FORMATS)}")
    from hpsearch.analysis import analyze, one_objective

    if out is not None or fmt == "html":  # a report must never replace a study
        check_output(out if out is not None else DEFAULT_OUT, storage)
    study = load_study(storage, study_name)
    seen, which = one_objective(study, metric)  # the study itself unless it has several
    trials = seen.get_trials(deepcopy=False)
    analysis = analyze(seen, evaluators=tuple(evaluators), margin=margin,
                       questions=tuple(questions), interactions=tuple(interactions),
                       chance=chance).to_dict()
    if which is not None:
        analysis["notes"] = [which, *analysis.get("notes", [])]
    data = clean({"schema": SCHEMA, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()),
                  "header": header(study, storage, analysis), "analysis": analysis,
                  "verify": verify_results(study),
                  "best": best_record(study.user_attrs.get(schema.BEST),
                                      study.user_attrs.get(schema.BIAS_TWINS))})
    name_verify(data)
    if fmt == "html":
        from hpsearch.report.html import render

        text = render(data, trial_rows(trials))
    elif fmt == "md":
        text = markdown(data, trial_rows(trials))
    else:
        text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    path = Path(out) if out is not None else (Path(DEFAULT_OUT) if fmt == "html" else None)
    result = ReportResult(path, summary_table(data), data, text)
    if path is not None:
        write_report(path, text)
        if fmt == "html" and publish and questions:
            result.notes.append(f"not stored with the study: a report of {', '.join(questions)} "
                                "alone would replace its full report in the dashboard (run "
                                "without --question to update that)")
        elif fmt == "html" and publish:
            name_objective(study, result.warnings)
            result.artifact_id = publish_page(study, storage, path, notes_markdown(data),
                                               result.warnings)
            show_on_study_page(study, data, result.warnings)
    return result


# ---------------------------------------------------------------------------- the data


def header(study: optuna.Study, storage: str, analysis: Mapping[str, Any]) -> dict[str, Any]:
    """Who/what/where of the study: the part of the report that is not statistics."""
    prov = _provenance(study.user_attrs.get(schema.PROVENANCE))
    return {
        "study_name": study.study_name, "storage": mask(storage),
        "dataset": study.user_attrs.get(schema.DATASET, prov.get("dataset")),
        "question": study.user_attrs.get(schema.QUESTION, prov.get("question")),
        "direction": analysis["direction"],
        "n_trials": {s: n for s, n in analysis["n_trials"].items() if n},
        "best_value": analysis["best_value"],
        "best_trial_number": analysis["best_trial_number"],
        "provenance": _masked(prov),
    }


def _provenance(prov: Any) -> dict[str, Any]:
    """The ``provenance`` user attr in the shape hpsearch writes (a dict whose ``settings``
    is a dict), or ``{}``: another tool or a hand edit may have stored anything there."""
    if not isinstance(prov, Mapping):
        return {}
    out = {str(k): v for k, v in prov.items()}
    if not isinstance(out.get("settings", {}), Mapping):
        del out["settings"]
    return out


def verify_results(study: optuna.Study) -> dict[str, Any]:
    """The ``verify:<question>`` user attrs that have verify's shape (a dict whose ``rows``
    are dicts); anything else stored under such a key is left out."""
    out = {}
    for question, value in schema.verify_results(study).items():
        rows = value.get("rows")
        rows = [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []
        out[question] = {**value, "rows": rows}
    return out


def trial_rows(trials: Sequence[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Per-trial rows for the figures and the top-trials table (complete and pruned trials).

    ``value`` is the trial's value (a multi-objective study's trials as
    :func:`hpsearch.analysis.one_objective` sees them: the chosen objective); a pruned
    trial's is its last intermediate value, as Optuna's tell stores it. ``params`` holds
    exactly the params that were active and not fixed by a preset, which is what varies
    across trials. ``curve`` is the ``learning_curve`` user attr (train/val loss, val
    accuracy, lr and seconds per epoch), ``splits`` the split sizes the trial trained on
    (``run`` user attr), when the trial has them.
    """
    rows = []
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        value = t.values[0] if t.values else None
        if value is None and t.state == TrialState.PRUNED and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        if value is None or not math.isfinite(value):
            continue
        curve = schema.learning_curve(t)
        run = schema.run_info(t) or {}
        secs = curve.get("seconds") if curve else None
        total = (sum(x for x in secs if isinstance(x, int | float)) if isinstance(secs, list)
                 else t.duration.total_seconds() if t.duration else None)
        rows.append({"number": t.number, "state": t.state.name, "value": value,
                     "params": t.params, "intermediate": t.intermediate_values,
                     "curve": curve, "epochs": len(t.intermediate_values) or None,
                     "best_epoch": run.get("best_epoch"), "seconds": total,
                     "splits": run.get("splits")})
    return rows


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
