"""Where studies and what commands computed are kept.

- :mod:`.specs`: what a storage string names (SQLite file, URL, journal), the checks a file
  gets before it is opened, and :func:`mask` for every spec shown to a person;
- :mod:`.checks`: what a file must be before it is opened, and what ``--out`` must never
  replace;
- :mod:`.open`: opening a storage (:func:`open_storage`, :func:`load_study`), heartbeats;
- :mod:`.journal` and :mod:`.owner`: journal files, and which process owns a file;
- :mod:`.files`, :mod:`.artifacts`, :mod:`.records`: atomic files, artifacts beside a
  study, and results stored in it (or beside it when it refuses them).
"""

from hpsearch.storage.artifacts import artifact_store, put_artifact, upload
from hpsearch.storage.checks import check_output, check_spec, writable
from hpsearch.storage.files import clean_stale_temps, write_atomic
from hpsearch.storage.open import (
    COMPANION_SUFFIX,
    HEARTBEAT_GRACE,
    HEARTBEAT_INTERVAL,
    load_study,
    open_storage,
    storage_errors,
    study_names,
)
from hpsearch.storage.records import SavedResult, best_record, save_result
from hpsearch.storage.specs import artifact_dir, error_reason, kind, mask, study_file

__all__ = [
    "artifact_store", "put_artifact", "upload", "clean_stale_temps", "write_atomic",
    "COMPANION_SUFFIX", "HEARTBEAT_GRACE", "HEARTBEAT_INTERVAL", "load_study", "open_storage",
    "storage_errors", "study_names", "SavedResult", "best_record", "save_result",
    "artifact_dir", "check_output", "check_spec", "error_reason", "kind", "mask", "study_file",
    "writable",
]
