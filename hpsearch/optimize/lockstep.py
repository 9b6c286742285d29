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

No arm outlives :meth:`Lockstep.run`. When the caller's thread is interrupted (Ctrl-C,
SIGTERM: Python raises them in the main thread only), the arms are stopped where they
stand and joined before the interrupt goes on: an arm left running inside torch when the
interpreter exits is ended by the C runtime in the middle of C++ code, which aborts the
process ("terminate called without an active exception", exit 134 instead of 130 or 143).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Result = TypeVar("Result")
# An arm: given on_epoch(epoch, metrics) -> stop?, train and return a result.
Arm = Callable[[Callable[[int, Any], bool]], Result]


# How long an interrupted run waits for its arms to leave torch (an op in progress ends first).
STOP_WAIT = 30.0


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

    def run(self) -> list[Result]:
        threads = [threading.Thread(target=self._arm, args=(i,), daemon=True)
                   for i in range(len(self.arms))]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException as exc:  # Ctrl-C or SIGTERM in the caller's (main) thread
            self._stop_arms(threads, exc)
            raise
        if self.error is not None:
            raise self.error
        return self.results

    def _stop_arms(self, threads: list[threading.Thread], exc: BaseException) -> None:
        """Stop every arm now and wait until none is left in torch (see the module's doc).

        Arms waiting for their turn or a decision see ``error`` and stop; an arm in the
        middle of an epoch gets :class:`_Stop` raised in its thread (at its next Python
        line, after the torch op in progress). Further interrupts wait for this.
        """
        with self.cond:
            self.error = self.error or exc
            for t in threads:
                if t.ident is not None and threads.index(t) in self.training:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident),
                                                               ctypes.py_object(_Stop))
            self.cond.notify_all()
        deadline = time.monotonic() + STOP_WAIT
        for t in threads:
            while t.is_alive() and time.monotonic() < deadline:
                try:
                    t.join(max(0.0, deadline - time.monotonic()))
                except KeyboardInterrupt:  # a second Ctrl-C: the arms are stopping already
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
