"""Progress, a bar on a terminal and a line per finished unit elsewhere.

A tqdm bar writes nothing a log can use until the end, so when the stream is not a terminal
(a file, a scheduler's log, a pipe) each finished unit writes one line instead: done of the
planned total, what finished, elapsed time and an ETA.

- :class:`ProgressBar`: a running study's finished trials (all workers), ``optimize``;
- :class:`RunProgress`: training runs (``verify``, ``best``), called as
  ``progress(done, total, what)``;
- :func:`clock`: elapsed time as ``1:02:09``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


class RunProgress:
    """``progress(done, total, what)`` after each finished run; ``close()`` at the end."""

    def __init__(self, *, quiet: bool = False, stream: Any = None, unit: str = "training",
                 ) -> None:
        self.quiet, self.unit = quiet, unit
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.bar: Any = None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.quiet:
            return
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit=self.unit, file=self.stream,
                                dynamic_ncols=True)
            self.bar.total = total
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(max(0, done - self.bar.n))
            return
        self.stream.write(self.line(done, total, what, time.monotonic() - self.start) + "\n")
        self.stream.flush()

    def line(self, done: int, total: int, what: str, elapsed: float) -> str:
        eta = clock(elapsed / done * max(0, total - done)) if done > 0 else "?"
        return (f"{self.unit}s {done}/{total} ({what}); elapsed {clock(elapsed)}, "
                f"ETA {eta} at most")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def clock(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:09``."""
    s = max(0, round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class ProgressBar:
    """Progress of the study's finished trials (all workers), updated after each trial.

    On a terminal: a tqdm bar. Otherwise (a file, a scheduler's log, a pipe) a bar would
    print nothing until the end, so each finished trial writes one line to stderr instead
    (every trial: a log that skips some reads as lost trials; ``every`` seconds between
    lines only when asked): trials done of the target, pruned and failed, the best value so
    far, elapsed time and an ETA.
    """

    def __init__(self, study: optuna.Study, total: int, initial: int, *,
                 stream: Any = None, every: float = 0.0) -> None:
        self.stream = stream or sys.stderr
        self.total, self.initial, self.every = total, initial, every
        self.best: float | None = None
        self.best_number: int | None = None
        self.start = time.monotonic()
        self.last_line = -math.inf
        self.bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="trial", file=self.stream,
                            dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        states = Counter(t.state for t in study.get_trials(deepcopy=False))
        done = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        if trial.state == TrialState.COMPLETE and trial.values:
            value = trial.values[0]
            sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0  # a user's loss
            if self.best is None or sign * value > sign * self.best:
                self.best, self.best_number = value, trial.number
        best = f"{self.best:.4f}" if self.best is not None else "–"
        if self.bar is not None:
            self.bar.update(max(0, done - self.bar.n))
            self.bar.set_postfix(best=best, refresh=False)
            return
        now = time.monotonic()
        if now - self.last_line < self.every and done < self.total:
            return
        self.last_line = now
        self.stream.write(self.line(done, states, now - self.start) + "\n")
        self.stream.flush()

    def line(self, done: int, states: Counter[TrialState], elapsed: float) -> str:
        ran = done - self.initial
        left = max(0, self.total - done)
        eta = clock(elapsed / ran * left) if ran > 0 else "?"
        best = (f"best {self.best:.4f} (trial #{self.best_number})" if self.best is not None
                else "no complete trial yet")
        failed = states[TrialState.FAIL]
        return (f"trials {done}/{self.total} finished ({states[TrialState.PRUNED]} pruned"
                + (f", {failed} failed" if failed else "") + f"); {best}; "
                f"elapsed {clock(elapsed)}, ETA {eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
