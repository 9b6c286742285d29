"""Which process owns something (a running trial, a temp file), and whether it is gone.

A worker can tell for sure that another one is dead only on its own machine: same host
name, same PID namespace (containers on one host can share a host name), and that PID is
no longer running, or now belongs to a process that started later (PIDs are reused).
Everything else is "maybe alive": the caller falls back to a lease (heartbeats).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from optuna.trial import FrozenTrial


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, Linux), None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # the command name may hold spaces
    return int(fields[19]) if len(fields) > 19 else None


def identity() -> dict[str, Any]:
    """This process, as :func:`gone` can later check it: host, pid, namespace, start."""
    return {"host": platform.node(), "pid": os.getpid(), "pidns": _pid_namespace(),
            "started": _start_ticks(os.getpid())}


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs on this machine (a zombie, killed but not yet reaped, is dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rfind(b")") + 2:][:1] != b"Z"
    except OSError:
        return True


def gone(owner: Mapping[str, Any]) -> bool:
    """True only when ``owner`` (an :func:`identity`) is surely no longer running."""
    me = identity()
    if owner.get("host") != me["host"] or owner.get("pidns", "") != me["pidns"]:
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if not pid_alive(pid):
        return True
    started = owner.get("started")
    return started is not None and _start_ticks(pid) not in (None, started)


def is_local_dead_pid(host: str, pid: int) -> bool:
    """For names that embed ``host`` and ``pid`` (temp files): made here, by a dead process."""
    return host == platform.node() and not pid_alive(pid)


def never_beat_stale(trial: FrozenTrial, grace: float) -> bool:
    """A RUNNING trial with no heartbeat at all: its worker died between Optuna creating the
    trial and its first heartbeat (a kill in that window), or it is just starting. Judged by
    its start time: stale once it started more than ``grace`` seconds ago (a live worker
    beats at once, so it never gets there). Clocks of hosts sharing a storage must agree to
    within the grace period, as for heartbeats."""
    start = trial.datetime_start
    if start is None:
        return False
    now = datetime.now(start.tzinfo) if start.tzinfo is not None else datetime.now()
    return (now - start).total_seconds() > grace
