"""Shared fixtures: one torch thread, quiet Optuna, no network, tiny data."""

from __future__ import annotations

import os

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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the user's dataset cache or $HPSEARCH_DATA_DIR."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("HPSEARCH_DATA_DIR", raising=False)
