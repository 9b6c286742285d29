"""The companion study's trials as verify reads them (no training: all are stored)."""

from __future__ import annotations

import logging

import optuna
import pytest

from hpsearch.schema import TRAINING as ATTR
from hpsearch.settings import Settings
from hpsearch.space import TrialConfig
from hpsearch.storage import open_storage
from hpsearch.verify.store import Training, TrainingStore


@pytest.fixture
def store(tmp_path) -> TrainingStore:
    spec = str(tmp_path / "s.db")
    storage = open_storage(spec, create=True, heartbeat=True)
    optuna.create_study(storage=storage, study_name="s", direction="maximize")
    return TrainingStore(spec, storage, "s", Settings(dataset="digits", epochs=1))


def test_malformed_companion_trials_are_skipped_with_one_warning(store, caplog):
    wanted = [Training(TrialConfig(), 0), Training(TrialConfig(), 1)]
    for t, acc in zip(wanted, (0.91, 0.93), strict=True):
        store.study.add_trial(optuna.trial.create_trial(value=acc,
                                                        user_attrs={ATTR: store.attrs(t)}))
    same_key = store.attrs(wanted[0])["key"]
    for attrs, value in [({ATTR: {"key": ["a", "list"]}}, 0.5),   # TypeError: unhashable
                         ({ATTR: {"key": {"a": 1}}}, 0.5),
                         ({ATTR: {"key": 7}}, 0.5),
                         ({ATTR: "a string"}, 0.5),
                         ({}, 0.5),
                         ({ATTR: {"key": same_key}}, float("inf"))]:  # not an accuracy
        store.study.add_trial(optuna.trial.create_trial(value=value, user_attrs=attrs))
    caplog.set_level(logging.WARNING, logger="hpsearch")
    assert store.results(wanted, None) == {wanted[0]: 0.91, wanted[1]: 0.93}
    assert store.results(wanted, None) == {wanted[0]: 0.91, wanted[1]: 0.93}
    warned = [r.getMessage() for r in caplog.records if r.name == "hpsearch"]
    assert len(warned) == 1 and "skipped 6 trial(s) of 's:verify'" in warned[0], warned


def test_queued_copies_left_by_an_older_run_are_failed_not_kept(store):
    """Optuna's stale-trial retry queued dead claims as WAITING trials verify never runs."""
    from optuna.trial import TrialState

    wanted = [Training(TrialConfig(), 0)]
    store.study.add_trial(optuna.trial.create_trial(value=0.9,
                                                    user_attrs={ATTR: store.attrs(wanted[0])}))
    store.study.enqueue_trial({}, user_attrs={ATTR: store.attrs(Training(TrialConfig(), 1))})
    assert store.results(wanted, None) == {wanted[0]: 0.9}
    assert [t.state for t in store.study.get_trials()] == [TrialState.COMPLETE,
                                                           TrialState.FAIL]
