"""The page a person reads: verify rows, best's spread, and the report's width at 1400 px.

A planted study gets verify and best results shaped as ``hpsearch verify`` and ``hpsearch
best`` store them (intervals at a Holm level of 0.9977, comparisons that stopped at
different seed counts, three seeds that agreed), and every format is read as a user reads
it: the terminal summary, the Markdown, the HTML page and, in headless Chromium, its width.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from support.studies import plant_study

from hpsearch.report import format as fmt
from hpsearch.report import report
from hpsearch.storage.open import load_study


@pytest.fixture(autouse=True)
def _quick_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from hpsearch import analysis

    monkeypatch.setattr(analysis, "analyze", functools.partial(
        analysis.analyze, n_bootstrap_importance=3, n_noise=5))


def _row(base: Any, alt: Any, n: int, shift: float, lo: float, hi: float, p: float,
         settled: str, **extra: Any) -> dict[str, Any]:
    return {"question": "q", "trial_number": 7, "baseline": base, "alternative": alt,
            "baseline_label": f"best trial #7 as found ({base})",
            "alternative_label": f"best trial #7 with {alt}", "n": n, "shift": shift,
            "mean_diff": shift, "ci_low": lo, "ci_high": hi, "ci_level": 0.9977,
            "p_wilcoxon": p / 5, "p_holm": p, "significant": settled == "difference",
            "p_improvement": 0.9, "wins": n - 1, "ties": 0, "losses": 1,
            "verdict": f"a long sentence about {base} and {alt} " * 4, "settled": settled,
            "margin": 0.5, "p_sequential": p / 5, "looks": 2,
            "baseline_acc_mean": 0.97, "alternative_acc_mean": 0.97 + shift / 100,
            "baseline_accs": [0.97] * n, "alternative_accs": [0.97 + shift / 100] * n,
            "changed": {}, "baseline_config": {}, "alternative_config": {}, **extra}


VERIFY = {
    "scheduler": {"question": "scheduler", "param": "scheduler", "seeds": 26,
                  "family": 7, "dataset": "digits", "epochs": 4, "n_test": 360,
                  "margin": 0.5, "created": "2026-12-07T03:00:00Z",
                  "rows": [_row("none", "step", 26, 0.12, -0.4, 0.6, 0.6, "open"),
                           _row("none", "cosine", 8, 0.05, -0.2, 0.3, 0.01, "equivalent"),
                           _row("none", "exponential", 13, -2.3, -3.1, -1.4, 0.001,
                                "difference")]},
    "weight_penalty": {"question": "weight_penalty", "param": "weight_penalty", "seeds": 26,
                       "family": 7, "dataset": "digits", "epochs": 4, "n_test": 360,
                       "margin": 0.5, "created": "2026-12-07T03:00:00Z",
                       "rows": [_row("l2", "l1", 13, 1.1, 0.3, 1.9, 0.004, "difference"),
                                _row("l2", "none", 13, 0.0, -0.3, 0.3, 0.5, "equivalent"),
                                _row("l2", "l1_l2", 16, 0.3, -0.2, 0.9, 0.4, "open"),
                                _row("l2", "l2", 16, 0.0, 0.0, 0.0, 1.0, "open")]},
}
N_ROWS = 7


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> str:
    storage = plant_study(tmp_path_factory.mktemp("page") / "study.log", 40)
    study = load_study(storage)
    for question, value in VERIFY.items():
        study.set_user_attr(f"verify:{question}", value)
    study.set_user_attr("best", {"config": study.trials[0].user_attrs["config"],
                                 "val_acc": 0.97, "test_acc": 0.9822, "test_acc_std": 0.0,
                                 "test_acc_n": 3, "test_accs": [0.9822] * 3,
                                 "seeds": [0, 1, 2], "retrain": True, "threads": 1,
                                 "train_seconds": [1.0, 1.0, 1.0]})
    return storage


def test_verify_is_one_compact_row_per_comparison_in_markdown(verified):
    md = report(verified, fmt="md").text
    section = md[md.index("## Verify"):]
    section = section[:section.index("\n## ", 3)]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + N_ROWS  # the header and one row per comparison
    head = rows[0]
    assert head.count("|") == len(fmt.VERIFY_HEAD) + 1
    assert "95%" not in section  # the intervals are at 99.77%, and say so
    assert "[-3.10, -1.40] at 99.77%" in section
    assert "| scheduler | scheduler none -> exponential | 13 | 0.9700 -> 0.9470 |" in section
    assert "none better" in section and "l1 better" in section
    assert "equivalent (±0.5 pts)" in section
    # how the run was made: once, not after every question
    assert section.count("7 comparisons in one Holm family") == 1
    assert "Verify: " not in md  # no table per question


def test_questions_table_verify_column_is_compact_and_complete(verified):
    doc = report(verified, fmt="json").data
    answers = [a for a in doc["analysis"]["answers"] if a["question"] == "weight_penalty"]
    _, rows = fmt.verdict_rows(answers, doc["verify"])
    cell = rows[0]["verify"]
    # every comparison is counted, and the seeds each used
    assert cell == ("l1 better (1 of 4); equivalent (±0.5 pts) (1 of 4); open (2 of 4); "
                    "13-16 seeds")
    assert len(cell) < 100


def test_a_question_verify_has_not_run_names_the_verify_that_would_run_it(verified,
                                                                                   tmp_path):
    """The command is this study's, runnable as printed: its storage, its name, the
    question; the reading guide names the same verify (no STORAGE placeholder)."""
    doc = report(verified, fmt="json").data
    waiting = [a for a in doc["analysis"]["answers"]
               if a["status"] == "answered" and a["question"] not in doc["verify"]]
    assert waiting
    command = f"hpsearch verify {shlex.quote(verified)} --study-name {doc['header']['study_name']}"
    assert fmt.verify_command(doc) == command
    _, rows = fmt.verdict_rows(waiting, doc["verify"], command)
    assert [r["verify"] for r in rows] == [f"not run: {command} --question {a['question']}"
                                           for a in waiting]
    for text in (report(verified, fmt="md").text, fmt.how_to_read(doc)):
        assert "STORAGE" not in text and f"(`{command}`)" in text
    # in the page's narrow column its options stay whole (not broken at --study-name's hyphens)
    html = report(verified, fmt="html", out=tmp_path / "r.html", publish=False).text
    assert 'not run: <code class="cmd">hpsearch verify ' in html
    assert '<span class="nw">--study-name</span>' in html


def test_terminal_report_prints_each_comparison_with_its_seeds(verified, tmp_path):
    from click.testing import CliRunner

    from hpsearch.cli import main

    result = CliRunner().invoke(main, ["report", verified, "--format", "md", "--out",
                                       str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("verify ("))
    table = lines[start + 1:start + 2 + N_ROWS]
    assert table[0].split() == ["question", "comparison", "seeds", "test", "accuracy",
                                "shift", "(pts)", "interval", "(pts)", "p", "(Holm)",
                                "verdict"]
    wp = [line for line in table if line.strip().startswith("weight_penalty")]
    assert [re.split(r"\s{2,}", line.strip())[2] for line in wp] == ["13", "13", "16", "16"]
    assert "26 seeds" not in result.output and "comparisons on" not in result.output
    # columns line up: every row's verdict starts where the header's does
    col = table[0].index("verdict")
    assert all(len(line) > col and line[col - 2:col] == "  " for line in table[1:])


def test_html_verify_is_one_table_and_best_says_seeds_agreed(verified, tmp_path):
    html = report(verified, out=tmp_path / "r.html", publish=False).text
    section = html[html.index('<section id="verify">'):]
    section = section[:section.index("</section>")]
    assert section.count("<table") == 1 and section.count("<tr>") == 1 + N_ROWS
    assert section.count("<th>") == len(fmt.VERIFY_HEAD)
    assert "95%" not in section and "at 99.77%" in section
    assert "0.9822 on every seed (all 3 seeds agreed, std 0)" in html
    assert "± 0.0000" not in html


@pytest.mark.e2e
def test_report_fits_1400_px_in_chromium(verified, tmp_path):
    """No horizontal overflow at 1400 px: the verify table, the figures, the tables."""
    from support import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    html = report(verified, out=tmp_path / "r.html", publish=False).text
    width, page = browser.page_width(html, tmp_path, width=1400)
    assert page.errors == []
    assert width.client >= 1300 and width.scroll <= width.client, width.over
    assert width.over == []
    assert 'id="verify"' in page.dom and "at 99.77%" in page.dom


# ---------------------------------------------------------------------------- what is stored


def test_partial_report_shows_the_interaction_and_keeps_the_full_one(tmp_path):
    from optuna.artifacts import get_all_artifact_meta
    from optuna_dashboard import get_note

    storage = plant_study(tmp_path / "study.log", 40)
    full = report(storage, out=tmp_path / "full.html")
    study = load_study(storage)
    note = get_note(study)
    artifact = tmp_path / "study.log.artifacts" / str(full.artifact_id)
    stored = artifact.read_bytes()
    part = report(storage, out=tmp_path / "part.html", questions=["dropout"],
                  interactions=["dropout:activation"])
    # the interaction the user named is on the page, though --question narrowed it
    assert [x["question"] for x in part.data["analysis"]["interactions"]] == [
        "dropout_x_activation"]
    assert 'id="interactions"' in part.text and "dropout_x_activation" in part.text
    # ... and the study's full report stays what the dashboard shows
    assert part.artifact_id is None and part.notes and "not stored" in part.notes[0]
    study = load_study(storage)
    assert get_note(study) == note and artifact.read_bytes() == stored
    assert len([m for m in get_all_artifact_meta(study)
                if m.filename == "report.html"]) == 1


def test_the_users_own_note_is_kept_and_the_objective_named(tmp_path):
    from optuna_dashboard import get_note, save_note

    storage = plant_study(tmp_path / "study.log", 30)
    save_note(load_study(storage), "My own notes: lr 0.1 diverged on the cluster.")
    for out in ("a.html", "b.html"):  # twice: hpsearch's part is replaced, not added
        report(storage, out=tmp_path / out)
    study = load_study(storage)
    note = get_note(study)
    assert note.startswith("My own notes: lr 0.1 diverged on the cluster.")
    assert note.count("## hpsearch report (") == 1 and "bn_placement" in note
    assert study.metric_names == ["validation accuracy"]


def test_merged_note_keeps_text_on_both_sides():
    from hpsearch.report.publish import NOTE_BEGIN, NOTE_END, merged_note

    first = merged_note("", "## hpsearch report (1)\nold")
    assert first.startswith(NOTE_BEGIN) and NOTE_END in first
    mine = "before\n\n" + first + "\nafter"
    again = merged_note(mine, "## hpsearch report (2)\nnew")
    assert again.startswith("before\n\n") and again.endswith("\nafter")
    assert "old" not in again and "new" in again
    # a note of an older hpsearch (its part alone, no markers) is replaced
    assert "old" not in merged_note("## hpsearch report (0)\nold", "## hpsearch report (2)")


def test_a_study_hpsearch_did_not_make_reads_as_one(tmp_path):
    """No epochs: no "end of training", no pruning table, no effect over training; one
    line for the built-in questions not sampled; no verify that cannot run."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from hpsearch.storage.open import open_storage

    study = optuna.create_study(storage=open_storage(str(tmp_path / "svm.db"), create=True),
                                study_name="svm", direction="maximize")
    rng = __import__("random").Random(3)
    dists = {"kernel": CategoricalDistribution(["rbf", "poly", "sigmoid"]),
             "C": FloatDistribution(1e-3, 1e3, log=True)}
    for _ in range(40):
        kernel = rng.choice(["rbf", "poly", "sigmoid"])
        value = {"rbf": 0.97, "poly": 0.95, "sigmoid": 0.85}[kernel] + rng.gauss(0, 0.01)
        study.add_trial(optuna.trial.create_trial(
            params={"kernel": kernel, "C": 10 ** rng.uniform(-3, 3)}, distributions=dists,
            value=min(value, 1.0)))
    storage = str(tmp_path / "svm.db")
    md = report(storage, fmt="md").text
    assert "end of training" not in md and "over training" not in md
    assert "## Pruning" not in md and "epochs per trial" not in md
    assert md.count("Not sampled in this study") == 1
    assert "dropout_x_activation" in md.split("Not sampled in this study")[1].split("\n")[0]
    assert "hpsearch verify STORAGE`" not in md and "not run: hpsearch verify" not in md
    assert "--objective FILE.py:NAME" in md
    html = report(storage, out=tmp_path / "svm.html", publish=False).text
    assert 'id="pruning"' not in html and 'aria-label="over-training"' not in html
    assert 'class="cmd"' not in html  # "verify needs the objective" is words, not a command
    assert html.count("Not sampled in this study") == 1
    summary = report(storage, fmt="json").summary
    assert summary.count("Not sampled in this study") == 1


