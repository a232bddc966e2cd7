"""Replaying a recorded trace as a request source, streaming row by row.

Options of a dumped ``WorkloadConfig`` that apply here:

- ``window: {start_s, end_s}`` keeps rows with start_s <= trace time < end_s; replay time
  counts from ``start_s`` (so a window that starts an hour in does not idle an hour).
- ``time_scale`` multiplies replay times: 0.5 replays at twice the rate.
- ``sample`` keeps each row independently with that probability (seeded).
- ``num_requests`` / ``duration_s`` stop after that many kept rows / that replay time;
  with neither, the whole trace is replayed.
- ``classes`` (optional) give the priority of rows by ``class_name`` (a ``priority``
  column of the trace wins); a class that no row of the trace names is an error (the
  trace is searched until every class is found).
- ``on_bad_row: skip`` skips bad rows instead of stopping: ``row_report()`` counts them
  all (the whole file is read, whatever the options above left out) and logs the count;
  a trace whose rows are all bad, or that keeps no row, is an error either way.

Rows with a ``session_id`` are tagged for prefix caching: ``prefix_id`` = the session and
``prefix_tokens`` as recorded. Completion feedback is ignored: a trace's times are fixed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from simulator.errors import UserError
from simulator.workload.request import Request
from simulator.workload.streams import ChunkBuffer, named_rng
from simulator.workload.trace_io import TraceReader, TraceRow

logger = logging.getLogger("simulator.workload")
#: Latest replay time (s) a row may reach after ``window`` and ``time_scale``.
MAX_REPLAY_S = 1e9
#: Class names of a trace listed when a scenario's class is not among them.
MAX_SHOWN_CLASSES = 10


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """``path`` as given if absolute, else relative to ``base_dir`` (the scenario's folder)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    return candidate


class TraceSource:
    """Requests of a trace file, in file order (which must be time order)."""

    def __init__(self, spec: Mapping[str, Any], *, base_dir: Path | None = None):
        self._skip = spec.get("on_bad_row") == "skip"
        self.reader = TraceReader(
            resolve_path(spec["trace"], base_dir),
            layout=spec.get("format"),
            time_unit=spec.get("time_unit"),
            skip_bad_rows=self._skip,
        )
        window = spec.get("window") or {}
        self._start_s = float(window.get("start_s") or 0.0)
        end = window.get("end_s")
        self._window_end_s = math.inf if end is None else float(end)
        self._scale = float(spec.get("time_scale") or 1.0)
        count, duration = spec.get("num_requests"), spec.get("duration_s")
        self._max_requests = math.inf if count is None else int(count)
        self._end_s = math.inf if duration is None else float(duration)
        self._sample = float(spec.get("sample") or 1.0)
        sample_rng = named_rng(int(spec.get("seed") or 0), "trace-sample")
        self._keep = ChunkBuffer(lambda n: sample_rng.random(n))
        self._priorities = {
            str(c["name"]): int(c.get("priority") or 0) for c in spec.get("classes") or []
        }
        self._read = iter(self.reader)
        self._reported = False
        self._rows = self._kept_rows()
        self._issued = 0
        self._next: TraceRow | None = next(self._rows, None)
        if self._next is None:
            self._raise_empty()
        self._check_classes(spec)

    def _kept_rows(self) -> Iterator[TraceRow]:
        for row in self._read:
            if row.time_s < self._start_s:
                continue
            if row.time_s >= self._window_end_s:
                return  # rows are in time order: nothing later can be in the window
            if self._sample < 1.0 and self._keep.next() >= self._sample:
                continue
            row.time_s = (row.time_s - self._start_s) * self._scale
            if row.time_s >= self._end_s:
                return
            if row.time_s > MAX_REPLAY_S:
                raise UserError(
                    f"{self.reader.path}:{row.line}: replay time {row.time_s:g} s (time_scale "
                    f"{self._scale:g}) is beyond {MAX_REPLAY_S:g} s, the longest simulated span"
                )
            yield row

    def _check_classes(self, spec: Mapping[str, Any]) -> None:
        """Refuse classes that no row of the trace names: their priority and SLO would
        silently never apply. Reads the trace ahead (bad rows ignored; the replay reports
        them) only until every class is found."""
        absent = set(self._priorities) - {self._next.class_name or "default"}
        if not absent:
            return
        path = self.reader.path
        if not self.reader.class_column:
            raise UserError(
                f"workload.classes: {path} has no class_name column, so every row is class "
                f"'default'; classes {sorted(absent)} would never apply: remove them (or name "
                "the class 'default')"
            )
        seen: set[str] = set()
        ahead = TraceReader(
            path, layout=spec.get("format"), time_unit=spec.get("time_unit"), skip_bad_rows=True
        )
        for row in ahead:
            name = row.class_name or "default"
            if name not in seen:
                seen.add(name)
                absent.discard(name)
                if not absent:
                    return
        found = ", ".join(repr(n) for n in sorted(seen)[:MAX_SHOWN_CLASSES])
        if len(seen) > MAX_SHOWN_CLASSES:
            found += f" and {len(seen) - MAX_SHOWN_CLASSES} more"
        raise UserError(
            f"workload.classes: no row of {path} has class_name "
            f"{' or '.join(map(repr, sorted(absent)))}, so its priority and slo would never "
            f"apply (the trace's classes: {found}): rename or remove it"
        )

    def row_report(self) -> dict:
        """Rows of the trace file read and skipped, with the first reasons. With
        ``on_bad_row: skip`` the rest of the file is read first, so every bad row is
        counted whatever ``window``, ``sample``, ``num_requests`` or ``duration_s`` left
        out; the count is logged (a warning) when rows were skipped."""
        reader = self.reader
        if self._skip and not reader.finished:
            for _ in self._read:
                pass
        report = reader.report()
        if self._next is None and self._issued < self._max_requests < math.inf:
            # the trace ran out first: the run has fewer requests than asked for
            report["short_of_num_requests"] = (
                f"num_requests {self._max_requests:,}: the trace held {self._issued:,}"
            )
        if reader.bad_rows and not self._reported:
            self._reported = True
            logger.warning(
                "%s: skipped %d bad row(s) of %d read; first: %s",
                reader.path,
                reader.bad_rows,
                reader.data_rows,
                reader.bad_messages[0],
            )
        return report

    def _raise_empty(self) -> None:
        reader = self.reader
        if reader.data_rows == 0:
            raise UserError(f"{reader.path}: the trace has no data rows")
        if reader.bad_rows == reader.data_rows:
            raise UserError(
                [
                    f"{reader.path}: all {reader.data_rows} rows are bad; first errors:",
                    *reader.bad_messages,
                ]
            )
        raise UserError(
            f"{reader.path}: no row left after window/sample/duration_s "
            f"(window start_s {self._start_s}, end_s {self._window_end_s}, "
            f"sample {self._sample}, duration_s {self._end_s})"
        )

    def peek_time(self) -> float:
        if self._next is None or self._issued >= self._max_requests:
            return math.inf
        return self._next.time_s

    def pop(self) -> Request:
        row = self._next
        if row is None or self._issued >= self._max_requests:
            raise IndexError("the trace has no more requests")
        class_name = row.class_name or "default"
        priority = row.priority
        if priority is None:
            priority = self._priorities.get(class_name, 0)
        request = Request(
            self._issued,
            row.time_s,
            row.prompt_tokens,
            row.output_tokens,
            class_name,
            priority,
            row.session_id,
            row.turn,
            row.session_id,
            row.prefix_tokens,
        )
        self._issued += 1
        self._next = next(self._rows, None)
        return request

    def on_finish(self, request: Request, finish_s: float) -> None:
        """A trace's arrival times are fixed; completions change nothing."""

    @property
    def completion_feedback(self) -> bool:
        """A trace's arrival times are fixed."""
        return False

    @property
    def exhausted(self) -> bool:
        return self._next is None or self._issued >= self._max_requests
