"""Stop signals and the paired design's arm threads, in-process (the real process's exit
codes: test_signals_e2e.py)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import weakref

import pytest

from hpsearch.optimize.lockstep import Lockstep
from hpsearch.optimize.signals import Terminated, check, interruptible, stop_signals


def _arms(started: threading.Event, ended: list[str], cleanup: float = 0.0):
    """Two arms whose epochs are 0.5 s of Python work; an arm that stops takes ``cleanup``
    seconds to let go of what it trained with (freeing a model's tensors)."""
    def arm(name: str):
        def run(on_epoch):
            try:
                for epoch in range(1, 40):  # at most 20 s: a lost signal fails, not hangs
                    started.set()
                    t = time.monotonic()
                    while time.monotonic() - t < 0.5:  # an epoch's work, in small steps
                        sum(range(1000))
                    on_epoch(epoch, 0.5)
            finally:
                time.sleep(cleanup)
                ended.append(name)
        return run
    return [arm("a"), arm("b")]


def _signal_once_started(started: threading.Event, signum: int, after: float = 0.0) -> None:
    def send() -> None:
        if started.wait(10):
            time.sleep(after)
            os.kill(os.getpid(), signum)
    threading.Timer(0.0, send).start()


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()
            and not isinstance(t, threading.Timer)]


def test_an_interrupt_stops_every_arm_mid_epoch_before_it_goes_on() -> None:
    """Ctrl-C lands in the main thread while one arm is deep in an epoch and the other waits
    for its turn: run() raises only once neither arm thread is left (an arm alive in torch
    at interpreter exit aborts the process with exit 134)."""
    started, ended = threading.Event(), []
    _signal_once_started(started, signal.SIGINT)
    before = set(threading.enumerate())
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Lockstep(_arms(started, ended), lambda e, m: False).run()
    took = time.monotonic() - t0
    assert _new_threads(before) == [] and ended == ["a"]  # b never got its turn
    assert took < 2.0  # mid-epoch, not at the end of the 0.5 s epochs that follow


@pytest.mark.parametrize("handler", ["python's", "stop_signals"])
def test_an_interrupted_run_waits_for_the_arm_that_is_still_letting_go(handler: str) -> None:
    """The abort seen after 961276e: on CPython 3.11 a KeyboardInterrupt raised inside
    ``Thread.join()`` marks the running arm as stopped, so a wait on ``is_alive()`` went on
    while the arm was still freeing its tensors, and the interpreter's exit ended that arm
    inside torch (exit 134). run() must return only once the arm has let go, whichever
    handler raised the interrupt (Python's own for SIGINT, or stop_signals' for SIGTERM)."""
    started, ended = threading.Event(), []
    arms = _arms(started, ended, cleanup=0.5)
    before = set(threading.enumerate())
    # 0.2 s into arm a's first epoch: the main thread is in its join (not still in start())
    if handler == "stop_signals":
        _signal_once_started(started, signal.SIGTERM, after=0.2)
        with pytest.raises(Terminated), stop_signals(), interruptible():
            Lockstep(arms, lambda e, m: False).run()
    else:
        _signal_once_started(started, signal.SIGINT, after=0.2)
        with pytest.raises(KeyboardInterrupt):
            Lockstep(arms, lambda e, m: False).run()
    assert ended == ["a"], "run() went on while an arm was still letting go"
    assert _new_threads(before) == []


def test_a_stop_signal_inside_a_weakref_callback_is_raised_again_without_a_traceback(
        capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage collection runs weakref callbacks (SQLAlchemy's among them) at any allocation;
    a stop signal that lands in one cannot propagate, and Python printed "Exception ignored
    in ..." with a traceback (seen in CI). check() raises it again; nothing else is shown."""
    class Owner:
        pass

    def callback(ref: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the handler runs here, inside the callback
            pass

    # Python's own hook, as a user's process has (pytest's collects these instead)
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    with pytest.raises(Terminated), stop_signals():
        owner = Owner()
        ref = weakref.ref(owner, callback)
        del owner  # the callback runs, the signal's Terminated is swallowed ...
        assert ref() is None
        check()  # ... and raised again here
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert sys.unraisablehook is sys.__unraisablehook__  # restored on the way out
