"""Mounts for storage tests: read-only media (a read-only bind mount), a disk that fills.

``chmod`` does not stop root (the suite runs as root in CI), a read-only mount does. Tests
that need one are skipped with a reason where mounting is not allowed.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def readonly_view(directory: Path) -> Iterator[Path]:
    """``directory`` mounted read-only at a new path, unmounted afterwards."""
    view = Path(tempfile.mkdtemp(prefix="hpsearch-ro-"))
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(directory), str(view)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        view.rmdir()
        pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()[:200]}")
    try:
        yield view
    finally:
        # lazy: connections a test still holds open must not keep the mount busy
        subprocess.run(["umount", "-l", str(view)], check=False)
        view.rmdir()


@contextmanager
def tiny_disk(size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB: a disk that really fills up."""
    disk = Path(tempfile.mkdtemp(prefix="hpsearch-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs",
                           str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        disk.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()[:200]}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        disk.rmdir()
