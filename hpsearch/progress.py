"""Progress of training runs (verify, best): a bar on a terminal, a line per run elsewhere.

A tqdm bar writes nothing a log can use until the end, so when the stream is not a terminal
(a file, a scheduler's log, a pipe) every finished run writes one line instead: runs done of
the planned total, what finished, elapsed time and an ETA. Called as
``progress(done, total, what)``.
"""

from __future__ import annotations

import sys
import time
from typing import Any


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
