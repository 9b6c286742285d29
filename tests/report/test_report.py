"""``hpsearch report`` on a planted study: html, md and json; escaping; the CLI.

The study is planted with ``add_trials`` (no training): params drawn from ``space.PARAMS``,
user attrs as ``objective.py`` writes them, and a known effect (batch norm before the
activation is better) that the report must show.
"""

from __future__ import annotations

import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
)
from support.studies import EVIL, EVIL_ATTR, plant_study

from hpsearch import text
from hpsearch.analysis import one_objective
from hpsearch.cli import main
from hpsearch.errors import ConfigError
from hpsearch.report import format as fmt
from hpsearch.report import report
from hpsearch.report.build import trial_rows
from hpsearch.storage.open import load_study, open_storage


@pytest.fixture(autouse=True)
def _quick_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer bootstrap refits: these tests check the report, not the CIs' precision."""
    import functools

    from hpsearch import analysis

    monkeypatch.setattr(analysis, "analyze", functools.partial(
        analysis.analyze, n_bootstrap_importance=3, n_noise=5))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> str:
    return plant_study(tmp_path_factory.mktemp("report") / "study.log")


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> str:
    return plant_study(tmp_path_factory.mktemp("evil") / "study.log", 40, name=EVIL, evil=True)


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Tags:
    tags = _Tags()
    tags.feed(html)
    return tags


# ---------------------------------------------------------------------------- html


def test_html_report_has_every_section_and_publishes(planted, tmp_path):
    out = tmp_path / "r.html"
    result = report(planted, out=out)
    assert result.path == out and out.read_text() == result.text
    page = parse(result.text)
    ids = {a.get("id") for _, a in page.tags}
    assert {"questions", "verdicts", "importance", "history", "curves", "distributions",
            "parallel"} <= ids
    assert sum(tag == "svg" for tag, _ in page.tags) >= 5
    text = "".join(page.text)
    assert "n=" in text and "bn_placement" in text
    assert text.index("Questions") < text.index("Optimization history")  # verdicts first
    assert "secret" not in result.text  # the provenance's storage URL is masked
    # published: the page as a study artifact, the verdicts as the study note
    from optuna.artifacts import get_all_artifact_meta
    from optuna_dashboard import get_note

    study = load_study(planted)
    assert result.artifact_id in [m.artifact_id for m in get_all_artifact_meta(study)]
    assert (Path(planted + ".artifacts") / str(result.artifact_id)).is_file()
    assert "| question |" in get_note(study) and "bn_placement" in get_note(study)


def test_html_has_no_external_urls_and_no_script(planted, tmp_path):
    html = report(planted, out=tmp_path / "r.html", publish=False).text
    for tag, attrs in parse(html).tags:
        assert tag != "script"
        for key in ("src", "href", "xlink:href", "action"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, key, value)
    assert "http://" not in html and "https://" not in html


def test_user_strings_are_escaped(evil, tmp_path):
    html = report(evil, out=tmp_path / "r.html").text
    assert EVIL not in html and "<img" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # title, h1, choices
    page = parse(html)
    assert not any(tag in ("script", "img") for tag, _ in page.tags)
    assert EVIL in "".join(page.text) and EVIL_ATTR in "".join(page.text)


# ---------------------------------------------------------------------------- md / json


def test_markdown_has_the_questions_table(planted):
    result = report(planted, fmt="md")
    assert result.path is None
    md = result.text
    assert md.startswith("# hpsearch report: planted")
    assert ("| question | seeds' claim | settled | verdict | p (Holm) | what would settle it | "
            "verify (paired re-runs) |") in md
    assert re.search(r"^\| .*bn_placement|^\| Batch norm before or after", md, re.M)
    assert "## Importance (ped_anova)" in md


def test_markdown_escapes_markup(evil):
    md = report(evil, fmt="md").text
    assert EVIL not in md and "&lt;script>alert(1)&lt;/script>" in md


def test_json_keys_are_stable(planted, tmp_path):
    out = tmp_path / "r.json"
    result = report(planted, fmt="json", out=out)
    doc = json.loads(out.read_text())
    assert list(doc) == ["schema", "generated", "header", "analysis", "verify", "best"]
    assert doc["schema"] == 2 and doc["analysis"]["schema"] == 2
    assert {"study_name", "storage", "dataset", "question", "direction", "n_trials",
            "best_value", "best_trial_number", "provenance"} == set(doc["header"])
    assert {"study_name", "direction", "n_trials", "best_value", "best_params",
            "best_trial_number", "importances", "answers", "pruning", "curves",
            "notes"} <= set(doc["analysis"])
    assert doc["header"]["provenance"]["settings"]["storage"] == "postgresql://me:***@db/x"
    assert doc["verify"] == {} and doc["best"] is None
    assert result.data == doc


