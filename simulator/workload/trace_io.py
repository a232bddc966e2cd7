"""Reading and writing request traces (CSV or JSONL, optionally gzip-compressed), streaming.

Three column layouts are recognised from the header (or the first JSON object's keys):

- ``azure`` (Azure LLM inference traces): ``TIMESTAMP, ContextTokens, GeneratedTokens``;
  timestamps are absolute date-times (or numbers).
- ``burstgpt`` (BurstGPT): ``Timestamp, Request tokens, Response tokens``; seconds.
- ``servesim`` (ours): ``arrival_s, prompt_tokens, output_tokens`` and optionally
  ``class_name, session_id, turn, prefix_tokens, priority``; seconds, used as they are
  (so a generated trace replays exactly).

Times of the recorded layouts (azure, burstgpt) count from the trace's first row.
Numeric timestamps are seconds unless ``time_unit="ms"``.

Each row is checked: a missing column or value, a non-numeric or negative number, a token
count below one, or a timestamp earlier than the previous row's is reported as
``FILE:LINE: column NAME: ...``. Full-line ``#`` comments are skipped in CSV files.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from simulator.errors import UserError
from simulator.workload.request import Request


@dataclass(frozen=True)
class TraceLayout:
    """Column names of one trace format. Times of a ``recorded`` layout may be date-times
    or numbers (e.g. epoch seconds) and count from the first row; ours are used as they are."""

    name: str
    time: str
    prompt: str
    output: str
    recorded: bool


LAYOUTS = {
    "azure": TraceLayout("azure", "TIMESTAMP", "ContextTokens", "GeneratedTokens", True),
    "burstgpt": TraceLayout("burstgpt", "Timestamp", "Request tokens", "Response tokens", True),
    "servesim": TraceLayout("servesim", "arrival_s", "prompt_tokens", "output_tokens", False),
}
#: Optional columns of our own layout, in the order the writer puts them.
SERVESIM_EXTRA_COLUMNS = ("class_name", "session_id", "turn", "prefix_tokens", "priority")


@dataclass(slots=True)
class TraceRow:
    """One good row: trace time in seconds (relative; absolute times rebased to the first
    row) and the request's shape."""

    line: int
    time_s: float
    prompt_tokens: int
    output_tokens: int
    class_name: str | None = None
    session_id: int = -1
    turn: int = 0
    prefix_tokens: int = 0
    priority: int | None = None


class TraceRowError(UserError):
    """One bad row (or header) of a trace file."""


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")  # a BOM (spreadsheet export) is dropped


def _is_jsonl(path: Path) -> bool:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return bool(suffixes) and suffixes[-1] in (".jsonl", ".ndjson")


def detect_layout(columns: Iterable[str], path: Path, requested: str | None) -> TraceLayout:
    """The layout named ``requested``, or the one whose columns the header holds."""
    present = {c.strip() for c in columns}
    if requested is not None:
        layout = LAYOUTS[requested]
        missing = [c for c in (layout.time, layout.prompt, layout.output) if c not in present]
        if missing:
            raise TraceRowError(
                f"{path}:1: missing column {missing[0]!r} of the {requested} layout; "
                f"the header has: {', '.join(sorted(present))}"
            )
        return layout
    for layout in LAYOUTS.values():
        if {layout.time, layout.prompt, layout.output} <= present:
            return layout
    known = "; ".join(f"{n}: {lay.time}, {lay.prompt}, {lay.output}" for n, lay in LAYOUTS.items())
    raise TraceRowError(
        f"{path}:1: header ({', '.join(sorted(present))}) matches no known trace layout ({known})"
    )


