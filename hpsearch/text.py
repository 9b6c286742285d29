"""Values as text: numbers for cells, a param's value as the space writes it, and any
user-controlled string made safe for a terminal.

Shared by the report, verify's labels and the CLI; nothing here knows a page format.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hpsearch.space import PARAM_BY_NAME

DASH = "–"


def num(value: Any, digits: int = 4) -> str:
    """Any value for a cell: ints as they are, floats to ``digits`` significant digits."""
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if not math.isfinite(value):
        return DASH if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.2g}"  # 7.1e-06
    if abs(value) >= 1e5:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 epoch``, ``4 epochs``, ``1 comparison``; ``words`` for an irregular plural."""
    return f"{num(n)} {word if n == 1 else (words or word + 's')}"


def param_value(name: str, value: Any) -> str:
    """A param's value as the search-space table writes it (log params in e-notation)."""
    p = PARAM_BY_NAME.get(name)
    if isinstance(value, float) and p is not None and p.log:
        return f"{value:.2g}" if abs(value) < 1e-3 else f"{value:.3g}"
    return num(value, 3) if isinstance(value, float) else num(value)


# C0 controls, DEL and C1 controls (0x9b is a one-byte CSI on some terminals): what ESC,
# OSC and CSI sequences are made of. Removed, the rest of a sequence is printable text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: Any) -> str:
    """A user-controlled string for a terminal: no control characters (escape codes)."""
    return _CONTROL.sub(" ", str(value))


def plain_lines(text: str) -> str:
    """:func:`plain` for a document printed to a terminal: newlines and tabs are kept (a
    carriage return is not: it could hide what a line says)."""
    return _CONTROL_BUT_LINES.sub(" ", text)
