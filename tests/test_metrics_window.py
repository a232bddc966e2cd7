"""The measured window at its edges: a warm-up that outlasts the run, and a steady run so far
over capacity that no request completes before arrivals stop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.metrics import format_summary_table, summarize
from simulator.metrics.synthetic import hand_worked_run, multi_server_queue_run
from simulator.metrics.window import DRAIN_BASIS, STEADY_BASIS


def _drain_only_run():
    """About 100 requests in 2 s on one server taking 5 s each: the first completes at
    about 5 s, after the last arrival, so none completes while requests arrive."""
    return multi_server_queue_run(
        rate_per_s=50, servers=1, service_s=5.0, arrival_window_s=2.0, seed=0
    )


def test_a_run_completing_nothing_before_arrivals_stop_is_measured_over_its_drain():
    records = _drain_only_run()
    req = records.requests
    assert req.finish_s.min() > records.arrival_end_s  # every completion after the arrivals
    s = summarize(records, slo=None, gpu_hour_usd=2.0, steady_traffic=True)
    assert s.throughput_basis == DRAIN_BASIS
    assert s.window_start_s == pytest.approx(req.arrival_s.min())
    assert s.window_end_s == pytest.approx(req.finish_s.max())
    # every request over first arrival to last completion: one server's 1 / 5 s, nearly
    makespan_s = req.finish_s.max() - req.arrival_s.min()
    assert s.throughput_rps == pytest.approx(len(req) / makespan_s)
    assert s.throughput_rps == pytest.approx(1 / 5.0, rel=0.05)
    assert s.requests_completed_in_window == len(req)
    # one drain, not samples of a steady state: no intervals
    assert s.throughput_ci95_rps is None
    assert s.latency_ci95_ms == {}
    text = format_summary_table(s)
    assert "requests/s       0.000" not in text
    assert "one drain of the queue" in text


def test_a_fixed_warmup_still_applies_to_the_drain_window():
    records = _drain_only_run()
    s = summarize(records, slo=None, gpu_hour_usd=None, warmup_s=0.5, steady_traffic=True)
    assert s.throughput_basis == DRAIN_BASIS
    assert s.window_start_s == pytest.approx(records.requests.arrival_s.min() + 0.5)


def test_a_saturated_run_with_completions_in_its_window_keeps_the_steady_window():
    records = multi_server_queue_run(
        rate_per_s=20, servers=8, service_s=0.8, arrival_window_s=30, seed=0
    )
    s = summarize(records, slo=None, gpu_hour_usd=None, steady_traffic=True)
    assert s.saturated
    assert s.throughput_basis == STEADY_BASIS
    assert s.window_end_s == pytest.approx(records.arrival_end_s)
    assert s.throughput_rps == pytest.approx(10.0, rel=0.1)  # its capacity


@pytest.mark.parametrize("steady_traffic", [False, True])
def test_a_warmup_longer_than_the_run_says_so_and_measures_nothing(steady_traffic):
    s = summarize(
        hand_worked_run(),
        slo={"ttft_ms": {"p99": 400}, "itl_ms": {"p99": 150}},
        gpu_hour_usd=2.5,
        warmup_s=1e6,
        steady_traffic=steady_traffic,
    )
    assert s.requests_measured == 0 and s.requests_completed == 4
    assert s.duration_s == 0
    # no window to measure a rate over: unknown, not "serves nothing"
    assert math.isnan(s.throughput_rps) and math.isnan(s.goodput_rps)
    # the gaps all belong to requests outside the (empty) window
    assert math.isnan(s.itl_ms["mean"]) and math.isnan(s.itl_ms["p99"])
    assert all(c["verdict"] == "not observed" for c in s.slo["constraints"])
    text = format_summary_table(s)
    assert "outlasts the run" in text
    assert "no measured request" in text
    assert not any(line.strip().startswith("ITL") for line in text.splitlines())
    assert "requests/s       -" in text


def test_an_empty_run_still_serves_nothing_at_zero():
    records = hand_worked_run()
    records.requests.finish_s[:] = np.nan
    records.requests.rejected[:] = True
    s = summarize(records, slo=None, gpu_hour_usd=None)
    assert s.throughput_rps == 0.0


def test_itl_says_it_covers_the_warmup_the_other_latencies_leave_out():
    s = summarize(hand_worked_run(), slo=None, gpu_hour_usd=None, warmup_s=1.5)
    assert s.requests_measured == 2
    assert s.itl_ms["mean"] == pytest.approx((20 * 50 + 25 * 100) / 45)  # the whole run
    assert "ITL: the gaps of every request of the run, warm-up included" in format_summary_table(s)
    without = summarize(hand_worked_run(), slo=None, gpu_hour_usd=None)
    assert "warm-up included" not in format_summary_table(without)
