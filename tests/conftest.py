"""Shared fixtures: one torch thread, quiet Optuna, no network, tiny data."""

from __future__ import annotations

import pytest

pytest_plugins = ["postgres"]  # the postgres_url fixture (tests/postgres.py)


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
