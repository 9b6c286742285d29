"""Journal files (``study.log``): torn lines repaired, heartbeats for dead workers' trials.

Optuna's journal is one JSON operation per line, appended under a file lock. Two things it
leaves to its user:

* A line cut short (disk full, a process killed mid-write, a copy cut off) is skipped when
  it is the last one, but the next append glues a complete line to it, and from then on
  the file cannot be read at all. :class:`RepairingBackend` checks the tail under the lock
  before every append and sets an incomplete tail aside in a side file; :func:`repair`
  also rescues a file that an older writer already glued together.
* Journal storages have no heartbeats, so the trial of a killed worker stays RUNNING and
  holds a place in the budget forever. :class:`HeartbeatJournalStorage` records one as a
  trial system attr (time and owner process) and calls a trial stale when its owner is
  surely dead (same host, see :mod:`.owner`) or its heartbeat is older than the
  grace period (other hosts: clocks must agree to within the grace period).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from hpsearch import optuna_private, schema
from hpsearch.storage import owner

log = logging.getLogger("hpsearch")
_OP = b'{"op_code":'


def _side_file(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    side = path.with_name(f"{path.name}.torn-{stamp}")
    n = 1
    while side.exists():
        side, n = path.with_name(f"{path.name}.torn-{stamp}-{n}"), n + 1
    return side


def _valid(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _set_aside(path: Path, removed: list[bytes], kept: int, what: str) -> str:
    side = _side_file(path)
    with side.open("wb") as f:
        f.write(b"\n".join(removed) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    size = sum(len(r) for r in removed)
    return (f"journal {path} {what} ({size} bytes, a write cut short by a crash or a full "
            f"disk): set aside in {side}; kept {kept} complete operations")


def repair_tail(path: Path) -> str | None:
    """Truncate an incomplete last line into a side file; the message, or None if intact.

    Call with the journal's lock held: then no other writer is in the middle of a line.
    """
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return None
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        f.seek(0)
        data = f.read()
        cut = data.rfind(b"\n") + 1
        message = _set_aside(path, [data[cut:]], data.count(b"\n"),
                             "ended in an incomplete line")
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return message


def repair(path: Path) -> str | None:
    """Rewrite a journal with unreadable lines: rescue what they hold, set the rest aside.

    An incomplete line followed by a complete one (what an append after a crash makes)
    reads as one bad line; the complete operation at its end is kept. Lock held.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    kept, removed, blank = [], [], 0
    for line in lines:
        if not line.strip():  # an empty line holds nothing (and Optuna cannot read it)
            blank += 1
        elif _valid(line):
            kept.append(line)
        elif (start := line.rfind(_OP)) > 0 and _valid(line[start:]):
            kept.append(line[start:])
            removed.append(line[:start])
        else:
            removed.append(line)
    if tail:
        removed.append(tail)
    if not removed and not blank:
        return None
    message = (_set_aside(path, removed, len(kept), f"had {len(removed)} unreadable line(s)")
               if removed else f"journal {path}: removed {blank} empty line(s)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.repair")
    tmp.write_bytes(b"".join(line + b"\n" for line in kept))
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    return message


class RepairingBackend(JournalFileBackend):
    """Optuna's file backend, but an append first sets aside an incomplete tail, and an
    append that fails (disk full) takes back what it wrote, so it never tears a line."""

    def __init__(self, file_path: str) -> None:
        # The open-lock works on every filesystem (the symlink lock fails on some NFS).
        super().__init__(file_path, lock_obj=JournalFileOpenLock(file_path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(entry, separators=(",", ":")) for entry in logs)
                + "\n").encode("utf-8")
        path = Path(self._file_path)
        self._lock.acquire()
        try:
            message = repair_tail(path)
            if message:
                log.warning(message)
            size = path.stat().st_size
            try:
                with path.open("ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                try:
                    os.truncate(path, size)
                except OSError:
                    pass
                raise
        finally:
            self._lock.release()

    def repair(self) -> str | None:
        """:func:`repair` under the journal's lock."""
        self._lock.acquire()
        try:
            return repair(Path(self._file_path))
        finally:
            self._lock.release()


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal storage with Optuna's heartbeat protocol (see the module docstring)."""

    def __init__(self, backend: RepairingBackend, *, interval: int, grace: int,
                 stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(backend)
        self._interval, self._grace, self._stale_callback = interval, grace, stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, schema.HEARTBEAT,
                                       {"time": time.time(), **owner.identity()})
        except Exception:  # the trial just finished, or the file failed: the main thread
            pass           # sees a failing file on its next write and says so once

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False,
                                         states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(schema.HEARTBEAT)
            if not isinstance(beat, dict):  # no heartbeat ever: judged by its start time
                if owner.never_beat_stale(trial, self._grace):
                    stale.append(optuna_private.trial_id(trial))
                continue
            if owner.gone(beat) or now - float(beat.get("time", now)) > self._grace:
                stale.append(optuna_private.trial_id(trial))
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(
            self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback


def open_journal(path: str, *, heartbeat: bool, interval: int, grace: int,
                 stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None,
                 ) -> BaseStorage:
    """The journal at ``path``, repaired first if an older writer left unreadable lines."""
    backend = RepairingBackend(path)

    def make() -> BaseStorage:
        if heartbeat:
            return HeartbeatJournalStorage(backend, interval=interval, grace=grace,
                                           stale_callback=stale_callback)
        return JournalStorage(backend)

    try:
        return make()
    except ValueError:  # a line that is not JSON: repair if we may write, else report it
        if not os.access(path, os.W_OK):
            raise
        message = backend.repair()
        if message is None:
            raise
        log.warning(message)
        backend = RepairingBackend(path)
        return make()
