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


def publish_page(study: optuna.Study, storage: str, path: Path, note: str,
             warnings: list[str]) -> str | None:
    """Upload the page as a study artifact and save the note; failures only warn."""
    from optuna_dashboard import save_note

    from hpsearch.dashboard import REPORT_ARTIFACT
    from hpsearch.storage import upload

    try:
        save_note(study, note)
    except Exception as exc:  # a read-only database must not cost the user the report
        warnings.append(f"could not save the study note: {error_reason(exc, storage)}")
    try:
        return upload(study, storage, path, mimetype="text/html", filename=REPORT_ARTIFACT)
    except Exception as exc:
        warnings.append(f"could not upload the report as an artifact: "
                        f"{error_reason(exc, storage)}")
        return None


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
