"""Reading a trace file line by line: every physical line on its own, of bounded length,
decoded and parsed alone, so one bad line is one bad row and never swallows the next."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

#: Longest line read from a trace (bytes); a longer line is one bad row, skipped unread.
MAX_LINE_BYTES = 1 << 20
#: Largest token count of a row and latest time (s, after rebasing) a row may have.
MAX_ROW_TOKENS = 1_000_000_000
MAX_ROW_TIME_S = 1e9
#: Bad rows whose reasons are kept (the first ones, with their line numbers).
MAX_KEPT_MESSAGES = 5
#: Largest magnitude of a row's session id, turn, prefix tokens or priority.
ID_LIMIT = 2**62
#: Longest line skipped over (bytes); a file with a longer one is not a trace.
MAX_SKIPPED_LINE_BYTES = 64 << 20


class NotATrace(ValueError):
    """The file holds a line so long it cannot be a trace (a binary or corrupt file)."""


def physical_lines(handle) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes without the line end)`` of every line of a binary stream;
    ``None`` for a line longer than ``MAX_LINE_BYTES`` (its bytes are skipped)."""
    number = 0
    while True:
        chunk = handle.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            skipped = len(chunk)
            while chunk and not chunk.endswith(b"\n"):
                chunk = handle.readline(MAX_LINE_BYTES + 1)
                skipped += len(chunk)
                if skipped > MAX_SKIPPED_LINE_BYTES:
                    raise NotATrace(
                        f"line {number} is longer than {MAX_SKIPPED_LINE_BYTES >> 20} MiB"
                    )
            yield number, None
            continue
        yield number, chunk.rstrip(b"\r\n")


def csv_fields(text: str) -> list[str]:
    """The fields of one CSV line; a quote left open is an error of this line alone
    (the parser never reads on into the next lines)."""
    if '"' not in text:
        return text.split(",")
    return next(csv.reader([text], strict=True))


def json_object(text: str) -> dict:
    """One JSONL row as a dict (duplicate keys, NaN/Infinity and over-long numbers are
    errors)."""

    def pairs(items: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"key {key!r} given twice")
            out[key] = value
        return out

    def constant(name: str) -> object:
        raise ValueError(f"{name} is not a JSON number")

    record = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    if not isinstance(record, dict):
        raise ValueError("a JSONL row must be an object")
    return record


def parse_number(raw: object) -> float | None:
    """``raw`` (text or JSON number) as a float; None when it is not a number."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    if isinstance(raw, str) and "_" in raw:  # Python reads 1_000; no trace writer writes it
        return None
    try:
        return float(raw)
    except (ValueError, OverflowError):
        return None


def shown_value(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text):,} characters)"


def open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
