"""Stop signals and the paired design's arm threads, in-process (the real process's exit
codes: test_signals_e2e.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from hpsearch.optimize.lockstep import Lockstep


def test_an_interrupt_stops_every_arm_mid_epoch_before_it_goes_on() -> None:
    """Ctrl-C lands in the main thread while one arm is deep in an epoch and the other waits
    for its turn: run() raises only once neither arm thread is left (an arm alive in torch
    at interpreter exit aborts the process with exit 134)."""
    started = threading.Event()
    ended: list[str] = []

    def arm(name: str):
        def run(on_epoch):
            try:
                for epoch in range(1, 1000):
                    started.set()
                    t = time.monotonic()
                    while time.monotonic() - t < 0.5:  # an epoch's work, in small steps
                        sum(range(1000))
                    on_epoch(epoch, 0.5)
            finally:
                ended.append(name)
        return run

    threading.Timer(0.0, lambda: started.wait(10) and os.kill(os.getpid(), signal.SIGINT)).start()
    before = set(threading.enumerate())
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Lockstep([arm("a"), arm("b")], lambda e, m: False).run()
    took = time.monotonic() - t0
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()
            and not isinstance(t, threading.Timer)]
    assert left == [] and ended == ["a"]  # b never got its turn
    assert took < 2.0  # mid-epoch, not at the end of the 0.5 s epochs that follow
