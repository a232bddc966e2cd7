"""Saturation detection and Little's law on records of a textbook M/D/c queue."""

import re

import numpy as np
import pytest

from simulator.metrics import format_summary_table, littles_law_check, summarize
from simulator.metrics.saturation import detect_saturation
from simulator.metrics.synthetic import multi_server_queue_run

# 8 servers × 0.8 s per request: capacity 10 requests/s.
SERVERS, SERVICE_S, CAPACITY_RPS = 8, 0.8, 10.0


def run_at(load: float, *, seed: int, window_s: float = 60.0):
    return multi_server_queue_run(
        rate_per_s=load * CAPACITY_RPS,
        servers=SERVERS,
        service_s=SERVICE_S,
        arrival_window_s=window_s,
        seed=seed,
    )


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("load", [0.2, 0.5, 0.8])
def test_stable_load_is_not_flagged(load, seed):
    summary = summarize(run_at(load, seed=seed), slo=None, gpu_hour_usd=None)
    assert not summary.saturated, summary.saturation_reason
    assert summary.saturation_reason == ""


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("window_s", [20.0, 200.0])
def test_twice_capacity_is_flagged(window_s, seed):
    records = run_at(2.0, seed=seed, window_s=window_s)
    summary = summarize(records, slo=None, gpu_hour_usd=None)
    assert summary.requests_unfinished == 0  # the run drained: latencies look finite
    assert summary.saturated
    assert "queue still growing" in summary.saturation_reason
    details = summary.saturation_details
    # About half of what arrives is served: the backlog grows at about half the arrival rate.
    assert details["backlog_growth_rps"] == pytest.approx(
        0.5 * details["arrival_rate_rps"], rel=0.25
    )
    assert format_summary_table(summary).startswith("SATURATED: queue still growing")


def test_moderate_overload_in_a_long_run_is_flagged():
    assert detect_saturation(run_at(1.2, seed=0, window_s=300.0)).saturated


def test_unfinished_requests_flag_saturation():
    records = run_at(0.5, seed=1)
    records.requests.finish_s[-3:] = np.nan
    verdict = detect_saturation(records)
    assert verdict.saturated
    assert verdict.reason.startswith("3 request(s) still unfinished")


def test_growth_without_a_queue_is_not_flagged():
    """Rising load that the servers absorb (backlog grows, nothing waits) is not saturation."""
    records = run_at(0.3, seed=2)
    records.timeseries.waiting[:] = 0
    records.replicas[0].batch_seq_seconds *= 20  # a large typical batch
    assert not detect_saturation(records).saturated


@pytest.mark.parametrize("load", [0.3, 0.9, 2.0])
def test_littles_law_on_the_queue(load):
    check = littles_law_check(run_at(load, seed=3))
    # L from the 0.5 s samples vs λW from the request records: equal up to sampling error.
    assert abs(check["relative_error"]) < 0.03
    assert check["mean_in_system_timeseries"] > 0


def test_littles_law_detects_an_inconsistent_time_series():
    records = run_at(0.9, seed=3)
    records.timeseries.running[:] = records.timeseries.running // 2
    assert littles_law_check(records)["relative_error"] < -0.2


def test_synthetic_run_summary_matches_queueing_theory_at_light_load():
    summary = summarize(run_at(0.1, seed=4, window_s=200.0), slo=None, gpu_hour_usd=None)
    # At 10% load almost nobody waits: E2E is the service time, TTFT one token gap.
    assert summary.e2e_ms["p50"] == pytest.approx(SERVICE_S * 1e3)
    assert summary.ttft_ms["p50"] == pytest.approx(SERVICE_S / 10 * 1e3)
    assert summary.itl_ms["mean"] == pytest.approx(SERVICE_S / 10 * 1e3)
    # Requests in service form a Poisson(a) count, a = λ × service = 0.8; while busy the
    # time-weighted mean is a / (1 − e^−a).
    offered = 0.1 * CAPACITY_RPS * SERVICE_S
    expected = offered / (1.0 - np.exp(-offered))
    assert summary.mean_batch_size == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize(("load", "expected"), [(0.5, False), (0.9, False), (2.0, True)])
def test_large_batch(load, expected):
    """A deep batch (200 slots of 8 s, capacity 25 req/s), as continuous batching runs it."""
    for seed in range(5):
        records = multi_server_queue_run(
            rate_per_s=25 * load, servers=200, service_s=8.0, arrival_window_s=80, seed=seed
        )
        assert detect_saturation(records).saturated is expected


def _md1(load: float, requests: int, seed: int):
    """Records of an M/D/1 queue (one server, 0.1 s per request) at ``load`` × capacity."""
    return multi_server_queue_run(
        rate_per_s=load * 10.0,
        servers=1,
        service_s=0.1,
        arrival_window_s=requests / (load * 10.0),
        seed=seed,
    )


@pytest.mark.parametrize("seed", range(3))
def test_saturation_at_the_edge_is_consistent_across_run_lengths(seed):
    loads, lengths = (0.9, 0.95, 1.0, 1.05, 1.1), (2000, 4000, 8000, 16000)
    flagged = {}
    for load in loads:
        for n in lengths:
            verdict = detect_saturation(_md1(load, n, seed))
            flagged[load, n] = verdict.saturated
            # every rate a reason prints is a count over time: never negative
            assert not re.search(r"-\d", verdict.reason), verdict.reason
    for load in loads:  # a longer run only adds evidence of a growing queue
        row = [flagged[load, n] for n in lengths]
        assert row == sorted(row), (load, row)
    for n in lengths:  # more load never looks less saturated
        column = [flagged[load, n] for load in loads]
        assert column == sorted(column), (n, column)
    assert not any(flagged[0.9, n] for n in lengths)
    assert flagged[1.1, 8000] and flagged[1.1, 16000]


def test_engine_run_at_the_edge_is_flagged_above_capacity_and_not_below():
    # one request at a time (max_num_seqs 1), fixed lengths: the capacity is exactly one
    # over the service time, and the verdict at ±10% does not depend on the run length
    from simulator.api import build_cost_model, run
    from simulator.costmodel.shape import StepShape
    from tests.conftest import make_scenario

    def scenario(rate, n):
        return make_scenario(
            engine={"max_num_seqs": 1},
            workload={
                "arrival": {"process": "poisson", "rate_per_s": rate},
                "prompt_tokens": {"distribution": "fixed", "value": 512},
                "output_tokens": {"distribution": "fixed", "value": 1},
                "num_requests": n,
                "seed": 1,
            },
        )

    cost = build_cost_model(scenario(1.0, 10))
    capacity = 1.0 / cost.step_time_s(StepShape.build(prefills=[(512, 0)]))
    for n in (4000, 8000):
        assert not run(scenario(0.9 * capacity, n)).summary["saturated"]
        above = run(scenario(1.1 * capacity, n)).summary
        assert above["saturated"] and "req/s complete" in above["saturation_reason"]
