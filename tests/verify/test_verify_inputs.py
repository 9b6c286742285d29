"""verify on input it cannot use: one clear line, before any work, and nothing lost."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hpsearch.cli import main
from hpsearch.errors import ConfigError
from hpsearch.verify import verify


@pytest.mark.parametrize("jobs", [65, 10**20])
def test_jobs_beyond_the_bound_are_refused_at_once(tmp_path, jobs):
    """Before: every worker's Process object was made first (1.5 GB and no output)."""
    with pytest.raises(ConfigError, match=r"--jobs must be an integer in 1\.\.64"):
        verify(str(tmp_path / "none.db"), jobs=jobs)
    out = CliRunner().invoke(main, ["verify", str(tmp_path / "none.db"), "--jobs", str(jobs)])
    assert out.exit_code == 2 and "1<=x<=64" in out.output, out.output
