"""Reading and writing request traces (CSV or JSONL, optionally gzip-compressed), streaming.

Three column layouts are recognised from the header (or the first JSON object's keys):

- ``azure`` (Azure LLM inference traces): ``TIMESTAMP, ContextTokens, GeneratedTokens``;
  timestamps are absolute date-times (or numbers).
- ``burstgpt`` (BurstGPT): ``Timestamp, Request tokens, Response tokens``; seconds.
- ``servesim`` (ours): ``arrival_s, prompt_tokens, output_tokens`` and optionally
  ``class_name, session_id, turn, prefix_tokens, priority``; seconds, used as they are
  (so a generated trace replays exactly).

Times of the recorded layouts (azure, burstgpt) count from the trace's first good row
(a bad row skipped before it does not move the origin).
Numeric timestamps are seconds unless ``time_unit="ms"``.

Each line is read on its own (a quote left open, a line that is not UTF-8 or longer than
``MAX_LINE_BYTES`` is one bad row; the lines after it still read). Each row is checked: a
missing column or value, a non-numeric or negative number, a token count outside 1 ..
``MAX_ROW_TOKENS``, or a timestamp earlier than the previous row's is reported as
``FILE:LINE: column NAME: ...``. Full-line ``#`` comments are skipped in CSV files.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from simulator.errors import UserError
from simulator.specs.files import input_file
from simulator.workload.request import Request
from simulator.workload.trace_lines import (
    ID_LIMIT,
    MAX_KEPT_MESSAGES,
    MAX_LINE_BYTES,
    MAX_ROW_TIME_S,
    MAX_ROW_TOKENS,
    NotATrace,
    csv_fields,
    json_object,
    open_binary,
    parse_number,
    physical_lines,
    shown_value,
)


@dataclass(frozen=True)
class TraceLayout:
    """Column names of one trace format. Times of a ``recorded`` layout may be date-times
    or numbers (e.g. epoch seconds) and count from the first good row; ours are used as
    they are."""

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
    good row) and the request's shape."""

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


