"""scripts/check_answers.py run as a user runs it (a subprocess): rows that miss their
targets fail the run, clean ones pass, and a real study is scored without counting the
planted lr hump as a false difference.

The rates themselves are measured by the script over >= 50 studies per row
(docs/calibration.md); nothing here imports the script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "check_answers.py"


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600, check=False)


def study(false_main: int = 0, false_inter: int = 0, covered: int = 10) -> dict:
    return {"false_main": false_main, "false_inter": false_inter, "covered": covered,
            "intervals": 10, "called_main": [], "called_inter": []}


def scores(tmp_path: Path, rows: dict[str, list[dict]]) -> Path:
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"studies": rows}))
    return path


def test_a_quick_row_that_misses_fails_the_run(tmp_path):
    # 3 of 4 null studies with a false difference: far beyond 5 %, even with 4 studies
    path = scores(tmp_path, {"null, large budget": [study(1), study(1), study(1), study()]})
    out = check("--scores", str(path), cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "null, large budget (4 studies): MISS" in out.stdout
    assert "false difference, main: 3/4 = 75.0% (target <= 5%) MISS" in out.stdout


def test_coverage_below_target_fails_and_clean_rows_pass(tmp_path):
    low = scores(tmp_path, {"null, findings budget": [study(covered=5)] * 4})
    assert check("--scores", str(low), cwd=tmp_path).returncode == 1
    clean = scores(tmp_path, {"null, findings budget": [study()] * 4,
                              "svm null, large": [study(), study(1), study(), study()]})
    out = check("--scores", str(clean), cwd=tmp_path)
    assert out.returncode == 0, out.stdout  # 1 in 4 is within a 99 % Wilson bound of 5 %
    assert out.stdout.count("PASS") >= 6 and "MISS" not in out.stdout


def test_fifty_studies_are_judged_on_the_rate_itself(tmp_path):
    rows = {"null, large budget": [study(1)] * 3 + [study()] * 47}  # 6 %: over 5 %
    assert check("--scores", str(scores(tmp_path, rows)), cwd=tmp_path).returncode == 1
    rows = {"null, large budget": [study(1)] * 2 + [study()] * 48}  # 4 %
    assert check("--scores", str(scores(tmp_path, rows)), cwd=tmp_path).returncode == 0


def test_bad_input_is_one_message(tmp_path):
    out = check("--rows", "no such row", cwd=tmp_path)
    assert out.returncode == 2 and "no row matches" in out.stderr
    (tmp_path / "x.json").write_text("{}")
    out = check("--scores", str(tmp_path / "x.json"), cwd=tmp_path)
    assert out.returncode == 2 and "not a check_answers --json or --log file" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_real_study_is_scored_without_the_lr_hump(tmp_path):
    out = check("--studies", "1", "--jobs", "1", "--rows", "null, large",
                "--json", str(tmp_path / "r.json"), "--log", str(tmp_path / "r.jsonl"),
                cwd=tmp_path)
    doc = json.loads((tmp_path / "r.json").read_text())
    [scored] = doc["studies"]["null, large budget"]
    assert "lr" not in scored["called_main"] and scored["intervals"] > 0
    missed = any(c["verdict"] == "MISS" for c in doc["rows"]["null, large budget"])
    assert out.returncode == int(missed) and ("MISS" in out.stdout) == missed
    again = check("--scores", str(tmp_path / "r.jsonl"), cwd=tmp_path)  # the log, judged
    assert again.returncode == out.returncode
    assert again.stdout.splitlines()[:-1] == out.stdout.splitlines()[:-1]
