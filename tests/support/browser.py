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


def dump_dom(url: str, *, budget_ms: int = 3000, timeout: float = 90) -> Page:
    """Load ``url`` (``file://`` or ``http://127.0.0.1``) and return its rendered DOM."""
    proc = _run(["--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}",
                 "--dump-dom", url], timeout)
    dom = proc.stdout
    match = re.search(rf'{ERRORS_ATTR}="([^"]*)"', dom)
    errors = json.loads(_unescape(match.group(1))) if match else []
    console = [line.split("] ", 1)[-1] for line in proc.stderr.splitlines()
               if ":CONSOLE" in line]
    return Page(dom, errors, match is not None, console)


def screenshot(url: str, path: Path, *, size: tuple[int, int] = (1200, 3000),
               budget_ms: int = 3000, timeout: float = 90) -> Path:
    _run([f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}",
          f"--screenshot={path}", url], timeout)
    return path


def _unescape(attr: str) -> str:
    import html

    return html.unescape(attr)
