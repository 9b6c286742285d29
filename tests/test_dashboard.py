"""``hpsearch dashboard``: optuna-dashboard with the artifact store, opened read-only."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from support.studies import plant_study

from hpsearch import dashboard as dash
from hpsearch.cli import main
from hpsearch.dashboard import app, is_loopback, make_server, url
from hpsearch.errors import HPSearchError, StorageError
from hpsearch.storage.open import load_study


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, str]]:
    """The dashboard of a planted study on 127.0.0.1:<free port>, in a thread."""
    storage = plant_study(tmp_path / "study.log", 20, name="dash-study")
    server = make_server(storage, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", storage
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_missing_storage_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(StorageError, match="does not exist"):
        app(str(missing))
    assert not missing.exists() and not (tmp_path / "missing.db.artifacts").exists()


def test_cli_missing_storage_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["dashboard", str(tmp_path / "missing.db")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "does not exist" in result.output


def test_loopback_by_default_and_urls():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    assert url("127.0.0.1", 8080) == "http://127.0.0.1:8080/dashboard"
    assert url("::1", 9000) == "http://[::1]:9000/dashboard"
    params = {p.name: p.default for p in main.commands["dashboard"].params}
    assert params["host"] == "127.0.0.1" and params["port"] == 8080


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_serves_on_loopback_with_the_artifact_store(tmp_path, monkeypatch):
    storage = plant_study(tmp_path / "study.log", 3)
    seen = {}

    def interrupted(server, *args, **kwargs):  # noqa: ANN001 (Ctrl-C at once)
        seen["address"] = server.server_address
        raise KeyboardInterrupt

    monkeypatch.setattr(dash._ThreadingServer, "serve_forever", interrupted)
    port = _free_port()
    result = CliRunner().invoke(main, ["dashboard", storage, "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}/dashboard" in result.output
    assert seen["address"] == ("127.0.0.1", port)
    assert (tmp_path / "study.log.artifacts").is_dir()


def test_busy_port_is_one_clear_error(tmp_path):
    storage = plant_study(tmp_path / "study.log", 3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(HPSearchError, match="cannot serve .* Address already in use"):
            make_server(storage, "127.0.0.1", taken.getsockname()[1])


@pytest.mark.e2e
def test_dashboard_serves_the_study(served):
    base, _ = served
    with urllib.request.urlopen(f"{base}/api/studies", timeout=10) as response:
        studies = json.load(response)["study_summaries"]
    assert [s["study_name"] for s in studies] == ["dash-study"]
    with urllib.request.urlopen(f"{base}/api/meta", timeout=10) as response:
        assert json.load(response)["artifact_is_available"] is True


@pytest.mark.e2e
def test_dashboard_renders_in_headless_chromium(served):
    from support import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    base, _ = served
    page = browser.dump_dom(f"{base}/dashboard", budget_ms=5000)
    assert "dash-study" in page.dom, page.dom[-2000:]
    assert not [line for line in page.console if "Uncaught" in line]


# ---------------------------------------------------------------------------- what it shows


@pytest.fixture
def published(tmp_path) -> Iterator[tuple[str, str, int]]:
    """A planted study whose report was published twice, served by the dashboard."""
    import functools

    from hpsearch import analysis
    from hpsearch.report import report

    storage = plant_study(tmp_path / "study.log", 30, name="dash-study")
    quick = functools.partial(analysis.analyze, n_bootstrap_importance=2, n_noise=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(analysis, "analyze", quick)
        first = report(storage, out=tmp_path / "r.html")
        second = report(storage, out=tmp_path / "again.html")
    assert first.artifact_id == second.artifact_id and not second.warnings
    server = make_server(storage, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", storage, load_study(storage)._study_id
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _study_detail(base: str, study_id: int) -> dict:
    with urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=30) as response:
        return json.load(response)


def test_study_page_shows_the_verdicts_and_one_report(published):
    base, _, study_id = published
    detail = _study_detail(base, study_id)
    reports = [a for a in detail["artifacts"] if a["filename"] == "report.html"]
    assert len(reports) == 1 and reports[0]["mimetype"] == "text/html"  # replaced, not added
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    table = graphs["hpsearch-verdicts"]["data"][0]
    assert table["type"] == "table"
    head = table["header"]["values"]
    assert "<b>verdict</b>" in head and "<b>verify (paired re-runs)</b>" in head
    questions = table["cells"]["values"][0]
    # the ten built-in questions (all sampled here), then the study's own params
    assert any("(bn_placement)" in q for q in questions) and len(questions) > 10
    assert len(set(questions)) == len(questions)


def test_table_cells_are_text_for_plotly():
    from hpsearch.dashboard import _plotly_text

    assert (_plotly_text('<a href="x">y</a> & <b>')
            == '&lt;a href="x"&gt;y&lt;/a&gt; &amp; &lt;b&gt;')


@pytest.mark.e2e
def test_verdicts_render_on_the_study_page_in_chromium(published, tmp_path):
    from support import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    base, _, study_id = published
    page = browser.dump_dom(f"{base}/dashboard/studies/{study_id}", budget_ms=8000)
    assert "hpsearch verdicts" in page.dom and "bn_placement" in page.dom, page.dom[-2000:]
    assert not [line for line in page.console if "Uncaught" in line]


@pytest.mark.e2e
def test_study_page_fits_1400_px_and_its_verdicts_are_whole_words(published, tmp_path):
    """The dashboard's study page at 1400 px: no horizontal overflow, and the verdicts
    table's columns are wide enough for their words (plotly cuts a word wider than its
    column: "differen", "p (Holm" were seen)."""
    from support import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    _, storage, study_id = published
    server = make_server(storage, "127.0.0.1", 0)
    server.set_app(browser.inject(server.get_app()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/dashboard/studies/{study_id}"
        page = browser.dump_dom(url, budget_ms=10000, size=(1400, 1000))
        browser.screenshot(url, tmp_path / "dashboard.png", size=(1400, 2400),
                           budget_ms=10000)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    width = browser.measured(page)
    assert width.scroll <= width.client, width.over
    assert "hpsearch verdicts" in page.dom and "validation accuracy" in page.dom
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_verdict_columns_hold_their_longest_word(monkeypatch):
    import optuna_dashboard

    saved = {}
    monkeypatch.setattr(optuna_dashboard, "save_plotly_graph_object",
                        lambda study, fig, graph_object_id: saved.update(
                            json.loads(fig.to_json())))
    head = ["question", "settled", "verdict", "p (Holm)"]
    rows = [["Batch norm before or after the activation? (bn_placement)", "difference",
             "before > after by 1.20 pts [0.30, 2.10] " * 3, "<0.001"]]
    dash.save_table(None, "t", "t", head, rows)
    widths = saved["data"][0]["columnwidth"]
    # relative widths: each column's share holds its longest word and its header
    assert widths[1] >= len("difference") + 2 and widths[3] >= len("p (Holm)") + 2
    assert widths[2] > widths[1]  # the long verdict gets more room
