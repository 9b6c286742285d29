"""``hpsearch dashboard``: optuna-dashboard over a study storage, with its artifact store.

The storage is opened through :mod:`hpsearch.storage` (a missing file is an error, never
a new empty database) and the artifact store is the one ``hpsearch report`` uploads its
HTML page to, so the report shows up on the study's page. The server listens on
127.0.0.1 unless ``host`` says otherwise: the dashboard can edit and delete studies and
has no login, so exposing it to a network is a decision the user makes explicitly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from hpsearch.errors import HPSearchError, StorageError
from hpsearch.storage import mask, open_storage, study_names

if TYPE_CHECKING:
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.storages import BaseStorage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def artifact_store(storage: str) -> FileSystemArtifactStore:
    """The artifact store of the studies in ``storage``: its directory is created where it
    can be; on read-only media the dashboard serves what is already there."""
    from hpsearch.storage import artifact_store as store

    try:
        return store(storage)
    except StorageError:
        return store(storage, create=False)


def _open(storage: str) -> BaseStorage:
    opened = open_storage(storage, create=False)
    study_names(opened)  # unreadable (not an Optuna database, no permission): fail here
    return opened


def app(storage: str) -> Callable[..., Any]:
    """The optuna-dashboard WSGI application for ``storage``, with the artifact store.

    For tests and for serving behind a production WSGI server (gunicorn, uwsgi).
    """
    import optuna_dashboard

    return optuna_dashboard.wsgi(_open(storage), artifact_store=artifact_store(storage))


def url(host: str, port: int) -> str:
    """The address a browser should open (IPv6 hosts in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/dashboard"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(storage: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                ) -> WSGIServer:
    """A threaded wsgiref server of :func:`app`, bound (port 0: any free port), not serving.

    This is what ``optuna_dashboard.run_server`` does, minus its banner: binding first
    lets a busy port be one clear error before anything claims the server is listening.
    """
    import optuna_dashboard

    opened = _open(storage)  # a storage that cannot be served fails before the port is taken
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    try:
        server = server_class((host, port), _QuietHandler)
    except OSError as exc:  # port in use, host not on this machine, no permission
        raise HPSearchError(f"cannot serve {mask(storage)} on {host}:{port}: "
                            f"{exc.strerror or exc}") from None
    try:
        # Only now the artifact directory (created where it can be): a dashboard that
        # could not bind leaves nothing behind.
        server.set_app(optuna_dashboard.wsgi(opened, artifact_store=artifact_store(storage)))
    except BaseException:
        server.server_close()
        raise
    return server


def dashboard(storage: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
              on_start: Callable[[str], None] | None = None) -> None:
    """Serve optuna-dashboard for ``storage`` until interrupted (blocks).

    ``on_start`` is called with the dashboard's URL once the server listens.
    """
    with make_server(storage, host, port) as server:
        if on_start is not None:
            on_start(url(host, server.server_port))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard's page fetches several API routes at once."""

    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request: noise
        pass


# ---------------------------------------------------------------- what the study page shows
#
# optuna-dashboard 0.21's study page ("History" tab) shows, besides its own plots: the
# study's user attrs, its artifacts, and any plotly figure saved with
# ``save_plotly_graph_object``; the note sits on a tab of its own. So the verdicts go onto
# the page as a plotly table (plotly.js is the dashboard's; no plotly package needed here),
# one current report artifact replaces the last one, and the best trial's files are the
# trial's artifacts (shown on the trial's page).

REPORT_ARTIFACT = "report.html"


class _PlotlyJSON:
    """What ``save_plotly_graph_object`` uses of a plotly Figure: its JSON."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def to_json(self) -> str:
        import json

        return json.dumps(self.spec)


def _plotly_text(value: Any) -> str:
    """A cell for plotly.js, which reads ``<b>``, ``<a href>``... in text as markup: entities
    keep a study string literal text."""
    import html

    return html.escape(str(value), quote=False)


def save_table(study: Any, graph_id: str, title: str, head: list[str],
               rows: list[list[Any]]) -> str:
    """A table on the study's page in optuna-dashboard; the same ``graph_id`` replaces it."""
    from optuna_dashboard import save_plotly_graph_object

    columns = [[_plotly_text(r[i]) for r in rows] for i in range(len(head))]
    # Relative widths. Plotly wraps a cell at spaces but cuts a word wider than its column
    # ("differen", "p (Holm"): every column is at least as wide as its longest word and its
    # header, and a long verdict gets more room without squeezing the question's name.
    widths = [max(max(len(w) for text in [h, *col] for w in str(text).split() or [""]) + 2,
                  len(str(h)) + 2, min(max([len(str(c)) for c in col] or [0]) // 3, 30))
              for h, col in zip(head, columns, strict=True)]
    spec = {"data": [{"type": "table", "columnwidth": widths,
                      "header": {"values": [f"<b>{_plotly_text(h)}</b>" for h in head],
                                 "align": "left", "fill": {"color": "#eeeeee"}},
                      "cells": {"values": columns, "align": "left", "height": 24}}],
            "layout": {"title": {"text": _plotly_text(title), "x": 0.01},
                       "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}}
    return save_plotly_graph_object(study, _PlotlyJSON(spec), graph_object_id=graph_id)


