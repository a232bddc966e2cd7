"""Text for the terminal: aligned tables and colour only where it helps.

Colour is used only when the stream is a terminal and ``NO_COLOR`` is unset
(https://no-color.org); ``FORCE_COLOR`` turns it on for pipes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

_CODES = {"bold": "1", "dim": "2", "green": "32", "red": "31", "yellow": "33", "cyan": "36"}


def use_colour(stream: TextIO | None = None) -> bool:
    """Whether to colour text written to ``stream`` (default stdout)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, style: str, enabled: bool) -> str:
    """``text`` in ``style`` (bold, dim, green, red, yellow, cyan) when ``enabled``."""
    if not enabled or style not in _CODES:
        return text
    return f"\033[{_CODES[style]}m{text}\033[0m"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10000 else f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    colour: bool = False,
    max_width: int = 90,
) -> str:
    """Rows under bold headers, columns padded; numbers right-aligned; long cells cut."""
    rows = [[_cell(v) for v in row] for row in rows]
    raw = [list(r) for r in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in r] for r in raw]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric = [
        all(_is_number(r[i]) for r in rows if r[i] != "-") and any(r[i] != "-" for r in rows)
        for i in range(len(headers))
    ]
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    lines = [paint(head, "bold", colour)]
    for row in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").lstrip("$").rstrip("%"))
    except ValueError:
        return False
    return True
