"""Stop signals: SIGTERM handled like Ctrl-C, so a stopped job fails its trial with a reason.

Slurm, Kubernetes and systemd stop a job with SIGTERM (then SIGKILL after a grace period).
Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the process where it
stands, which leaves the running trial RUNNING. :func:`stop_signals` makes SIGTERM raise
:class:`Terminated`, a KeyboardInterrupt, so every ``except KeyboardInterrupt`` path (fail
the trial, stop the ``--jobs`` workers, one message) covers both.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm, Kubernetes and systemd send to stop a job), handled like Ctrl-C:
    the running trial fails with this as its reason, and the command exits with 143."""

    def __str__(self) -> str:
        return "terminated by SIGTERM"


def interrupt_reason(exc: KeyboardInterrupt) -> str:
    return str(exc) if isinstance(exc, Terminated) else "interrupted by SIGINT (Ctrl-C)"


class _State:
    defer = 0                               # > 0: inside Optuna's ask/tell, hold signals
    pending: KeyboardInterrupt | None = None
    delivered: KeyboardInterrupt | None = None  # raised by the handler; see check()


def _stop(signum: int) -> KeyboardInterrupt:
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return Terminated()
    return KeyboardInterrupt()


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt / :class:`Terminated` while this block runs
    in the main thread, except inside :func:`deferred` (they are raised on leaving it).

    Only the first SIGTERM: the job's scheduler often sends SIGTERM to every process of the
    job and a parent forwards it too, and a second one must not cut the first one's
    clean-up short (a scheduler follows with SIGKILL when it has waited long enough). An
    ignored SIGINT (a background job) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        exc = _stop(signum)
        if _State.defer:
            _State.pending = _State.pending or exc
            return
        _State.delivered = exc
        raise exc

    def unraisable(info: Any) -> None:
        # A stop signal raised inside a weakref callback or finalizer cannot propagate:
        # Python reports it as "Exception ignored in ..." with a traceback, and check()
        # raises it again where it can. The person sees the one stop message, not that.
        if info.exc_value is not None and info.exc_value is _State.delivered:
            return
        hook_before(info)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, on_signal)
    hook_before, sys.unraisablehook = sys.unraisablehook, unraisable
    _State.defer, _State.pending, _State.delivered = 0, None, None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = hook_before


@contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals (see :func:`stop_signals`) until the block ends.

    Around Optuna's ``study.optimize`` of one trial: a signal that lands in ``ask`` or
    ``tell`` would leave the trial RUNNING (Optuna fails a trial only when its objective
    raises). Inside it :func:`interruptible` lets them through while the objective trains.
    """
    _State.defer += 1
    try:
        yield
    finally:
        _State.defer -= 1
    _raise_pending()


@contextmanager
def interruptible() -> Iterator[None]:
    """Let stop signals through again (a pending one at once): the objective's training."""
    held, _State.defer = _State.defer, 0
    try:
        _raise_pending()
        yield
    finally:
        _State.defer = held


def pending() -> KeyboardInterrupt | None:
    """The stop signal held by :func:`deferred` and not raised yet, if any."""
    return _State.pending


def _raise_pending() -> None:
    if _State.pending is not None and not _State.defer:
        exc, _State.pending = _State.pending, None
        raise exc


def check() -> None:
    """Raise a stop signal again if its KeyboardInterrupt was swallowed.

    A signal's exception is raised wherever the main thread is; when that is a finalizer or
    a weakref callback (garbage collection runs them at any allocation), Python prints
    "Exception ignored in ..." and goes on as if nothing happened: the run would finish its
    budget and exit 0. Called at every epoch and between trials, where an interrupt can be
    raised for real. Once the interrupt propagates, the process stops, so it is never
    raised twice.
    """
    if _State.delivered is not None and not _State.defer:
        exc, _State.delivered = _State.delivered, None
        raise exc


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def exit_with_parent(parent: int) -> None:
    """In a ``--jobs`` worker: SIGTERM when the process that started it (pid ``parent``) dies,
    however it died (SIGKILL; or SIGTERM to a program that calls the library with no
    handler for it), so no worker goes on training alone. Linux's ``PR_SET_PDEATHSIG``;
    elsewhere nothing (a worker there ends with its own work)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the line above could ask
        os.kill(os.getpid(), signal.SIGTERM)