def _is_jsonl(path: Path) -> bool:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return bool(suffixes) and suffixes[-1].lower() in (".jsonl", ".ndjson")


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
    """Iterates a trace's good rows lazily, one line at a time (a broken quote or a bad
    line never swallows the lines after it); bad rows raise ``TraceRowError`` or, with
    ``skip_bad_rows``, are counted in ``bad_rows`` (the first few kept in
    ``bad_messages``). ``data_rows`` counts every data row read so far."""

    MAX_KEPT_MESSAGES = MAX_KEPT_MESSAGES

    def __init__(
        self,
        path: str | Path,
        *,
        layout: str | None = None,
        time_unit: str | None = None,
        skip_bad_rows: bool = False,
    ):
        self.path = input_file(path, "trace file")
        self._requested_layout = layout
        self._time_factor = 1e-3 if time_unit == "ms" else 1.0
        self._skip = skip_bad_rows
        self.layout: TraceLayout | None = None
        #: Whether rows may name their class (a ``class_name`` column of our layout); when
        #: False every row is class "default". Known once the header (or first row) is read.
        self.class_column = False
        self.bad_rows = 0
        self.bad_messages: list[str] = []
        self.data_rows = 0
        self.finished = False
        self._origin_s: float | None = None
        self._last_time_s = -math.inf

    def report(self) -> dict:
        """Rows read and skipped so far, with the first reasons (``FILE:LINE: ...``)."""
        return {
            "rows_read": self.data_rows,
            "rows_skipped": self.bad_rows,
            "skipped_reasons": list(self.bad_messages),
            "read_to_end": self.finished,
        }

    # ------------------------------------------------------------------ parsing helpers
    def _fail(self, line: int, column: str | None, message: str) -> None:
        where = f" column {column!r}:" if column else ""
        text = f"{self.path}:{line}:{where} {message}"
        if not self._skip:
            raise TraceRowError(text)
        self.bad_rows += 1
        if len(self.bad_messages) < self.MAX_KEPT_MESSAGES:
            self.bad_messages.append(text)

    def _stamp(self, raw, line: int, column: str) -> float | None:
        """The row's timestamp in seconds (absolute for a recorded layout), or None after
        counting the row as bad."""
        value = parse_number(raw)
        if value is None:
            if not self.layout.recorded or not isinstance(raw, str):
                self._fail(line, column, f"{shown_value(raw)} is not a number")
                return None
            try:
                stamp = datetime.fromisoformat(raw.strip())
            except ValueError:
                self._fail(line, column, f"{shown_value(raw)} is neither a number nor a date-time")
                return None
            if self._time_factor != 1.0:  # a unit for numbers: these stamps carry their own
                raise TraceRowError(
                    f"{self.path}:{line}: {column}: time_unit ms applies to numeric timestamps, "
                    f"and this trace's are date-times ({shown_value(raw)}); drop time_unit"
                )
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return stamp.timestamp()
        value *= self._time_factor
        if not math.isfinite(value) or value < 0:
            self._fail(line, column, f"{shown_value(raw)} must be a finite number >= 0")
            return None
        return value

    def _trace_time(self, stamp_s: float, raw, line: int, column: str) -> float | None:
        """Seconds into the trace of a row stamped ``stamp_s``: a recorded layout counts
        from its first good row (this row's own stamp while none has been kept yet), ours
        uses its stamps as they are. None after counting the row as bad."""
        value = stamp_s
        if self.layout.recorded:
            value -= stamp_s if self._origin_s is None else self._origin_s
        if value > MAX_ROW_TIME_S:
            self._fail(
                line,
                column,
                f"{shown_value(raw)} lies more than {MAX_ROW_TIME_S:g} s into the trace",
            )
            return None
        return value

    def _count(self, raw, line: int, column: str) -> int | None:
        value = parse_number(raw)
        if value is None:
            self._fail(line, column, f"{shown_value(raw)} is not a number")
            return None
        if not 1 <= value <= MAX_ROW_TOKENS or value != int(value):
            self._fail(
                line,
                column,
                f"{shown_value(raw)} must be a whole number from 1 to {MAX_ROW_TOKENS:,}",
            )
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
        stamp_s = self._stamp(values[0], line, layout.time)
        if stamp_s is None:
            return None
        time_s = self._trace_time(stamp_s, values[0], line, layout.time)
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
                f"timestamp {shown_value(values[0])} is earlier than the previous row's; rows must "
                "be in time order",
            )
            return None
        row = TraceRow(line, time_s, prompt, output)
        if layout.name == "servesim" and not self._extras(row, record):
            return None
        # Only a good row sets the origin: rows skipped before it must not shift the rest.
        if layout.recorded and self._origin_s is None:
            self._origin_s = stamp_s
        self._last_time_s = time_s
        return row

    def _extras(self, row: TraceRow, record: dict) -> bool:
        class_name = record.get("class_name")
        if class_name not in (None, ""):
            row.class_name = str(class_name)[:200]
        for column in ("session_id", "turn", "prefix_tokens", "priority"):
            raw = record.get(column)
            if raw in (None, ""):
                continue
            value = parse_number(raw)
            if value is None or value != int(value) or abs(value) > ID_LIMIT:
                self._fail(row.line, column, f"{shown_value(raw)} is not a whole number")
                return False
            value = int(value)
            if column != "priority" and value < (-1 if column == "session_id" else 0):
                self._fail(row.line, column, f"{shown_value(raw)} must not be negative")
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
        try:
            with open_binary(self.path) as handle:
                yield from self._rows(handle)
        except (gzip.BadGzipFile, EOFError, zlib.error, OSError, NotATrace) as exc:
            raise TraceRowError(
                f"{self.path}: cannot be read as a CSV/JSONL trace (optionally "
                f"gzip-compressed): {exc}"
            ) from None
        self.finished = True

    def _rows(self, handle) -> Iterator[TraceRow]:
        jsonl = _is_jsonl(self.path)
        header: list[str] | None = None
        for number, raw in physical_lines(handle):
            text = self._decode(number, raw, header is None and not jsonl)
            if text is None or not text.strip() or (not jsonl and text.lstrip()[:1] == "#"):
                continue
            if header is None and not jsonl:
                header = self._header(number, text)
                continue
            self.data_rows += 1
            record = self._record(number, text, header)
            if record is None:
                continue
            row = self._row(number, record)
            if row is not None:
                yield row
        if header is None and not jsonl:
            raise TraceRowError(f"{self.path}: empty trace (no header row)")

    def _decode(self, number: int, raw: bytes | None, is_header: bool) -> str | None:
        """One line as text (a BOM dropped), or None after counting it as a bad row."""
        problem = None
        if raw is None:
            problem = f"line longer than {MAX_LINE_BYTES:,} bytes"
        else:
            try:
                text = raw.decode("utf-8")
                return text.removeprefix("\ufeff") if number == 1 else text
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1].hex()
                problem = f"not UTF-8 text (byte 0x{byte} at column {exc.start + 1})"
        if is_header:
            raise TraceRowError(f"{self.path}:{number}: header: {problem}")
        self.data_rows += 1
        self._fail(number, None, problem)
        return None

    def _header(self, number: int, text: str) -> list[str]:
        try:
            header = [h.strip() for h in csv_fields(text)]
        except csv.Error as exc:
            raise TraceRowError(f"{self.path}:{number}: header: not valid CSV ({exc})") from None
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:  # a row would keep only the last column of each name
            raise TraceRowError(
                f"{self.path}:{number}: header: column {', '.join(map(repr, twice))} given twice"
            )
        self.layout = detect_layout(header, self.path, self._requested_layout)
        self.class_column = self.layout.name == "servesim" and "class_name" in header
        return header

    def _record(self, number: int, text: str, header: list[str] | None) -> dict | None:
        """The columns of one data line, or None after counting it as a bad row."""
        if header is None:  # JSONL
            try:
                record = json_object(text)
            except json.JSONDecodeError as exc:
                self._fail(number, None, f"not valid JSON ({exc.msg} at character {exc.pos + 1})")
                return None
            except (ValueError, RecursionError) as exc:
                message = "a number of over 4,300 digits" if "digits" in str(exc) else str(exc)
                self._fail(number, None, f"not valid JSON ({message or 'nested too deeply'})")
                return None
            if self.layout is None:
                self.layout = detect_layout(record.keys(), self.path, self._requested_layout)
                # Any JSON row of our layout may carry a class_name, the first or not.
                self.class_column = self.layout.name == "servesim"
            return record
        try:
            fields = csv_fields(text)
        except csv.Error as exc:
            self._fail(number, None, f"not valid CSV ({exc}; a quote left open?)")
            return None
        if len(fields) < len(header):
            fields = fields + [""] * (len(header) - len(fields))
        return dict(zip(header, fields, strict=False))


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