def test_verify_and_best_are_shown_when_present(tmp_path):
    db = plant_study(tmp_path / "s.log", 30)
    study = load_study(db)
    study.set_user_attr("verify:bn_placement", {
        "question": "bn_placement", "param": "batch_norm", "seeds": 5,
        "rows": [{"baseline": "before", "alternative": "after", "n": 5, "mean_diff": -0.004,
                  "ci_low": -0.007, "ci_high": -0.001, "p_wilcoxon": 0.06,
                  "p_improvement": 0.03}]})
    study.set_user_attr("best", {"config": study.trials[0].user_attrs["config"],
                                 "val_acc": 0.97, "test_acc": 0.965,
                                 "per_class": [0.99, 0.98, 0.95],
                                 "confusion": [[99, 1, 0], [1, 98, 1], [2, 3, 95]]})
    html = report(db, out=tmp_path / "r.html", publish=False).text
    ids = {a.get("id") for _, a in parse(html).tags}
    assert {"verify", "best"} <= ids and "confusion matrix" in html
    md = report(db, fmt="md").text
    assert "## Verify (paired re-runs)" in md and "## Best config" in md
    assert "| bn_placement | batch_norm before -> after | 5 | – | 0.00 | [-0.01, 0.00] |" in md
    doc = report(db, fmt="json").data
    assert doc["verify"]["bn_placement"]["rows"][0]["p_improvement"] == 0.03
    assert doc["best"]["test_acc"] == 0.965


def test_the_best_models_bn_answers_are_shown_with_their_intervals(tmp_path):
    db = plant_study(tmp_path / "s.log", 30)
    study = load_study(db)
    study.set_user_attr("best", {
        "config": study.trials[0].user_attrs["config"], "test_acc": 0.88,
        "bn_train_vs_eval": {"eval_mode": 0.8808, "train_mode": 0.8780, "n": 6,
                             "shift": -0.29, "ci_low": -0.46, "ci_high": 0.0, "p": 0.062}})
    md = report(db, fmt="md").text.replace("\\]", "]")  # Markdown escapes "]" in tables
    # the paired shift with its own interval (not the difference of the means, -0.28)
    assert ("| batch norm: eval vs train mode | 0.8808 vs 0.8780 (-0.29 pts in train mode "
            "[-0.46, 0.00] (95%, 6 seeds, each model in both modes, p = 0.062)) |") in md, md
    assert "a bias before it" not in md
    study.set_user_attr("bias_twins", {"shift": -0.075, "ci_low": -0.19, "ci_high": 0.11,
                                       "p": 0.22, "n": 6, "agreement": [0.9584, 0.987]})
    for page in (report(db, fmt="md").text.replace("\\]", "]"),
                 report(db, out=tmp_path / "r.html", publish=False).text):
        assert ("-0.07 pts with it [-0.19, +0.11] (95%, 6 seeds, paired twins, p = 0.22); "
                "the twins (this config with BN before the activation) agree on 95.84% or "
                "more") in page


# ---------------------------------------------------------------------------- CLI


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_cli_missing_storage_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "r.html"
    result = run("report", str(tmp_path / "missing.db"), "--out", str(out))
    assert result.exit_code != 0
    assert "does not exist" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "missing.db").exists()


