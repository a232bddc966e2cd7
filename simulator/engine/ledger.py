"""Per-request outcomes of a run, indexed by the order in which requests arrived.

Each outcome is a row of compact typed columns (``array.array``: 68 bytes per request), so
memory grows by tens of bytes per request however long the run; the request itself (its
prefix and session tags) is kept only while it is in flight. Rows are settled when their
request finishes or is rejected; a ``RecordSink`` receives the settled rows in arrival
order, chunk by chunk, and may let the ledger forget them (``keep_rows`` False). Past
``exact_limit`` rows, a sketch sink (``metrics.sketch.RequestSketch``) receives every
settled row instead of the ledger keeping it: memory then stays bounded by the requests in
flight.
"""

from __future__ import annotations

import math
from array import array
from typing import Protocol

import numpy as np

from simulator.metrics.records import RequestRecords
from simulator.workload.request import Request

NAN = math.nan
#: Rows handed to a sink at a time (and forgotten at a time when it keeps none).
CHUNK_ROWS = 1 << 16

#: Column name -> ``array`` type code (int32 where a count cannot reach 2**31).
COLUMNS = {
    "request_id": "q",
    "arrival_s": "d",
    "first_token_s": "d",
    "finish_s": "d",
    "prompt_tokens": "q",
    "output_tokens": "q",
    "replica": "i",
    "klass": "i",
    "cached_prompt_tokens": "q",
    "preemptions": "i",
}


class RecordSink(Protocol):
    """Where settled rows go as the run proceeds (a writer, a streaming summary)."""

    #: Whether the ledger keeps the rows it hands over (False: it forgets them).
    keep_rows: bool

    def write(self, rows: RequestRecords) -> None:
        """Receive the next rows, in arrival order."""
        ...


