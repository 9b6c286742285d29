"""Artifacts (weights, figures, the report page) stored beside a study, atomically.

:func:`upload` writes an artifact whole or not at all (a temp name, fsync, size check,
rename; recorded in the study only then, and removed again when the study refuses the
record).
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

from hpsearch.errors import StorageError
from hpsearch.optuna_private import storage_of
from hpsearch.storage.files import CHUNK, clean_stale_temps, temp_path
from hpsearch.storage.specs import artifact_dir

# ---------------------------------------------------------------------------- artifacts

ARTIFACTS_PREFIX = "artifacts:"              # optuna.artifacts' study/trial system attr keys
# optuna-dashboard lists a study system attr with this prefix among the artifacts of trial
# N: Optuna refuses to change a finished trial ("Trial#N has already finished and can not
# be updated"), so this is how a file reaches a finished trial's page.
TRIAL_ARTIFACTS_PREFIX = "dashboard:artifacts:{trial_id}:"


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
                while chunk := content_body.read(CHUNK):
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
    ``trial_id``), replacing the one of that name; its id (see :func:`put_artifact`).

    All or nothing: an empty file is refused, and a new file the study will not record is
    removed from the store (a replaced one is swapped whole by the atomic store).
    """
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


def safe_artifact_id(artifact_id: Any) -> bool:
    """An id that is a plain file name in the store (what :func:`put_artifact` makes)."""
    return (isinstance(artifact_id, str) and re.fullmatch(r"[\w][\w.-]{0,127}", artifact_id)
            is not None and ".." not in artifact_id)


def put_artifact(study: Any, store: FileSystemArtifactStore, file_path: str, *,
                 filename: str, mimetype: str, trial_id: int | None = None) -> str:
    """Store ``file_path`` as the study's artifact ``filename`` (or trial ``trial_id``'s),
    replacing the one of that name: re-running a command updates its artifact in place
    (same id) instead of adding another copy. Returns the artifact id.

    The metadata is what ``optuna.artifacts.upload_artifact`` writes (``artifacts:<id>``)
    for the study, and what optuna-dashboard lists on a trial's page for a trial.
    """
    import json
    import uuid

    storage, study_id = storage_of(study)  # as optuna_dashboard.save_note does
    prefix = (ARTIFACTS_PREFIX if trial_id is None
              else TRIAL_ARTIFACTS_PREFIX.format(trial_id=trial_id))
    known = [json.loads(v) for k, v in storage.get_study_system_attrs(study_id).items()
             if k.startswith(prefix) and isinstance(v, str)]
    # Only an id that names a file in the store is reused: one planted in the study
    # ("../x") is refused by the store, and reusing it would block every later upload.
    same = [m for m in known if isinstance(m, dict) and m.get("filename") == filename
            and safe_artifact_id(m.get("artifact_id"))]
    artifact_id = str(same[0]["artifact_id"]) if same else str(uuid.uuid4())
    with open(file_path, "rb") as f:
        store.write(artifact_id, f)
    meta = {"artifact_id": artifact_id, "filename": filename, "mimetype": mimetype,
            "encoding": None}
    storage.set_study_system_attr(study_id, prefix + artifact_id, json.dumps(meta))
    return artifact_id
