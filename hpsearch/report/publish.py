"""Writing the report: the file (atomically), the study's artifact, note and table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from hpsearch.errors import HPSearchError
from hpsearch.report.markdown import dashboard_tables
from hpsearch.storage import error_reason

# ---------------------------------------------------------------------------- files


def write_report(path: Path, text: str) -> None:
    """Write via a temporary file, so a reader never sees half a report; the temp files
    of runs killed before their rename are removed."""
    from hpsearch.storage import clean_stale_temps, write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path.parent, path.name)
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise HPSearchError(f"cannot write the report to {path}: "
                            f"{exc.strerror or exc}") from None


# hpsearch's part of the study note lies between these lines; what the user wrote outside
# them (before or after) is kept when a report is published again. Plain Markdown, not
# HTML comments: the dashboard shows a note's raw HTML as text.
NOTE_BEGIN = ("*hpsearch report: begin (written by `hpsearch report`; your text outside "
              "this part is kept)*")
NOTE_END = "*hpsearch report: end*"


def merged_note(old: str, ours: str) -> str:
    """The study note with hpsearch's part replaced (or added after the user's text)."""
    part = f"{NOTE_BEGIN}\n{ours.rstrip()}\n{NOTE_END}"
    if NOTE_BEGIN in old and NOTE_END in old.split(NOTE_BEGIN, 1)[1]:
        before, rest = old.split(NOTE_BEGIN, 1)
        after = rest.split(NOTE_END, 1)[1]
        return before + part + after
    if old.lstrip().startswith("## hpsearch report ("):  # written before the markers
        return part + "\n"
    return (old.rstrip() + "\n\n" + part + "\n") if old.strip() else part + "\n"


def publish_page(study: optuna.Study, storage: str, path: Path, note: str,
             warnings: list[str]) -> str | None:
    """Upload the page as a study artifact and save hpsearch's part of the note (the
    user's own note text is kept, :func:`merged_note`); failures only warn."""
    from optuna_dashboard import get_note, save_note

    from hpsearch.dashboard import REPORT_ARTIFACT
    from hpsearch.storage import upload

    try:
        save_note(study, merged_note(get_note(study) or "", note))
    except Exception as exc:  # a read-only database must not cost the user the report
        warnings.append(f"could not save the study note: {error_reason(exc, storage)}")
    try:
        return upload(study, storage, path, mimetype="text/html", filename=REPORT_ARTIFACT)
    except Exception as exc:
        warnings.append(f"could not upload the report as an artifact: "
                        f"{error_reason(exc, storage)}")
        return None


OBJECTIVE_NAME = "validation accuracy"  # what hpsearch's objective returns


def name_objective(study: optuna.Study, warnings: list[str]) -> None:
    """Name an hpsearch study's objective for the dashboard ("Objective 0" otherwise); a
    study another tool made keeps its names, or its lack of them (hpsearch cannot know
    what its value means)."""
    from hpsearch import schema

    if study.metric_names is not None or schema.provenance(study) is None \
            or len(study.directions) != 1:
        return
    import warnings as python_warnings

    try:
        with python_warnings.catch_warnings():  # "experimental" since Optuna 3.2: still is
            python_warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])
    except Exception as exc:  # as publish: a read-only database must not cost the report
        warnings.append(f"could not name the study's objective: {error_reason(exc)}")


def show_on_study_page(study: optuna.Study, data: Mapping[str, Any],
                        warnings: list[str]) -> None:
    """The verdicts (and best results) as tables on the study's page in optuna-dashboard."""
    from hpsearch.dashboard import save_table

    try:
        for graph_id, title, head, rows in dashboard_tables(data):
            save_table(study, graph_id, title, head, rows)
    except Exception as exc:  # as publish: a read-only database must not cost the report
        warnings.append(f"could not show the verdicts on the study page: "
                        f"{error_reason(exc)}")
