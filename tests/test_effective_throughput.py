"""SLOs relative to the request (DeepSpeed-FastGen's effective throughput): TTFT per prompt
token and a floor on the moving average of the generation rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.api import run
from simulator.engine.gap_ema import GapEma
from simulator.metrics.latency import slo_latencies_ms
from simulator.planning import PlanConfig, max_sustainable_rate
from tests.conftest import make_scenario

FASTGEN_SLO = {"ttft_per_prompt_token_ms": {"max": 1000 / 512}, "gap_ema_ms": {"max": 250}}


def test_moving_average_matches_pandas_ewm_span_16():
    rng = np.random.default_rng(0)
    ema = GapEma(16)
    requests = np.arange(4)
    gaps: dict[int, list[float]] = {i: [] for i in requests}
    for _ in range(3):
        first = float(rng.exponential(0.05))
        ema.same_gap(requests, first)
        run_gaps = rng.exponential(0.03, 700)  # longer than one chunk of the update
        ema.gap_run(requests[:2], run_gaps)
        for i in requests:
            gaps[i].append(first)
            if i < 2:
                gaps[i].extend(run_gaps)
    worst = ema.worst_s(5)
    for i in requests:
        expected = pd.Series(gaps[i]).ewm(span=16).mean().max()
        assert worst[i] == pytest.approx(expected, rel=1e-9)
    assert np.isnan(worst[4])  # never had a gap


def _scenario(slo=None):
    scenario = make_scenario(
        workload={
            "arrival": {"process": "poisson", "rate_per_s": 30},
            "prompt_tokens": {"distribution": "normal", "mean": 1500, "std": 450, "min": 1},
            "output_tokens": {"distribution": "normal", "mean": 60, "std": 18, "min": 2},
            "num_requests": 400,
        }
    )
    return scenario.replace(slo=slo or FASTGEN_SLO)


def test_goodput_counts_requests_meeting_the_relative_slos():
    result = run(_scenario())
    records = result.records
    assert records.requests.worst_gap_ema_s is not None
    lat = slo_latencies_ms(records, {"ttft_per_prompt_token_ms", "gap_ema_ms"})
    req = records.requests
    ttft = (req.first_token_s - req.arrival_s) * 1e3
    assert np.allclose(lat["ttft_per_prompt_token_ms"], ttft / req.prompt_tokens)
    # a moving average of a request's gaps is at most their sum, the time from its first
    # token to its last
    generating = (req.finish_s - req.first_token_s) * 1e3
    assert np.all(lat["gap_ema_ms"] <= generating + 1e-9) and np.all(lat["gap_ema_ms"] > 0)
    summary = result.summary
    ok = (lat["ttft_per_prompt_token_ms"] <= 1000 / 512) & ~(lat["gap_ema_ms"] > 250)
    metrics = {c["metric"] for c in summary["slo"]["constraints"]}
    assert metrics == {"ttft_per_prompt_token_ms", "gap_ema_ms"}
    assert 0 < summary["goodput_rps"] <= summary["throughput_rps"]
    assert summary["slo"]["attainment"] == pytest.approx(ok.mean(), abs=0.05)


def test_gap_averages_are_only_kept_when_an_slo_asks():
    plain = run(_scenario(slo={"ttft_ms": {"p99": 1000}}))
    assert plain.records.requests.worst_gap_ema_s is None


def test_the_planner_searches_under_the_relative_slos():
    plan = PlanConfig(replications=1, min_requests_per_replica=300, max_requests_per_replica=900)
    found = max_sustainable_rate(_scenario(), plan)
    assert found.max_rate_per_s is not None and found.max_rate_per_s > 0
    assert set(found.intervals) == {"ttft_per_prompt_token_ms max", "gap_ema_ms max"}