class RequestLedger:
    """Append-only columns, one row per arrived request (ordinal = arrival order)."""

    def __init__(
        self,
        sink: RecordSink | None = None,
        sketch: RecordSink | None = None,
        exact_limit: int | None = None,
    ) -> None:
        #: Requests routed and not yet finished or rejected, by ordinal.
        self.live: dict[int, Request] = {}
        for name, code in COLUMNS.items():
            setattr(self, name, array(code))
        #: Ordinal of the first row still held (rows before it went to the sink).
        self.base = 0
        self.reject_reasons: dict[int, str] = {}
        self.class_names: list[str] = []
        self._class_index: dict[str, int] = {}
        self._sink = sink
        self._sketch = sketch
        self._exact_limit = exact_limit if sketch is not None else None
        #: Rows past the exact limit: every settled row went to the sketch.
        self.sketched = False
        self._handing = sink is not None or sketch is not None
        self._settled: dict[int, int] = {}  # chunk -> rows settled in it
        self._next_chunk = 0  # first chunk not yet handed to the sink

    # ------------------------------------------------------------ recording
    def add(self, request: Request) -> int:
        """Record an arrival; returns its ordinal."""
        ordinal = self.base + len(self.arrival_s)
        self.live[ordinal] = request
        self.request_id.append(request.request_id)
        self.arrival_s.append(request.arrival_s)
        self.first_token_s.append(NAN)
        self.finish_s.append(NAN)
        self.prompt_tokens.append(request.prompt_tokens)
        self.output_tokens.append(request.output_tokens)
        self.replica.append(-1)
        index = self._class_index.get(request.class_name)
        if index is None:
            index = self._class_index[request.class_name] = len(self.class_names)
            self.class_names.append(request.class_name)
        self.klass.append(index)
        self.cached_prompt_tokens.append(0)
        self.preemptions.append(0)
        if self._exact_limit is not None and ordinal >= self._exact_limit and not self.sketched:
            self._start_sketching()
        return ordinal

    def reject(self, ordinal: int, reason: str) -> None:
        self.reject_reasons[ordinal] = reason

    def routed(self, ordinal: int, replica_id: int) -> None:
        self.replica[ordinal - self.base] = replica_id

    def first_token(self, ordinal: int, time_s: float) -> None:
        self.first_token_s[ordinal - self.base] = time_s

    def finish(self, ordinal: int, time_s: float) -> None:
        self.finish_s[ordinal - self.base] = time_s

    def cached(self, ordinal: int, tokens: int) -> None:
        """``tokens`` of the request's prompt were read from the prefix cache."""
        self.cached_prompt_tokens[ordinal - self.base] = tokens

    def preempted(self, ordinal: int) -> None:
        self.preemptions[ordinal - self.base] += 1

    def class_of(self, ordinal: int) -> int:
        """The request's class, as an index into ``class_names``."""
        return self.klass[ordinal - self.base]

    def settle(self, ordinal: int) -> None:
        """Request ``ordinal`` finished or was rejected: its row is final."""
        del self.live[ordinal]
        if not self._handing:
            return
        chunk = ordinal // CHUNK_ROWS
        settled = self._settled.get(chunk, 0) + 1
        self._settled[chunk] = settled
        while self._settled.get(self._next_chunk) == CHUNK_ROWS:
            self._hand_over(self._next_chunk)

    def __len__(self) -> int:
        return self.base + len(self.arrival_s)

    @property
    def sketch(self) -> RecordSink | None:
        """The sketch every settled row went to, once past the exact limit (else None)."""
        return self._sketch if self.sketched else None

    # ------------------------------------------------------------- reading
    def _hand_over(self, chunk: int) -> None:
        """Give the settled chunk to the sinks (and forget it unless they keep rows)."""
        del self._settled[chunk]
        self._next_chunk = chunk + 1
        self._give(chunk * CHUNK_ROWS, (chunk + 1) * CHUNK_ROWS)

    def _give(self, start: int, stop: int) -> None:
        if self._sink is None and not self.sketched:
            return
        rows = self._rows(start, stop)
        if self._sink is not None:
            self._sink.write(rows)
        if self.sketched:
            self._sketch.write(rows)
        if self.sketched or not self._sink.keep_rows:
            self._forget(stop)

    def _forget(self, stop: int) -> None:
        """Drop the rows before ordinal ``stop`` (handed over)."""
        for name in COLUMNS:
            del getattr(self, name)[: stop - self.base]
        self.base = stop
        self.reject_reasons = {o: r for o, r in self.reject_reasons.items() if o >= stop}

    def _start_sketching(self) -> None:
        """Past the exact limit: the rows handed over so far go to the sketch too, and are
        forgotten; from now on every settled chunk does."""
        self.sketched = True
        stop = self._next_chunk * CHUNK_ROWS
        if self.base < stop:
            self._sketch.write(self._rows(self.base, stop))
            self._forget(stop)

    def finish_sink(self) -> None:
        """The run is over: hand the rows not yet handed over to the sinks."""
        start = self._next_chunk * CHUNK_ROWS
        if start < len(self):
            self._give(start, len(self))
        self._next_chunk = -(-len(self) // CHUNK_ROWS)

    def _rows(self, start: int, stop: int) -> RequestRecords:
        """Rows ``start`` to ``stop`` (ordinals) as records (copies)."""
        lo, hi = start - self.base, stop - self.base
        return self._records(lo, hi, copy=True)

    def to_records(self) -> RequestRecords:
        """Every row held (every request, unless a sink took and dropped some)."""
        return self._records(0, len(self.arrival_s), copy=False)

    def _records(self, lo: int, hi: int, copy: bool) -> RequestRecords:
        def column(name: str) -> np.ndarray:
            data = getattr(self, name)
            values = np.frombuffer(data, dtype=data.typecode)[lo:hi] if len(data) else None
            if values is None:
                return np.empty(0, dtype=np.dtype(data.typecode))
            return values.copy() if copy else values

        n = hi - lo
        names = np.array(self.class_names or ["default"], dtype=object)
        reasons = np.full(n, "", dtype=object)
        rejected = np.zeros(n, dtype=bool)
        first = self.base + lo
        for ordinal, reason in self.reject_reasons.items():
            if first <= ordinal < first + n:
                reasons[ordinal - first] = reason
                rejected[ordinal - first] = True
        return RequestRecords(
            request_id=column("request_id"),
            arrival_s=column("arrival_s"),
            first_token_s=column("first_token_s"),
            finish_s=column("finish_s"),
            prompt_tokens=column("prompt_tokens"),
            output_tokens=column("output_tokens"),
            replica=column("replica"),
            class_name=names[column("klass")] if n else np.empty(0, dtype=object),
            rejected=rejected,
            reject_reason=reasons,
            cached_prompt_tokens=column("cached_prompt_tokens"),
            preemptions=column("preemptions"),
        )
