"""Stop signals: SIGTERM handled like Ctrl-C, so a stopped job fails its trial with a reason.

Slurm, Kubernetes and systemd stop a job with SIGTERM (then SIGKILL after a grace period).
Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the process where it
stands, which leaves the running trial RUNNING. :func:`stop_signals` makes SIGTERM raise
:class:`Terminated`, a KeyboardInterrupt, so every ``except KeyboardInterrupt`` path (fail
the trial, stop the ``--jobs`` workers, one message) covers both.
"""

from __future__ import annotations

import signal
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


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while this block runs.

    Only the first one: the job's scheduler often sends SIGTERM to every process of the
    job and a parent forwards it too, and a second one must not cut the first one's
    clean-up short (a scheduler follows with SIGKILL when it has waited long enough).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
