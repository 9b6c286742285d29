"""Headless Chromium for the e2e tests: the rendered DOM, JS errors, screenshots.

No extra dependency (no DevTools websocket): ``--dump-dom`` prints the DOM after
``--virtual-time-budget`` ms of page time, and JS errors are caught in the page itself by
:data:`COLLECTOR`, a script placed first in ``<head>`` (before any Content-Security-Policy
meta, which governs only what follows it). It records ``window.onerror``, unhandled
rejections, CSP violations and any call of ``alert``/``confirm``/``prompt`` into an attribute
of ``<html>`` that the dumped DOM carries. Console lines from ``--enable-logging`` are kept
too, for pages (like optuna-dashboard's) that cannot be rewritten.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, headless Chromium on a closed network stalls on update/metrics requests.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--disable-sync", "--mute-audio", "--hide-scrollbars")
ERRORS_ATTR = "data-test-errors"
COLLECTOR = (
    "<script>(function(){var e=[];function add(x){e.push(String(x));"
    f"document.documentElement.setAttribute('{ERRORS_ATTR}',JSON.stringify(e));}}"
    "window.onerror=function(m){add('error: '+m)};"
    "addEventListener('unhandledrejection',function(ev){add('rejection: '+ev.reason)});"
    "document.addEventListener('securitypolicyviolation',function(ev){"
    "add('csp: '+ev.violatedDirective)});"
    "['alert','confirm','prompt'].forEach(function(f){window[f]=function(m){add(f+': '+m)}});"
    f"document.documentElement.setAttribute('{ERRORS_ATTR}','[]');}})();</script>")


WIDTH_ATTR = "data-test-width"
# Placed after COLLECTOR: once the page has laid out, the document's scroll width, the
# viewport's width, and the elements whose right edge passes the viewport (what overflows).
WIDTH_PROBE = (
    "<script>addEventListener('load',function(){setTimeout(function(){"
    "var d=document.documentElement,"
    "w=d.clientWidth,o=[];document.querySelectorAll('body *').forEach(function(el){"
    "var r=el.getBoundingClientRect();if(r.right>w+1&&r.width>0)o.push(el.tagName.toLowerCase()"
    "+(el.id?'#'+el.id:'')+(el.className&&el.className.baseVal===undefined?'.'+el.className:''))"
    f"}});d.setAttribute('{WIDTH_ATTR}',JSON.stringify({{scroll:d.scrollWidth,client:w,"
    "over:o.slice(0,20)}));},DELAY);});</script>")


def width_probe(delay_ms: int = 0) -> str:
    """:data:`WIDTH_PROBE` measuring ``delay_ms`` of page time after load (a page that
    renders from its API, like optuna-dashboard's, lays out after load)."""
    return WIDTH_PROBE.replace("DELAY", str(delay_ms))


def inject(app: Any, delay_ms: int = 4000) -> Any:
    """A WSGI middleware: every HTML response of ``app`` gets COLLECTOR and the width
    probe first in its head (for pages this test cannot write, like the dashboard's), and
    loses its Content-Security-Policy header, which would block the probe."""
    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(app(environ, start))
        headers = captured["headers"]
        if any(k.lower() == "content-type" and "text/html" in v for k, v in headers):
            text = body.decode("utf-8")
            head = re.search(r"<head[^>]*>", text, re.I)
            if head:
                text = (text[:head.end()] + COLLECTOR + width_probe(delay_ms)
                        + text[head.end():])
            body = text.encode("utf-8")
            headers = [(k, v) for k, v in headers
                       if k.lower() not in ("content-length", "content-security-policy")]
            headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]

    return wrapped


def measured(page: Page) -> Width:
    """The width probe's measurement in a dumped DOM."""
    match = re.search(rf'{WIDTH_ATTR}="([^"]*)"', page.dom)
    assert match, "the width probe did not run"
    got = json.loads(_unescape(match.group(1)))
    return Width(int(got["scroll"]), int(got["client"]), list(got["over"]))


def available() -> bool:
    return Path(CHROMIUM).is_file()


@dataclass
class Page:
    dom: str             # the serialized DOM after the time budget
    errors: list[str]    # what COLLECTOR caught; None-equivalent [] if it was not injected
    collected: bool      # whether COLLECTOR ran (its attribute is in the DOM)
    console: list[str]   # console messages Chromium logged


def with_collector(html: str) -> str:
    """``html`` with :data:`COLLECTOR` as the first element of ``<head>``."""
    head = re.search(r"<head[^>]*>", html, re.I)
    assert head, "no <head> to put the error collector in"
    return html[:head.end()] + COLLECTOR + html[head.end():]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def dump_dom(url: str, *, budget_ms: int = 3000, timeout: float = 90,
             size: tuple[int, int] | None = None) -> Page:
    """Load ``url`` (``file://`` or ``http://127.0.0.1``) and return its rendered DOM;
    ``size``: the window (width, height) in CSS pixels."""
    window = [f"--window-size={size[0]},{size[1]}"] if size else []
    proc = _run([*window, "--enable-logging=stderr", "--v=0",
                 f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    dom = proc.stdout
    match = re.search(rf'{ERRORS_ATTR}="([^"]*)"', dom)
    errors = json.loads(_unescape(match.group(1))) if match else []
    console = [line.split("] ", 1)[-1] for line in proc.stderr.splitlines()
               if ":CONSOLE" in line]
    return Page(dom, errors, match is not None, console)


@dataclass
class Width:
    scroll: int          # document.documentElement.scrollWidth
    client: int          # the viewport's width
    over: list[str]      # elements whose right edge passes the viewport (tag#id.class)


def page_width(html: str, directory: Path, *, width: int = 1400,
               budget_ms: int = 3000) -> tuple[Width, Page]:
    """Lay ``html`` out in a ``width``-px window and measure it: no horizontal overflow
    means ``scroll <= client``. The page is written to ``directory`` with COLLECTOR and
    WIDTH_PROBE first in its head (before any Content-Security-Policy)."""
    head = re.search(r"<head[^>]*>", html, re.I)
    assert head, "no <head> to put the width probe in"
    path = directory / "measured.html"
    path.write_text(html[:head.end()] + COLLECTOR + width_probe() + html[head.end():])
    page = dump_dom(path.as_uri(), budget_ms=budget_ms, size=(width, 1000))
    return measured(page), page


def screenshot(url: str, path: Path, *, size: tuple[int, int] = (1200, 3000),
               budget_ms: int = 3000, timeout: float = 90) -> Path:
    _run([f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}",
          f"--screenshot={path}", url], timeout)
    return path


def _unescape(attr: str) -> str:
    import html

    return html.unescape(attr)
