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

import io
import json
import os
import platform
import re
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

from hpsearch import owner
from hpsearch.errors import HPSearchError, StorageError
from hpsearch.storage import _reason, _study_file, artifact_dir, check_output, mask

_CHUNK = 1 << 20
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:@(?P<host>[^/@]+))?\.tmp$")


# ---------------------------------------------------------------------------- temp files


def temp_path(path: Path) -> Path:
    """Where to write ``path`` before renaming it: ``.NAME.PID@HOST.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}@{platform.node()}.tmp")


def clean_stale_temps(directory: Path, name: str | None = None) -> list[Path]:
    """Remove temp files (of ``name`` only, if given) left by dead processes of this host."""
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or (name is not None and m["name"] != name):
            continue
        if owner.is_local_dead_pid(m["host"] or platform.node(), int(m["pid"])):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file: a reader sees the old file or the new."""
    tmp = temp_path(path)
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------- artifacts


class AtomicArtifactStore(FileSystemArtifactStore):
    """Optuna's file artifact store (same layout, so optuna-dashboard reads it), whose
    writes are whole or absent: temp name, fsync, size check, rename."""

    def __init__(self, base_path: str | Path) -> None:
        super().__init__(base_path)
        self.written: list[str] = []

    def write(self, artifact_id: str, content_body: IO[bytes]) -> None:
        final = self._get_filepath(artifact_id)
        tmp = temp_path(final)
        try:
            n = 0
            with tmp.open("wb") as f:
                while chunk := content_body.read(_CHUNK):
                    n += f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            expected = _size_of(content_body)
            if tmp.stat().st_size != n or (expected is not None and n != expected):
                raise OSError(f"artifact {artifact_id}: wrote {tmp.stat().st_size} of "
                              f"{expected if expected is not None else n} bytes")
            tmp.replace(final)
            self.written.append(artifact_id)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise


def _size_of(stream: IO[bytes]) -> int | None:
    """The size of a regular file behind ``stream`` (None for pipes and in-memory data)."""
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def artifact_store(spec: str, *, create: bool = True) -> AtomicArtifactStore:
    """The artifact store of ``spec``'s studies (created unless ``create=False``), with the
    temp files of uploads that a killed process left behind removed."""
    path = artifact_dir(spec)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the artifact directory {path}: "
                               f"{exc.strerror or exc}") from None
    clean_stale_temps(path)
    return AtomicArtifactStore(path)


def upload(study: optuna.Study, spec: str, file_path: Path, *, mimetype: str,
           filename: str | None = None, trial_id: int | None = None) -> str:
    """Upload ``file_path`` as the artifact ``filename`` of ``study`` (or of its trial
    ``trial_id``), replacing the one of that name; its id (see ``dashboard.put_artifact``).

    All or nothing: an empty file is refused, and a new file the study will not record is
    removed from the store (a replaced one is swapped whole by the atomic store).
    """
    from hpsearch.dashboard import put_artifact

    if file_path.stat().st_size == 0:
        raise StorageError(f"{file_path.name} is empty (a full disk?); not uploaded")
    store = artifact_store(spec)
    try:
        return put_artifact(study, store, str(file_path), filename=filename or file_path.name,
                            mimetype=mimetype, trial_id=trial_id)
    except BaseException:
        for artifact_id in store.written:  # written, but the study did not record it
            try:
                store.remove(artifact_id)
            except Exception:
                pass
        raise


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
        error = _reason(exc)
    return SavedResult(study.study_name, key, error,
                       _write_side_file(study.study_name, key, value, storage, error))


def _side_dirs(storage: str) -> list[Path]:
    path = _study_file(storage)
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


def best_record(value: Any) -> dict[str, Any] | None:
    """The study's ``best`` user attr in the shape readers rely on, or None.

    Another tool (or a hand edit) may have stored anything under that key: parts that are
    malformed (a confusion matrix whose cells are not counts, per-class accuracies that are
    not numbers, class names that are not strings) are dropped, not rendered.
    """
    if not isinstance(value, dict):
        return None
    out = dict(value)
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