def test_cli_prints_the_summary_table(planted, tmp_path):
    out = tmp_path / "r.html"
    result = run("report", planted, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "question" in result.output and "verdict" in result.output
    assert "bn_placement" in result.output and str(out) in result.output
    assert out.is_file()


def test_cli_json_to_stdout_parses(planted):
    result = run("report", planted, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["header"]["study_name"] == "planted"
    assert "bn_placement" in result.stderr  # the summary goes to stderr here


# ---------------------------------------------------------------------------- browser


@pytest.mark.e2e
def test_report_in_headless_chromium(evil, tmp_path):
    """The page loads without JS errors, shows the verdicts, and the markup stays text."""
    from support import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    html = report(evil, out=tmp_path / "r.html", publish=False).text
    page_file = tmp_path / "page.html"
    page_file.write_text(browser.with_collector(html))
    page = browser.dump_dom(page_file.as_uri())
    assert page.collected, page.dom[:500]  # the collector ran: the page was loaded
    assert page.errors == [] and page.console == []
    dom = parse(page.dom)
    # The collector is the only script, and no element came from a study string.
    assert sum(tag == "script" for tag, _ in dom.tags) == 1
    assert not any(tag == "img" or "onerror" in attrs for tag, attrs in dom.tags)
    text = "".join(dom.text)
    assert "hpsearch report: " + EVIL in text and EVIL_ATTR in text
    verdicts = page.dom[page.dom.index('id="verdicts"'):]
    verdicts = verdicts[:verdicts.index("</table>")]
    n_rows = sum(a["status"] != "not_sampled" for a in
                 report(evil, fmt="json", publish=False).data["analysis"]["answers"])
    assert verdicts.count("<tr>") == 1 + n_rows  # the header and one row per question
    assert "<code>bn_placement</code>" in verdicts and "open: " in verdicts
    assert 'aria-label="over-training"' in page.dom and 'aria-label="interactions"' in page.dom
    shot = browser.screenshot(tmp_path.joinpath("page.html").as_uri(), tmp_path / "shot.png")
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_cli_unwritable_out_is_one_line(planted, tmp_path):
    (tmp_path / "a-file").write_text("")
    result = run("report", planted, "--format", "md", "--out", str(tmp_path / "a-file" / "r.md"))
    assert result.exit_code == 1
    assert "cannot write the report" in result.output and "Traceback" not in result.output


def test_report_and_dashboard_do_not_import_torch():
    """`hpsearch report` starts fast: nothing on its path imports torch."""
    import subprocess
    import sys

    code = ("import sys, hpsearch.cli, hpsearch.report, hpsearch.report.html, "
            "hpsearch.dashboard; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- for a person


def test_numbers_are_formatted_for_a_person():
    assert text.num(0.6000000000000001) == "0.6"
    assert text.num(7.092160224267873e-06) == "7.1e-06"
    assert text.num(12345) == "12,345" and text.num(None) == "–" and text.num(float("nan")) == "–"
    assert fmt.acc(0.98513013124) == "0.9851"
    assert fmt.signed(-0.001) == "0.00" and fmt.signed(0.42) == "+0.42"
    assert fmt.signed_num(-0.0) == "0" and fmt.signed_num(-0.0042) == "-0.0042"
    assert fmt.p_value(0.0001) == "<0.001" and fmt.p_value(0.0412) == "0.041"
    assert fmt.seconds(0.61) == "0.6 s" and fmt.seconds(192) == "3 min 12 s"
    assert text.param_value("l2", 7.092160224267873e-06) == "7.1e-06"
    assert text.param_value("lr", 0.03220077342760718) == "0.0322"
    assert text.param_value("dropout", 0.30000000000000004) == "0.3"


def test_nested_values_become_rows():
    head, rows = fmt.pruning_table({"n_pruned": 3, "share_saved": 0.2751, "max_epochs": 4,
                                    "max_epochs_source": "study settings",
                                    "pruned_at": {"2": 2, "3": 1}})
    assert ["pruned after epoch 2", "2 trials"] in rows
    assert ["pruned after epoch 3", "1 trial"] in rows
    assert ["share of epochs saved", "27.5%"] in rows
    assert ["epochs per trial", "4 (study settings)"] in rows
    assert fmt.flatten({"settings": {"epochs": 4, "dirs": ["a", "b"]}, "e": {}}) == [
        ("settings.epochs", 4), ("settings.dirs", "a, b")]


def test_markdown_p_values_top_trials_and_splits(planted):
    md = report(planted, fmt="md").text
    assert "&lt;0.001" not in md and "| <0.001 |" in md  # batch_norm is planted to matter
    assert "0.6000000000000001" not in md and not re.search(r"\d\.\d{8,}", md)
    assert "## Top trials" in md
    top = md[md.index("## Top trials"):].split("\n\n")[1].splitlines()
    assert len(top) == 2 + fmt.TOP_TRIALS and top[0].startswith("| # | trial | value |")
    assert "train 1078 / validation 269 / test 450 images" in md
    assert "| pruned after epoch 2 |" in md  # pruned_at as rows, not JSON


def test_html_has_top_trials_and_learning_curves(planted, tmp_path):
    html = report(planted, out=tmp_path / "r.html", publish=False).text
    page = parse(html)
    ids = [a.get("id") for _, a in page.tags if a.get("id")]
    assert {"top", "intermediate", "slice"} <= set(ids)
    top = html[html.index('<section id="top">'):]
    top = top[:top.index("</section>")]
    assert top.count("<tr>") == 1 + fmt.TOP_TRIALS and "<svg" in top
    assert "Loss (solid: train, dashed: validation)" in top and "Validation accuracy" in top
    assert len(ids) == len(set(ids)), "two SVGs share an element id"
    assert "xmlns" not in html and "<metadata>" not in html and "$" not in html


def test_axes_cover_the_good_trials():
    from hpsearch.report.figures.svg import View

    values = [0.1] * 5 + [0.95 + 0.001 * i for i in range(40)]
    view = View.of(values)
    assert 0.9 < view.lo < 0.95 and view.hi > 0.989
    assert view.note(values) == f"5 trials below {view.lo:.3g} (down to 0.1)"
    assert View.of([0.2, 0.3, 0.25, 0.28]).lo < 0.2  # no outliers: everything shown


def _foreign_study(path: Path, directions: list[str]) -> str:
    """A study another tool wrote: foreign param names, hostile choices, maybe 2 objectives."""
    study = optuna.create_study(storage=open_storage(str(path), create=True),
                                study_name=EVIL + " $\\frac{", directions=directions)
    rng = random.Random(1)
    dists = {"opt": CategoricalDistribution(["a$b$", "$\\frac{", EVIL]),
             "x": FloatDistribution(1e-4, 1.0, log=True), "batch_norm":
             CategoricalDistribution(["none", "before"])}
    for _ in range(30):
        params = {"opt": rng.choice(["a$b$", "$\\frac{", EVIL]), "x": 10 ** rng.uniform(-4, 0),
                  "batch_norm": rng.choice(["none", "before"])}
        values = [rng.random(), rng.random() * 10][:len(directions)]
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  values=values))
    return str(path)


def test_a_multi_objective_foreign_study_renders(tmp_path):
    """On the objective asked for (tests/report/test_multi_objective.py: asking)."""
    spec = _foreign_study(tmp_path / "mo.log", ["maximize", "minimize"])
    with pytest.raises(ConfigError, match="2 objectives"):
        report(spec, fmt="md")
    html = report(spec, out=tmp_path / "r.html", publish=False, metric=0).text
    assert EVIL not in html and "&lt;script&gt;" in html
    assert sum(tag == "svg" for tag, _ in parse(html).tags) >= 3
    md = report(spec, fmt="md", metric=0).text
    assert "multi-objective" in md and EVIL not in md
    doc = report(spec, fmt="json", metric=0).data
    rows = trial_rows(one_objective(load_study(spec), 0)[0].get_trials())
    assert len(rows) == 30 and doc["header"]["best_value"] == max(r["value"] for r in rows)


def test_md_and_json_do_not_import_matplotlib(planted):
    """Only the HTML page pays for the plotting library."""
    import subprocess
    import sys

    code = ("import sys, optuna; optuna.logging.set_verbosity(optuna.logging.WARNING); "
            "from hpsearch.report import report; "
            f"report({planted!r}, fmt='md'); report({planted!r}, fmt='json'); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip().splitlines()[-1] == "False"


# ---------------------------------------------------------------------------- settled states


def test_cli_question_margin_and_interaction_flags(planted):
    result = run("report", planted, "--format", "json", "--question", "bn_placement",
                 "--question", "lr", "--margin", "0.8", "--interaction", "lr:optimizer")
    assert result.exit_code == 0, result.output
    a = json.loads(result.stdout)["analysis"]
    assert [x["question"] for x in a["answers"]] == ["bn_placement", "lr"]
    assert all(x["margin"] == 0.8 and x["settled"] in ("difference", "equivalent", "open")
               for x in a["answers"])
    assert [x["question"] for x in a["interactions"]] == ["lr_x_optimizer"]
    bad = run("report", planted, "--format", "json", "--question", "nope")
    assert bad.exit_code != 0 and "unknown question 'nope'" in bad.output
    assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1
    bad = run("report", planted, "--format", "json", "--interaction", "lr")
    assert bad.exit_code != 0 and "A:B" in bad.output and "Traceback" not in bad.output


def test_unsampled_questions_are_one_line_everywhere(tmp_path):
    """A study of other params: no ten empty rows or sections, one line instead, and its
    own params answered in every format."""
    path = _foreign_study(tmp_path / "f.db", ["maximize"])
    md = report(path, fmt="md").text
    line = "Not sampled in this study (12): activation, dropout, weight_penalty, init"
    assert md.count(line) == 1 and "### Which activation?" not in md
    doc = report(path, fmt="json").data
    own = {x["question"]: x for x in doc["analysis"]["answers"] if x["family"] == "study"}
    assert set(own) == {"opt", "x"} and own["x"]["kind"] == "numeric"
    assert all(x["status"] == "answered" and x["settled"] for x in own.values())
    assert "### Which opt?" in md and "### Does x matter, and where is it best?" in md
    page = report(path, out=tmp_path / "f.html", publish=False).text
    assert page.count(line) == 1 and 'aria-label="adjusted-curves"' in page
