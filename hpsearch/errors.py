"""Every error the library raises on purpose; only ``cli.py`` turns them into messages."""

from __future__ import annotations


class HPSearchError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(HPSearchError):
    """A preset, ``--set`` override or flag names an unknown param or an invalid value."""


class DataError(HPSearchError):
    """A dataset is unknown, or not available locally and cannot be downloaded."""


class StorageError(HPSearchError):
    """A study storage cannot be opened, or the study in it cannot be found."""


class StudyError(HPSearchError):
    """A study exists but cannot be used for what was asked (no finished trials, ...)."""


class ObjectiveError(HPSearchError):
    """A user's objective (``--objective``) cannot be loaded, called or trusted."""
