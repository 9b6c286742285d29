"""Verify's trainings, stored as they finish in the study's own storage, shared by workers.

Each (twin, seed) training is one trial of a companion study ``<study>:verify`` in the same
storage: its user attrs hold the twin's config, the seed, the epochs and patience (and a
key over all of them and the study's data split); its value is the test accuracy. So a
re-run after Ctrl-C, SIGTERM or SIGKILL trains only what is missing, and several processes
(``verify --jobs N``) or machines on one PostgreSQL study share the work as optimize's
workers share a budget:

- a worker *claims* the trainings it is about to run: one RUNNING trial each, created with
  its attrs in one write (a trial number is never handed out twice). Two workers can claim
  one training at the same moment: the claim steps back (fails without training) when the
  same training has a COMPLETE trial or a RUNNING one with a lower number, so exactly one
  of them trains it. (Optuna's queue of WAITING trials is not used: on SQLite, popping one
  reads and writes in two transactions, so two processes can pop the same trial.)
- a claim whose worker died is failed, and the training claimed again by whoever needs it:
  at once when the worker ran on this host and its process is gone, else when its
  heartbeat (sent while it trains) is older than the storage's grace period;
- a worker claims up to ``batch`` seeds of one twin at a time, and trains them as one
  fused model where that pays (``iter_many``); each training is stored the moment it is
  over (a fused group's members when the group is), so a kill loses only the trainings
  in progress.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import math
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.errors import StorageError
from hpsearch.objectives import Params
from hpsearch.optuna_private import trial_id
from hpsearch.settings import Settings
from hpsearch.space import TrialConfig
from hpsearch.storage import (
    COMPANION_SUFFIX,
    HEARTBEAT_INTERVAL,
    load_study,
    mask,
    open_storage,
    storage_errors,
    study_file,
    study_names,
    writable,
)
from hpsearch.training import DeviceData, evaluate, iter_many, training_threads

COMPANION = COMPANION_SUFFIX   # the companion study's name: "<study>:verify"
POLL = 0.5                     # seconds between looks at other workers' running trainings

NOTE_ATTR = schema.NOTE  # what a measure stored beside a training (params it filled)

log = logging.getLogger("hpsearch")

# on_stored(training, test accuracy): after each training this process stored
OnStored = Callable[["Training", float], object]
# measure(trainings, data) -> (test value, note) per training, in order, as each finishes
Measure = Callable[[Sequence["Training"], Any], Iterable[tuple[float, dict[str, Any]]]]


@dataclass(frozen=True)
class Training:
    """One training verify needs: a twin's config on one seed."""

    config: TrialConfig | Params  # Params: a user's objective's (hpsearch.objectives)
    seed: int


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(worker: object) -> bool:
    """The worker ran on this host and its process is gone."""
    if not isinstance(worker, str) or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


