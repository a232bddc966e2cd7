"""Records written chunk by chunk as a run settles them, and runs summarised through sketches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.api import build_simulation, summarize_run
from simulator.engine import ledger
from simulator.metrics.sketch import RELATIVE_ERROR
from simulator.metrics.stream import RecordWriter, write_records
from tests.conftest import make_scenario

SCENARIO = {"workload": {"num_requests": 900, "arrival": {"process": "poisson", "rate_per_s": 30}}}


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(ledger, "CHUNK_ROWS", 64)


def _run(writer=None, exact_requests=None):
    scenario = make_scenario(**SCENARIO)
    records = build_simulation(scenario, records_out=writer, exact_requests=exact_requests).run()
    return scenario, records, summarize_run(scenario, records)


def test_records_streamed_in_chunks_equal_the_whole_table(tmp_path, small_chunks):
    writer = RecordWriter(tmp_path / "streamed")
    _, records, summary = _run(writer)
    assert writer.rows == 900
    streamed = writer.close(summary, records)
    whole = write_records(tmp_path / "whole", summary, records)
    for a, b in zip(streamed, whole, strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_parquet_holds_the_csv_columns(tmp_path, small_chunks):
    pq = pytest.importorskip("pyarrow.parquet")
    writer = RecordWriter(tmp_path / "pq", "parquet")
    _, records, summary = _run(writer)
    writer.close(summary, records)
    table = pq.read_table(tmp_path / "pq" / "requests.parquet")
    assert table.num_rows == len(records.requests)
    np.testing.assert_array_equal(table.column("finish_s").to_numpy(), records.requests.finish_s)
    assert table.column("class_name").to_pylist()[0] == "default"


def test_a_sketched_run_keeps_no_rows_and_summarises_within_its_bounds(small_chunks):
    _, exact_records, _ = _run()
    _, records, sketched = _run(exact_requests=100)
    assert exact_records.request_sketch is None and records.request_sketch is not None
    assert len(records.requests) == 0  # every row folded into the sketch
    req = exact_records.requests
    completed = ~req.rejected & np.isfinite(req.finish_s)
    assert (sketched.requests_total, sketched.requests_completed) == (len(req), completed.sum())
    # the sketch's window: the first arrival (no warm-up configured) to the last completion
    assert sketched.requests_measured == completed.sum()
    assert sketched.window_end_s == req.finish_s[completed].max()
    exact = {
        "ttft_ms": (req.first_token_s - req.arrival_s)[completed] * 1e3,
        "e2e_ms": (req.finish_s - req.arrival_s)[completed] * 1e3,
    }
    for metric, values in exact.items():
        stats = getattr(sketched, metric)
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert stats["max"] == values.max()
        for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
            # within the histogram's relative resolution (plus interpolation between ranks)
            assert math.isclose(stats[key], np.percentile(values, q), rel_tol=2 * RELATIVE_ERROR)
    assert sketched.saturation_details["precision"]["percentile_relative_error"] == RELATIVE_ERROR


def test_frames_hold_the_columns_written(tmp_path):
    import pandas as pd

    from simulator.metrics.output import requests_frame, timeseries_frame

    _, records, summary = _run()
    write_records(tmp_path, summary, records)
    written = pd.read_csv(tmp_path / "requests.csv")
    frame = requests_frame(records)
    assert list(frame.columns) == list(written.columns)
    assert np.allclose(frame["ttft_ms"], written["ttft_ms"], equal_nan=True)
    assert list(timeseries_frame(records).columns) == list(
        pd.read_csv(tmp_path / "timeseries.csv").columns
    )
