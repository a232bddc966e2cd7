"""Per-request records and time series written out chunk by chunk, as a run settles them.

A ``RecordWriter`` is the run's record sink (``engine.ledger.RecordSink``): the engine hands
it every settled chunk of requests in arrival order while the run goes on, and it appends
them to ``requests.csv`` (or ``requests.parquet`` through pyarrow), so writing a million
requests needs no table of them in memory. The CSV is the one a DataFrame would write:
one header line, empty fields for missing values (NaN), ``True``/``False`` flags, numbers
in their shortest exact form.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import UserError
from simulator.metrics.records import RequestRecords, RunRecords, TimeSeries

#: Output formats of the per-request records, and their file names.
FORMATS = {"csv": "requests.csv", "parquet": "requests.parquet"}


def request_columns(req: RequestRecords) -> dict[str, np.ndarray]:
    """The per-request columns as written: times (s), lengths, replica, rejection, TTFT,
    E2E and TPOT (ms), cached prompt tokens and preemptions where recorded."""
    output = req.output_tokens.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ttft = (req.first_token_s - req.arrival_s) * 1e3
        e2e = (req.finish_s - req.arrival_s) * 1e3
        tpot = np.where(output > 1, (req.finish_s - req.first_token_s) * 1e3 / (output - 1), np.nan)
    columns: dict[str, np.ndarray] = {
        "request_id": req.request_id,
        "class_name": req.class_name,
        "arrival_s": req.arrival_s,
        "first_token_s": req.first_token_s,
        "finish_s": req.finish_s,
        "prompt_tokens": req.prompt_tokens,
        "output_tokens": req.output_tokens,
        "replica": req.replica,
        "rejected": np.asarray(req.rejected, dtype=bool),
        "reject_reason": req.reject_reason,
        "ttft_ms": ttft,
        "e2e_ms": e2e,
        "tpot_ms": tpot,
    }
    if req.cached_prompt_tokens is not None:
        columns["cached_prompt_tokens"] = req.cached_prompt_tokens
    if req.preemptions is not None:
        columns["preemptions"] = req.preemptions
    return columns


def timeseries_columns(t: TimeSeries) -> dict[str, np.ndarray]:
    """The time-series columns as written, one row per sample per replica."""
    columns = {"time_s": t.time_s, "replica": t.replica, "waiting": t.waiting, "running": t.running}
    if t.swapped is not None:
        columns["swapped"] = t.swapped
    columns["kv_used_fraction"] = t.kv_used_fraction
    columns["batch_tokens"] = t.batch_tokens
    return columns


def _text(values: np.ndarray) -> list[str]:
    """A column as CSV fields: floats in their shortest exact form (NaN: empty)."""
    kind = values.dtype.kind
    if kind == "f":
        return ["" if x != x else repr(x) for x in values.tolist()]
    if kind == "b":
        return ["True" if x else "False" for x in values.tolist()]
    return [str(x) for x in values.tolist()]


def append_csv(handle, columns: dict[str, np.ndarray], header: bool) -> None:
    """Append ``columns`` as CSV rows to the open text file ``handle``."""
    writer = csv.writer(handle, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows(zip(*(_text(np.asarray(v)) for v in columns.values()), strict=True))


def _arrow_table(columns: dict[str, np.ndarray]):
    import pyarrow as pa

    return pa.table(
        {
            name: pa.array(values.tolist() if values.dtype == object else values)
            for name, values in columns.items()
        }
    )


class RecordWriter:
    """Writes a run's per-request records into ``folder`` chunk by chunk (``fmt``: "csv" or
    "parquet"), then its summary and time series (``close``)."""

    #: The engine keeps the rows it hands over (the summary is computed from them, exactly).
    keep_rows = True

    def __init__(self, folder: str | Path, fmt: str = "csv"):
        if fmt not in FORMATS:
            raise UserError(f"output format {fmt!r}: one of {', '.join(FORMATS)}")
        if fmt == "parquet":
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise UserError(
                    "Parquet output needs pyarrow: pip install pyarrow (or write CSV)"
                ) from None
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fmt = fmt
        self.path = self.folder / FORMATS[fmt]
        self.rows = 0
        self._handle: Any = None  # an open CSV file, or a pyarrow ParquetWriter

    def write(self, rows: RequestRecords) -> None:
        """Append the next settled requests (in arrival order)."""
        columns = request_columns(rows)
        if self.fmt == "csv":
            first = self._handle is None
            if first:
                self._handle = open(self.path, "w", newline="")  # noqa: SIM115 (kept open)
            append_csv(self._handle, columns, header=first)
        else:
            import pyarrow.parquet as pq

            table = _arrow_table(columns)
            if self._handle is None:
                self._handle = pq.ParquetWriter(self.path, table.schema)
            self._handle.write_table(table)
        self.rows += len(rows)

    def close(self, summary, records: RunRecords) -> list[Path]:
        """Finish the records file; write ``summary.json`` and ``timeseries.csv``. Returns
        the files written."""
        if self._handle is None:  # a run without requests still gets its (empty) file
            self.write(_empty())
        self._handle.close()
        self._handle = None
        summary_path = self.folder / "summary.json"
        summary_path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        series_path = self.folder / "timeseries.csv"
        with open(series_path, "w", newline="") as handle:
            append_csv(handle, timeseries_columns(records.timeseries), header=True)
        return [summary_path, self.path, series_path]

    def abandon(self) -> None:
        """Close without finishing (the run failed; the caller removes the folder)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _empty() -> RequestRecords:
    empty_f = np.empty(0, dtype=np.float64)
    empty_i = np.empty(0, dtype=np.int64)
    empty_o = np.empty(0, dtype=object)
    return RequestRecords(
        request_id=empty_i,
        arrival_s=empty_f,
        first_token_s=empty_f,
        finish_s=empty_f,
        prompt_tokens=empty_i,
        output_tokens=empty_i,
        replica=empty_i,
        class_name=empty_o,
        rejected=np.empty(0, dtype=bool),
        reject_reason=empty_o,
        cached_prompt_tokens=empty_i,
        preemptions=empty_i,
    )


def write_records(folder: str | Path, summary, records: RunRecords, fmt: str = "csv") -> list[Path]:
    """Write a finished run's ``summary.json``, per-request records and ``timeseries.csv``
    into ``folder`` (the records of ``records`` all at once)."""
    writer = RecordWriter(folder, fmt)
    try:
        writer.write(records.requests)
        return writer.close(summary, records)
    except BaseException:
        writer.abandon()
        raise
