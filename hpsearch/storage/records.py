"""Keeping what a command computed: written whole to the study, or kept beside it.

``best`` and ``verify`` train for minutes or hours; a study they cannot write to (a
read-only file, a full disk, a lost server) must not cost that work. :func:`save_result`
stores a JSON-safe value as a study user attr or, when the study refuses it, in a side JSON
file whose place it returns. :func:`upload` writes an artifact whole or not at all (a temp
name, fsync, size check, rename; recorded in the study only then, and removed again when
the study refuses the record), so a crash mid-upload leaves a temp file, never a truncated
artifact, and the next store opened there removes temp files whose process is gone.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hpsearch.errors import HPSearchError
from hpsearch.storage.checks import check_output
from hpsearch.storage.files import write_atomic
from hpsearch.storage.specs import error_reason, mask, study_file

# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SavedResult:
    """Where :func:`save_result` put a result."""

    study_name: str
    key: str
    error: str | None = None       # why the study did not take it (None: it did)
    side_file: Path | None = None  # where it is instead (None: nowhere but the output)

    @property
    def stored(self) -> bool:
        return self.error is None

    def message(self) -> str:
        if self.stored:
            return f"stored as study user attr {self.key!r}"
        where = (f"it is saved in {self.side_file} instead" if self.side_file is not None
                 else "no side file could be written either: keep the output above")
        return (f"could not store the result in study {self.study_name!r} ({self.error}); "
                f"{where}")


def save_result(study: optuna.Study, key: str, value: Any, storage: str) -> SavedResult:
    """Store ``value`` (JSON-safe) as the study user attr ``key``; never raises for a
    study that refuses it: the value then goes to a side JSON file (see :class:`SavedResult`).
    """
    try:
        study.set_user_attr(key, value)
        return SavedResult(study.study_name, key)
    except Exception as exc:  # read-only file, full disk, lost server, locked file
        error = error_reason(exc, storage)
    return SavedResult(study.study_name, key, error,
                       _write_side_file(study.study_name, key, value, storage, error))


def _side_dirs(storage: str) -> list[Path]:
    path = study_file(storage)
    dirs = [path.resolve().parent] if path is not None else []
    return [*dirs, Path.cwd(), Path(tempfile.gettempdir())]


def _write_side_file(study_name: str, key: str, value: Any, storage: str,
                     error: str) -> Path | None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = re.sub(r"[^\w.-]+", "_", f"hpsearch-{study_name}-{key}-{stamp}") + ".json"
    data = json.dumps({"study_name": study_name, "storage": mask(storage), "key": key,
                       "value": value, "not_stored_because": error, "created": stamp},
                      indent=1, default=str).encode()
    for directory in dict.fromkeys(_side_dirs(storage)):
        path = directory / name
        try:
            check_output(path, storage)
            write_atomic(path, data)
            return path
        except (OSError, HPSearchError):
            continue
    return None


# ---------------------------------------------------------------------------- reading back


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def best_record(value: Any, bias_twins: Any = None) -> dict[str, Any] | None:
    """The study's ``best`` user attr in the shape readers rely on, or None.

    Another tool (or a hand edit) may have stored anything under that key: parts that are
    malformed (a confusion matrix whose cells are not counts, per-class accuracies that are
    not numbers, class names that are not strings) are dropped, not rendered.
    ``bias_twins``: the ``bias_twins`` user attr (:mod:`hpsearch.bias`, run on the best
    config), kept as ``"bias_twins"`` when it is a dict.
    """
    if not isinstance(value, dict):
        return None
    out = dict(value)
    if isinstance(bias_twins, dict):
        out["bias_twins"] = bias_twins
    confusion = out.get("confusion")
    if confusion is not None and not (
            isinstance(confusion, list) and confusion
            and all(isinstance(row, list) and len(row) == len(confusion)
                    and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                            for c in row) for row in confusion)):
        del out["confusion"]
    classes = out.get("classes")
    if classes is not None and not (isinstance(classes, list)
                                    and all(isinstance(c, str) for c in classes)):
        del out["classes"]
    per_class = out.get("per_class")
    if isinstance(per_class, dict):
        out["per_class"] = {str(k): v for k, v in per_class.items() if v is None or _number(v)}
    elif per_class is not None:
        del out["per_class"]
    if "config" in out and not isinstance(out["config"], dict):
        del out["config"]
    return out