class TraceReader:
    """Iterates a trace's good rows lazily; bad rows raise ``TraceRowError`` or, with
    ``skip_bad_rows``, are counted in ``bad_rows`` (the first few kept in ``bad_messages``)."""

    MAX_KEPT_MESSAGES = 10

    def __init__(
        self,
        path: str | Path,
        *,
        layout: str | None = None,
        time_unit: str | None = None,
        skip_bad_rows: bool = False,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"trace file {str(self.path)!r} does not exist")
        self._requested_layout = layout
        self._time_factor = 1e-3 if time_unit == "ms" else 1.0
        self._skip = skip_bad_rows
        self.layout: TraceLayout | None = None
        self.bad_rows = 0
        self.bad_messages: list[str] = []
        self.data_rows = 0
        self._origin_s: float | None = None
        self._last_time_s = -math.inf

    # ------------------------------------------------------------------ parsing helpers
    def _fail(self, line: int, column: str, message: str) -> None:
        text = f"{self.path}:{line}: column {column!r}: {message}"
        if not self._skip:
            raise TraceRowError(text)
        self.bad_rows += 1
        if len(self.bad_messages) < self.MAX_KEPT_MESSAGES:
            self.bad_messages.append(text)

    def _time(self, raw, line: int, column: str) -> float | None:
        try:
            value = float(raw) * self._time_factor
        except (TypeError, ValueError):
            value = None
        if value is None:
            if not self.layout.recorded or not isinstance(raw, str):
                self._fail(line, column, f"{raw!r} is not a number")
                return None
            try:
                stamp = datetime.fromisoformat(raw.strip())
            except ValueError:
                self._fail(line, column, f"{raw!r} is neither a number nor a date-time")
                return None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            value = stamp.timestamp()
        elif not math.isfinite(value) or value < 0:
            self._fail(line, column, f"{raw!r} must be a finite number >= 0")
            return None
        if not self.layout.recorded:
            return value
        if self._origin_s is None:
            self._origin_s = value
        return value - self._origin_s

    def _count(self, raw, line: int, column: str) -> int | None:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            self._fail(line, column, f"{raw!r} is not a number")
            return None
        if not math.isfinite(value) or value < 1 or value != int(value):
            self._fail(line, column, f"{raw!r} must be a whole number >= 1")
            return None
        return int(value)

    def _row(self, line: int, record: dict) -> TraceRow | None:
        layout = self.layout
        values = []
        for column in (layout.time, layout.prompt, layout.output):
            raw = record.get(column)
            if raw is None or raw == "":
                self._fail(line, column, "missing value")
                return None
            values.append(raw)
        time_s = self._time(values[0], line, layout.time)
        if time_s is None:
            return None
        prompt = self._count(values[1], line, layout.prompt)
        if prompt is None:
            return None
        output = self._count(values[2], line, layout.output)
        if output is None:
            return None
        if time_s < self._last_time_s:
            self._fail(
                line,
                layout.time,
                f"timestamp {values[0]!r} is earlier than the previous row's; rows must be in "
                "time order",
            )
            return None
        row = TraceRow(line, time_s, prompt, output)
        if layout.name == "servesim" and not self._extras(row, record):
            return None
        self._last_time_s = time_s
        return row

    def _extras(self, row: TraceRow, record: dict) -> bool:
        class_name = record.get("class_name")
        if class_name not in (None, ""):
            row.class_name = str(class_name)
        for column in ("session_id", "turn", "prefix_tokens", "priority"):
            raw = record.get(column)
            if raw in (None, ""):
                continue
            try:
                value = int(raw)
            except (TypeError, ValueError):
                self._fail(row.line, column, f"{raw!r} is not a whole number")
                return False
            if column != "priority" and value < (-1 if column == "session_id" else 0):
                self._fail(row.line, column, f"{raw!r} must not be negative")
                return False
            setattr(row, column, value)
        if row.prefix_tokens > row.prompt_tokens:
            self._fail(
                row.line,
                "prefix_tokens",
                f"{row.prefix_tokens} exceeds the row's prompt_tokens ({row.prompt_tokens})",
            )
            return False
        return True

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[TraceRow]:
        records = self._json_records() if _is_jsonl(self.path) else self._csv_records()
        try:
            for line, record in records:
                self.data_rows += 1
                row = self._row(line, record)
                if row is not None:
                    yield row
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
            raise TraceRowError(
                f"{self.path}: cannot be read as a UTF-8 text CSV/JSONL trace "
                f"(optionally gzip-compressed): {exc}"
            ) from None

    def _csv_records(self) -> Iterator[tuple[int, dict]]:
        with _open_text(self.path) as handle:
            current = [0]

            def lines() -> Iterator[str]:
                for number, text in enumerate(handle, start=1):
                    if text.lstrip().startswith("#") or not text.strip():
                        continue
                    current[0] = number
                    yield text

            reader = csv.reader(lines())
            header = next(reader, None)
            if header is None:
                raise TraceRowError(f"{self.path}: empty trace (no header row)")
            header = [h.strip() for h in header]
            self.layout = detect_layout(header, self.path, self._requested_layout)
            width = len(header)
            for fields in reader:
                if len(fields) < width:
                    fields = fields + [""] * (width - len(fields))
                yield current[0], dict(zip(header, fields, strict=False))

    def _json_records(self) -> Iterator[tuple[int, dict]]:
        with _open_text(self.path) as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    self.data_rows += 1
                    self._fail(
                        number, "-", f"not valid JSON ({exc.msg} at character {exc.pos + 1})"
                    )
                    continue
                if not isinstance(record, dict):
                    self.data_rows += 1
                    self._fail(number, "-", "a JSONL row must be an object")
                    continue
                if self.layout is None:
                    self.layout = detect_layout(record.keys(), self.path, self._requested_layout)
                yield number, record


def _open_for_writing(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "wt", newline="")
    return path.open("w", newline="")


def _row_after_arrival(r: Request) -> tuple:
    """A request's trace columns after ``arrival_s``: its token counts, then
    ``SERVESIM_EXTRA_COLUMNS``."""
    return (
        r.prompt_tokens,
        r.output_tokens,
        r.class_name,
        r.session_id,
        r.turn,
        r.prefix_tokens,
        r.priority,
    )


def write_trace(
    requests: Iterable[Request], path: str | Path, *, comment: str | None = None
) -> int:
    """Write requests in our ``servesim`` layout (JSONL if the name ends in .jsonl, else CSV);
    floats keep full precision so a replay reproduces them exactly. Returns the row count."""
    path = Path(path)
    columns = ("arrival_s", "prompt_tokens", "output_tokens", *SERVESIM_EXTRA_COLUMNS)
    count = 0
    jsonl = _is_jsonl(path)
    with _open_for_writing(path) as handle:
        if jsonl:
            for r in requests:
                values = (r.arrival_s, *_row_after_arrival(r))
                handle.write(json.dumps(dict(zip(columns, values, strict=True))) + "\n")
                count += 1
            return count
        if comment:
            for text in comment.splitlines():
                handle.write(f"# {text}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for r in requests:
            # repr() of a float is the shortest string that reads back as the same float.
            writer.writerow((repr(float(r.arrival_s)), *_row_after_arrival(r)))
            count += 1
    return count