def test_the_validation_size_used_is_shown_beside_the_request():
    prov = {"settings": {"val_size": 10000, "epochs": 4}, "dataset": "digits"}
    rows = [{"splits": {"train": 1078, "validation": 269, "test": 450}}]
    got = dict(fmt.provenance_rows(prov, rows))
    assert got["settings.val_size"] == ("10,000 requested; 269 used (at most a fifth of the "
                                        "training set)")
    assert got["settings.epochs"] == 4 and dict(fmt.provenance_rows(prov))[
        "settings.val_size"] == 10000


# ---------------------------------------------------------------------------- over training


def test_effect_over_training_reads_with_the_verdicts_sign():
    series = [{"label": "epoch 1", "a": "multistep", "b": "exponential", "diff": -0.5,
               "ci_low": -2.0, "ci_high": 1.0},
              {"label": "end", "a": "multistep", "b": "exponential", "diff": -1.1,
               "ci_low": -3.66, "ci_high": 1.47}]
    flipped = fmt.oriented(series)
    # the verdict reads "exponential > multistep by 1.10": so does the figure and the table
    assert [(r["a"], r["b"], r["diff"]) for r in flipped] == [
        ("exponential", "multistep", 0.5), ("exponential", "multistep", 1.1)]
    assert (flipped[1]["ci_low"], flipped[1]["ci_high"]) == (-1.47, 3.66)
    head, rows = fmt.effect_by_epoch_table(series)
    assert head[1] == "exponential - multistep (pts)" and rows[1][1] == "+1.1"
    assert fmt.oriented(flipped) == flipped  # already the verdict's way round


