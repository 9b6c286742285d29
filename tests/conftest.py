"""Shared fixtures: one torch thread, quiet Optuna, no network, tiny data."""

from __future__ import annotations

import os
import signal

import pytest

# One thread per process: the suite runs on 2 shared cores, and workers spawned by tests
# (--jobs, subprocess CLIs) read this too (hpsearch.optimize honours OMP_NUM_THREADS).
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = ["support.postgres"]  # the postgres_url fixture


def pytest_configure(config: pytest.Config) -> None:
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A suite started in the background by a non-interactive shell (`pytest &`, some CI
    # runners) inherits an ignored SIGINT: the tests' Ctrl-C would never arrive, here or in
    # the processes they start (an ignored signal stays ignored across exec; a handled one
    # is reset to the default, which Python turns into KeyboardInterrupt).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the user's dataset cache or $HPSEARCH_DATA_DIR."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("HPSEARCH_DATA_DIR", raising=False)


@pytest.fixture
def base_study(tmp_path) -> str:
    """A plain four-trial study (one float param) in ``base.db``, made without hpsearch."""
    import optuna

    from hpsearch.storage import open_storage

    spec = str(tmp_path / "base.db")
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name="base",
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("dropout", 0.0, 0.7), n_trials=4)
    return spec
