"""verify's companion study ("<study>:verify") is a record, never a study to read as one."""

from __future__ import annotations

import optuna
import pytest
from click.testing import CliRunner
from support.studies import plant_study

from hpsearch.cli import main
from hpsearch.storage import open_storage


@pytest.fixture
def with_companion(tmp_path) -> str:
    spec = plant_study(tmp_path / "s.db", 12, name="base")
    companion = optuna.create_study(storage=open_storage(spec), study_name="base:verify",
                                    direction="maximize")
    companion.add_trial(optuna.trial.create_trial(
        value=0.9731, user_attrs={"hpsearch:training": {"key": "k1", "seed": 0}}))
    return spec


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("command", ["report", "best"])
def test_a_companion_whose_study_was_deleted_is_not_read_as_a_study(with_companion, tmp_path,
                                                                    command):
    optuna.delete_study(study_name="base", storage=open_storage(with_companion))
    out = CliRunner().invoke(main, [command, with_companion, *(
        ["--out", str(tmp_path / "r.html")] if command == "report" else [])])
    line = _one_error_line(out)
    assert "'base:verify'" in line and "not a study" in line and "deleted" in line, line
    assert "0.9731" not in out.output
    assert not (tmp_path / "r.html").exists()


def test_naming_the_companion_points_to_its_study(with_companion, tmp_path):
    out = CliRunner().invoke(main, ["report", with_companion, "--study-name", "base:verify",
                                    "--format", "json"])
    line = _one_error_line(out)
    assert "not a study" in line and "use --study-name base" in line, line


def test_with_its_study_there_the_study_is_read(with_companion, tmp_path):
    out = CliRunner().invoke(main, ["report", with_companion, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert '"study_name": "base"' in out.output