def test_every_epoch_all_trials_reached_is_analysed():
    """A study without pruning (the quick start's --pruner none) shows its epochs, not
    one dot at "end"; the verdict stays the end's."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from hpsearch.analysis.table import finished_table

    study = optuna.create_study(direction="maximize")
    rng = __import__("random").Random(0)
    for i in range(30):
        bn = ["none", "before"][i % 2]
        values = {e: 0.5 + 0.1 * e + (0.05 if bn == "before" else 0) + rng.gauss(0, 0.01)
                  for e in (1, 2, 3, 4)}
        study.add_trial(optuna.trial.create_trial(
            params={"batch_norm": bn}, distributions={
                "batch_norm": CategoricalDistribution(["none", "before"])},
            value=values[4], intermediate_values=values))
    table = finished_table(study.trials, study.direction)
    assert table.levels() == [0] and table.early_epochs() == [1, 2, 3]
    from hpsearch.analysis import analyze

    doc = analyze(study, n_bootstrap_importance=2, n_noise=3).to_dict()
    answer = next(a for a in doc["answers"] if a["question"] == "batch_norm")
    labels = [r["label"] for r in answer["effect_by_epoch"]]
    assert labels == ["step 1", "step 2", "step 3", "end"]
    assert all(r["ci_low"] < r["diff"] < r["ci_high"] for r in answer["effect_by_epoch"])
