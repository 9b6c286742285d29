"""Train k arms of one config epoch by epoch in turn, and stop them together.

The paired design trains each sampled config under every choice of its question's param
and prunes the arms together. ``train()`` owns its loop, so each arm runs in a thread and
the arms take turns: one arm runs at a time, from one epoch's end to the next, in a fixed
order. After the last arm of a round reports an epoch, ``decide(epoch, metrics)`` makes one
decision for all of them (report the arms' mean to Optuna, ask the pruner), and every arm's
``on_epoch`` returns it. An arm that stops early (patience) leaves the round; its best
value stands for it in later rounds.

Why turns, not parallel threads: ``train()`` draws from torch's global generator (init,
dropout). Run one at a time, and with ``rng=(save, load)`` each arm's generator state is put
aside when it hands over the turn and put back when it gets it again, so every arm draws
exactly the numbers it would draw trained alone with its seed: the arms of a paired trial
share init, data order, dropout and augmentation draws wherever their shapes agree.

No arm outlives :meth:`Lockstep.run`. An arm left running when the interpreter exits is
ended by it in the middle of C++ code (a tensor freed, torch taking the GIL back while the
interpreter finalizes), which aborts the process ("terminate called without an active
exception", exit 134 instead of 130 or 143). So on a stop signal (Ctrl-C, SIGTERM: Python
handles them in the main thread only) the arms are stopped where they stand and waited for
before the interrupt goes on, and the wait must not be fooled: on CPython 3.11 a
KeyboardInterrupt raised inside ``Thread.join()`` marks a thread that is still running as
stopped (``_wait_for_tstate_lock`` releases the lock the running thread holds), so
``is_alive()`` says False for an arm that is still freeing its epoch's tensors. Under
:func:`~hpsearch.optimize.signals.stop_signals` the main thread therefore holds the signal
(:func:`~hpsearch.optimize.signals.deferred`: its handler records it and returns) and polls
for it between short joins, which it never interrupts; with any other handler, an interrupt
raised in the join is answered by waiting for every arm to count itself out (``exited``),
which the arm does once it has dropped all it trained with.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from hpsearch.optimize.signals import deferred, pending

Result = TypeVar("Result")
# An arm: given on_epoch(epoch, metrics) -> stop?, train and return a result.
Arm = Callable[[Callable[[int, Any], bool]], Result]


# How long an interrupted run waits for its arms to leave torch (an op in progress ends first).
STOP_WAIT = 30.0
# How often the main thread looks for a held stop signal while the arms train.
POLL = 0.05


class _Stop(Exception):
    """Raised inside an arm's thread when another arm failed or the run was interrupted: end
    this one quietly."""


class Lockstep(Generic[Result]):
    def __init__(self, arms: Sequence[Arm[Result]],
                 decide: Callable[[int, list[Any]], bool], *,
                 rng: tuple[Callable[[], Any], Callable[[Any], None]] | None = None) -> None:
        self.arms, self.decide, self.rng = list(arms), decide, rng
        self.rng_states: dict[int, Any] = {}
        self.cond = threading.Condition()
        self.turn = 0
        self.live = list(range(len(arms)))
        self.reported: dict[int, dict[int, Any]] = {}   # epoch -> arm -> metrics
        self.last: dict[int, Any] = {}                  # arm -> its last metrics
        self.decisions: dict[int, bool] = {}
        self.results: list[Any] = [None] * len(arms)
        self.error: BaseException | None = None
        self.training: set[int] = set()  # arms inside train(), between two epoch ends
        self.exited: set[int] = set()    # arms whose thread holds nothing of theirs any more

    def run(self) -> list[Result]:
        threads = [threading.Thread(target=self._thread, args=(i,), daemon=True,
                                    name=f"lockstep-arm-{i}")
                   for i in range(len(self.arms))]
        # In the main thread, a stop signal is held while the arms train (see the module's
        # doc): leaving this block raises it, once every arm is gone.
        main = threading.current_thread() is threading.main_thread()
        with deferred() if main else contextlib.nullcontext():
            try:
                for t in threads:
                    t.start()
                self._wait(threads)
            except BaseException as exc:  # an interrupt raised here all the same (another
                self._stop_arms(threads, exc)  # handler than stop_signals'), or a bug
                raise
        if self.error is not None:
            raise self.error
        return self.results

    def _wait(self, threads: list[threading.Thread]) -> None:
        """Join the arms; on a held stop signal, stop them (the caller raises it)."""
        for t in threads:
            while t.is_alive():
                stop = pending()
                if stop is not None:
                    self._stop_arms(threads, stop)
                    return
                t.join(POLL)

    def _stop_arms(self, threads: list[threading.Thread], exc: BaseException) -> None:
        """Stop every arm now and wait until none is left in torch (see the module's doc).

        Arms waiting for their turn or a decision see ``error`` and stop; an arm in the
        middle of an epoch gets :class:`_Stop` raised in its thread (at its next Python
        line, after the torch op in progress). Further interrupts wait for this. An arm is
        waited for until it counted itself out, not by ``is_alive()`` alone: an interrupt
        raised inside a join can leave that saying False for a running thread. A thread not
        started yet (interrupted in ``start()``) never trains: it sees ``error`` first.
        """
        with self.cond:
            self.error = self.error or exc
            for t in threads:
                if t.ident is not None and threads.index(t) in self.training:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident),
                                                               ctypes.py_object(_Stop))
            self.cond.notify_all()
        deadline = time.monotonic() + STOP_WAIT
        started = {i for i, t in enumerate(threads) if t.ident is not None}
        while not started <= self.exited and time.monotonic() < deadline:
            try:
                time.sleep(0.01)
            except KeyboardInterrupt:  # a second Ctrl-C: the arms are stopping already
                continue
        for t in threads:
            while t.is_alive() and time.monotonic() < deadline:
                try:
                    t.join(max(0.0, deadline - time.monotonic()))
                except KeyboardInterrupt:
                    continue

    # ------------------------------------------------------------------ inside arm threads

    def _wait_turn(self, i: int) -> None:
        while self.turn != i and self.error is None:
            self.cond.wait()
        if self.error is not None:
            raise _Stop

    def _pass_turn(self, i: int) -> None:
        """Give the turn to the next live arm after ``i`` (round-robin)."""
        later = [j for j in self.live if j > i] or self.live
        self.turn = later[0] if later else -1
        self.cond.notify_all()

    def _thread(self, i: int) -> None:
        """An arm's thread: ``_arm``, then count out. By then ``_arm``'s frame is gone with
        every tensor it held; what the arm produced is the Lockstep's (``results``,
        ``error``), freed by the caller's thread."""
        try:
            try:
                self._arm(i)
            finally:
                self.exited.add(i)  # one C call: a late _Stop is raised after it, not in it
        except _Stop:  # sent as this arm left its epoch: nothing of torch is left to stop
            pass

    def _arm(self, i: int) -> None:
        try:
            try:
                with self.cond:
                    self._wait_turn(i)
                    self.training.add(i)
                result = self.arms[i](lambda epoch, m: self._on_epoch(i, epoch, m))
            finally:
                with self.cond:
                    self.training.discard(i)
            self.results[i] = result
        except _Stop:
            return
        except BaseException as exc:  # noqa: BLE001 — handed to the caller's thread
            with self.cond:
                self.error = self.error or exc
                self.cond.notify_all()
            return
        with self.cond:
            self.live.remove(i)
            self._pass_turn(i)
            self._maybe_decide()

    def _on_epoch(self, i: int, epoch: int, metrics: Any) -> bool:
        with self.cond:
            self.training.discard(i)
            if self.error is not None:
                raise _Stop
            self.reported.setdefault(epoch, {})[i] = metrics
            self.last[i] = metrics
            if self.rng is not None:
                self.rng_states[i] = self.rng[0]()
            self._pass_turn(i)
            self._maybe_decide()
            while epoch not in self.decisions and self.error is None:
                self.cond.wait()
            if self.error is not None:
                raise _Stop
            stop = self.decisions[epoch]
            self._wait_turn(i)
            if self.rng is not None:
                self.rng[1](self.rng_states[i])
            self.training.add(i)
            return stop

    def _maybe_decide(self) -> None:
        """Once every live arm reported the newest epoch, decide it (called under the lock)."""
        if self.error is not None:
            return
        for epoch in sorted(self.reported):
            if epoch in self.decisions:
                continue
            if not all(j in self.reported[epoch] for j in self.live):
                return
            metrics = [self.reported[epoch].get(j, self.last.get(j))
                       for j in range(len(self.arms))]
            try:
                self.decisions[epoch] = bool(self.decide(epoch, metrics))
            except BaseException as exc:  # noqa: BLE001
                self.error = self.error or exc
            self.cond.notify_all()
