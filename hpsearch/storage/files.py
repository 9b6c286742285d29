"""Files written whole or not at all: temp names with their owner, fsync, rename.

A crash mid-write leaves a temp file, never a truncated one; the next writer there
removes temp files whose process is gone.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from hpsearch.storage import owner

CHUNK = 1 << 20


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