class TrainingStore:
    """The companion study of ``study_name`` in ``spec``, for trainings with ``settings``'
    data split, epochs and patience."""

    def __init__(self, spec: str, storage: BaseStorage, study_name: str, settings: Settings,
                 *, fuse: int | None = None, batch: int = 8, measure: Measure | None = None,
                 key: dict[str, Any] | None = None) -> None:
        """``measure``: how trainings become test values (default: train hpsearch's models
        and evaluate them; a user's objective brings its own, :mod:`.own`); ``key``: more
        that a stored training must match (the objective's file hash)."""
        self.spec, self.settings, self.fuse, self.batch = spec, settings, fuse, max(1, batch)
        self.measure: Measure = measure or self._train_and_evaluate
        self.key = dict(key or {})
        self.notes: dict[Training, dict[str, Any]] = {}  # what a training stored beside it
        self.name = study_name + COMPANION
        # from open_storage(spec, heartbeat=True, requeue=False): see open_study
        self.storage = storage
        sampler = optuna.samplers.RandomSampler(seed=0)
        path = study_file(spec)
        self.readonly = path is not None and not writable(path)  # read-only media
        with storage_errors(spec):
            # Loaded when it is there: creating one writes even when it exists, and a study
            # on read-only media whose trainings are all stored must still give its answer.
            if self.name in study_names(storage):
                self.study = optuna.load_study(study_name=self.name, storage=storage,
                                               sampler=sampler)
            elif self.readonly:
                raise StorageError(self._readonly_message("none of them"))
            else:
                self.study = optuna.create_study(
                    storage=storage, study_name=self.name, direction="maximize",
                    load_if_exists=True, sampler=sampler)
        self.trained = 0  # trainings this process ran and stored
        self.skipped = 0  # malformed companion trials warned about
        self.rng = random.Random(os.getpid())

    # ------------------------------------------------------------------------ keys

    def attrs(self, t: Training) -> dict[str, Any]:
        s = self.settings
        desc = {"config": t.config.as_dict(), "seed": t.seed, "epochs": s.epochs,
                "patience": s.patience, "dataset": s.dataset, "val_size": s.val_size,
                "train_size": s.train_size, "split_seed": s.seed, **self.key}
        key = hashlib.sha1(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20]
        return {**desc, "key": key}

    # ------------------------------------------------------------------------ results

    def results(self, trainings: Sequence[Training], data: DeviceData | None,
                on_stored: OnStored | None = None) -> dict[Training, float]:
        """Test accuracy of every training: stored ones read, missing ones trained (here or
        by other workers), each stored as it finishes."""
        need = {self.attrs(t)["key"]: t for t in trainings}
        with storage_errors(self.spec):
            while True:
                trials = self._refresh()
                done = _complete(trials)
                if all(k in done for k in need):
                    self._read_notes(trials, need)
                    return {t: done[k] for k, t in need.items()}
                running = {_key(t) for t in trials if t.state == TrialState.RUNNING}
                missing = [t for k, t in need.items() if k not in done and k not in running]
                if missing and self.readonly:
                    raise StorageError(self._readonly_message(
                        f"{len(need) - len(missing)} of the {len(need)} this look needs"))
                if missing:
                    self._train(self._claim(missing), data, on_stored or (lambda t, a: None))
                else:
                    time.sleep(POLL)  # the rest is running in other workers

    def _readonly_message(self, stored: str) -> str:
        return (f"{mask(self.spec)} is read-only, and verify's trainings for this answer are "
                f"not all stored in it ({stored} are): copy it to a writable place and run "
                "verify on the copy to train the rest")

    def _refresh(self) -> list[FrozenTrial]:
        """The companion's trials that are trainings, after failing the claims of dead
        workers; malformed ones (:func:`malformed`) are left out with one warning."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        dead = [t for t in trials if t.state == TrialState.RUNNING
                and _dead_here(t.user_attrs.get(schema.WORKER))]
        for t in dead:
            self._fail(t._trial_id, "its worker process died")
        # Copies of dead claims that Optuna's stale-trial retry queued (an older hpsearch
        # opened the storage with it): verify never runs a queue, so none is left behind.
        queued = [t for t in trials if t.state == TrialState.WAITING]
        for t in queued:
            self._fail(t._trial_id, "a queued copy of a dead claim (verify claims trainings "
                                    "itself)")
        if dead or queued:
            trials = self.study.get_trials(deepcopy=False)
        bad = [t.number for t in trials if malformed(t)]
        if len(bad) > self.skipped:
            self.skipped = len(bad)
            shown = ", ".join(f"#{n}" for n in bad[:5]) + (", ..." if len(bad) > 5 else "")
            log.warning(f"skipped {len(bad)} trial(s) of {self.name!r} ({shown}) that are not "
                        "trainings as verify stores them (no key, or no numeric value)")
        return [t for t in trials if not malformed(t)]

    def _claim(self, missing: Sequence[Training]) -> list[tuple[int, Training]]:
        """Claims (trial id, training) on up to ``batch`` seeds of one twin of ``missing``.

        Which twin is drawn at random, so that workers that start together spread out.
        """
        twins = sorted({t.config for t in missing}, key=str)
        twin = twins[self.rng.randrange(len(twins))]
        chosen = [t for t in missing if t.config == twin][:self.batch]
        study_id = self.storage.get_study_id_from_name(self.name)
        claims = []
        for t in chosen:
            template = FrozenTrial(
                number=0, state=TrialState.RUNNING, value=None,
                datetime_start=datetime.datetime.now(), datetime_complete=None, params={},
                distributions={},
                user_attrs={schema.TRAINING: self.attrs(t), schema.WORKER: _worker_id()},
                system_attrs={}, intermediate_values={}, trial_id=0)
            claims.append((self.storage.create_new_trial(study_id, template), t))
        self._beat([tid for tid, _ in claims])
        # Two workers may have claimed one training: the lowest RUNNING claim trains it.
        trials = {trial_id(t): t for t in self.study.get_trials(deepcopy=False)}
        keep = []
        for tid, t in claims:
            me = trials[tid]
            if any(_key(o) == _key(me) and o.number != me.number
                   and (o.state == TrialState.COMPLETE
                        or (o.state == TrialState.RUNNING and o.number < me.number))
                   for o in trials.values()):
                self._fail(tid, "duplicate: another worker has this training")
            else:
                keep.append((tid, t))
        return keep

    def _train(self, claims: list[tuple[int, Training]], data: DeviceData | None,
               on_stored: OnStored) -> None:
        """Train the claimed trainings; each is stored (and ``on_stored`` called) the moment
        ``measure`` yields it, so a kill loses only what was still training."""
        if not claims:
            return
        left = dict(claims)
        try:
            with self._heartbeats(left):
                measured = self.measure([t for _, t in claims], data)
                for (tid, t), (acc, note) in zip(claims, measured, strict=True):
                    if note:
                        self.storage.set_trial_user_attr(tid, NOTE_ATTR, note)
                        self.notes[t] = note
                    self._tell(tid, t, acc)
                    del left[tid]
                    self.trained += 1
                    on_stored(t, acc)
        except BaseException as exc:  # Ctrl-C, SIGTERM, an error: free the claims at once
            reason = (f"{type(exc).__name__}: {exc}"[:300] if str(exc)
                      else type(exc).__name__)
            for tid in list(left):
                self._fail(tid, f"verify stopped: {reason}")
            raise

    def _train_and_evaluate(self, trainings: Sequence[Training], data: DeviceData | None,
                            ) -> Iterator[tuple[float, dict[str, Any]]]:
        """hpsearch's own models: train (fused where that pays), test accuracy each, yielded
        in order as soon as it and those before it are over (a fused group's members when
        the group is; a claim holds seeds of one twin, one group in order)."""
        assert data is not None
        configs = [t.config for t in trainings if isinstance(t.config, TrialConfig)]
        assert len(configs) == len(trainings)
        measured: dict[int, float] = {}
        first = 0  # the first training not yielded yet
        with training_threads(data.device):
            for j, run in iter_many([(c, t.seed) for c, t in zip(configs, trainings,
                                                                 strict=True)],
                                    data, epochs=self.settings.epochs,
                                    patience=self.settings.patience, fuse=self.fuse):
                assert run.model is not None  # train always returns the model
                measured[j] = evaluate(run.model, data, configs[j], "test")[1]
                run.model = None  # measured: its weights are not needed again
                while first in measured:
                    yield measured.pop(first), {}
                    first += 1

    def _read_notes(self, trials: Sequence[FrozenTrial], need: dict[str, Training]) -> None:
        for t in trials:
            note = t.user_attrs.get(NOTE_ATTR)
            k = _key(t)
            if isinstance(note, dict) and note and k in need and t.state == TrialState.COMPLETE:
                self.notes.setdefault(need[k], note)

    def _tell(self, tid: int, t: Training, acc: float) -> None:
        try:
            self.storage.set_trial_state_values(tid, TrialState.COMPLETE, [acc])
        except Exception:  # failed as stale meanwhile: keep the result all the same
            self.study.add_trial(optuna.trial.create_trial(
                value=acc,
                user_attrs={schema.TRAINING: self.attrs(t), schema.WORKER: _worker_id()}))

    def _fail(self, tid: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # another worker failed it first
            self.storage.set_trial_user_attr(tid, schema.FAILURE_REASON, reason)
            self.storage.set_trial_state_values(tid, TrialState.FAIL)

    def _beat(self, trial_ids: Sequence[int]) -> None:
        record = getattr(self.storage, "record_heartbeat", None)
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        if record is None or not interval:
            return
        for tid in trial_ids:
            with contextlib.suppress(Exception):  # a lost server: the claim goes stale
                record(tid)

    @contextlib.contextmanager
    def _heartbeats(self, claims: Mapping[int, object]) -> Iterator[None]:
        """Heartbeats for the claims (trial ids) left in ``claims``, which shrinks as they
        are stored."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_INTERVAL):
                self._beat(list(claims))

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def open_study(spec: str, study_name: str | None) -> tuple[optuna.Study, BaseStorage]:
    """The study and its storage with heartbeats, opened once for everything verify does.

    Once, because every open reads the file's header outside SQLite, and closing that file
    drops the process's SQLite locks on it (POSIX locks are per process and file): another
    worker closing its last connection would then take itself for the last reader and
    remove the WAL under this one.
    """
    storage = open_storage(spec, heartbeat=True, requeue=False)
    names = [n for n in study_names(storage) if not n.endswith(COMPANION)]
    name = study_name if study_name is not None else (names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        load_study(spec, study_name)  # raises the message that lists the choices
    with storage_errors(spec):
        return optuna.load_study(study_name=name, storage=storage), storage


def _key(t: FrozenTrial) -> str | None:
    """The training's key, or None for a trial that is not one verify wrote (see
    :func:`malformed`)."""
    a = t.user_attrs.get(schema.TRAINING)
    key = a.get("key") if isinstance(a, dict) else None
    return key if isinstance(key, str) and key else None


def malformed(t: FrozenTrial) -> bool:
    """A companion trial that is not a training as verify stores it: no key (or one that is
    not a string: another tool, a hand edit), or a finished value that is not a number."""
    if _key(t) is None:
        return True
    if t.state != TrialState.COMPLETE:
        return False
    values = t.values
    return not (values is not None and len(values) == 1 and isinstance(values[0], float)
                and math.isfinite(values[0]))


def _complete(trials: Sequence[FrozenTrial]) -> dict[str, float]:
    """key -> test accuracy of the first COMPLETE trial of each training."""
    out: dict[str, float] = {}
    for t in sorted(trials, key=lambda t: t.number):
        k = _key(t)
        if k is not None and k not in out and t.state == TrialState.COMPLETE \
                and not malformed(t):
            out[k] = float(t.values[0])
    return out


def stored_trainings(study: optuna.Study) -> list[FrozenTrial]:
    """The COMPLETE trainings of a companion study (for tests and tools)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not malformed(t)]
