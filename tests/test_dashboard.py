"""``hpsearch dashboard``: optuna-dashboard with the artifact store, opened read-only."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from test_report import plant_study

from hpsearch import dashboard as dash
from hpsearch.cli import main
from hpsearch.dashboard import app, is_loopback, make_server, url
from hpsearch.errors import HPSearchError, StorageError


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
    import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    base, _ = served
    page = browser.dump_dom(f"{base}/dashboard", budget_ms=5000)
    assert "dash-study" in page.dom, page.dom[-2000:]
    assert not [line for line in page.console if "Uncaught" in line]
