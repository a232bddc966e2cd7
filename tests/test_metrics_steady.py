"""Steady-state statistics against queueing theory: MSER-5 warm-up removal, and percentile
intervals that cover the known p99 of an M/D/1 queue."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special

from simulator.api import build_cost_model, run
from simulator.costmodel.shape import StepShape
from simulator.metrics import summarize
from simulator.metrics.steady import mean_interval, mser_truncation, quantile_interval
from simulator.metrics.synthetic import multi_server_queue_run
from tests.conftest import make_scenario


def md1_wait_cdf(t: float, rate: float, service: float) -> float:
    """P(wait <= t) of an M/D/1 queue (Erlang, 1909):
    (1 - rho) sum_{k=0}^{floor(t/D)} (lambda (kD - t))^k / k! e^{-lambda (kD - t)}."""
    k = np.arange(math.floor(t / service) + 1)
    x = rate * (k * service - t)  # <= 0
    log_terms = k * np.log(np.abs(x) + 1e-300) - special.gammaln(k + 1) - x
    signs = np.where((k % 2 == 1) & (x < 0), -1.0, 1.0)
    return float((1 - rate * service) * np.sum(signs * np.exp(log_terms)))


def md1_sojourn_quantile(p: float, rate: float, service: float) -> float:
    """The p-quantile of wait + service of an M/D/1 queue."""
    high = service
    while md1_wait_cdf(high, rate, service) < p:
        high *= 1.5
    wait = optimize.brentq(lambda t: md1_wait_cdf(t, rate, service) - p, 0.0, high)
    return wait + service


def test_md1_formula_matches_the_pollaczek_khinchine_mean():
    rate, service = 0.7, 1.0
    # the mean of the CDF's wait: integral of the survival function
    grid = np.linspace(0, 25, 2501)  # beyond, the alternating sum loses its digits
    survival = 1 - np.array([md1_wait_cdf(t, rate, service) for t in grid])
    mean = float(np.sum((survival[1:] + survival[:-1]) / 2) * (grid[1] - grid[0]))
    assert mean == pytest.approx(rate * service**2 / (2 * (1 - rate * service)), rel=1e-3)


def test_mser_cuts_a_known_transient_and_flags_a_trend():
    rng = np.random.default_rng(0)
    steady = rng.normal(10.0, 1.0, 2000)
    ramp = np.concatenate([np.linspace(0, 10, 200) + rng.normal(0, 1, 200), steady])
    cut = mser_truncation(ramp)
    assert cut.steady and 120 <= cut.index <= 300
    assert mser_truncation(steady).index <= 100  # nothing much to cut
    trend = np.arange(2000.0) + rng.normal(0, 1, 2000)
    assert not mser_truncation(trend).steady


def test_md1_p99_falls_inside_the_reported_interval_in_most_seeds():
    # M/D/1 at 50% load, 10,000 requests per run: the summary's E2E p99 interval (warm-up
    # removed by MSER-5, batch means over consecutive requests) against the exact p99.
    service, load, seeds = 0.1, 0.5, 60
    truth_ms = md1_sojourn_quantile(0.99, load / service, service) * 1e3
    covered = bounded = 0
    for seed in range(seeds):
        records = multi_server_queue_run(
            rate_per_s=load / service,
            servers=1,
            service_s=service,
            arrival_window_s=10_000 * service / load,
            seed=seed,
        )
        summary = summarize(records, slo=None, gpu_hour_usd=None, steady_traffic=True)
        low, high = summary.latency_ci95_ms["e2e_ms"]["p99"]
        high = math.inf if high is None else high
        covered += low <= truth_ms <= high
        bounded += math.isfinite(high)
    assert covered / seeds >= 0.9
    assert bounded / seeds >= 0.9  # long enough runs give finite intervals


def test_engine_md1_p99_falls_inside_the_reported_interval():
    # The same through the simulator: one request at a time, fixed prompt, one output
    # token: an M/D/1 queue whose service time is the prefill step; TTFT = wait + service.
    def scenario(rate, seed):
        return make_scenario(
            engine={"max_num_seqs": 1},
            workload={
                "arrival": {"process": "poisson", "rate_per_s": rate},
                "prompt_tokens": {"distribution": "fixed", "value": 1024},
                "output_tokens": {"distribution": "fixed", "value": 1},
                "num_requests": 6000,
                "seed": seed,
            },
        )

    cost = build_cost_model(scenario(1.0, 0))
    service = cost.step_time_s(StepShape.build(prefills=[(1024, 0)]))
    rate = 0.5 / service
    truth_ms = md1_sojourn_quantile(0.99, rate, service) * 1e3
    covered = 0
    seeds = 10
    for seed in range(seeds):
        low, high = run(scenario(rate, seed)).summary["latency_ci95_ms"]["ttft_ms"]["p99"]
        covered += low <= truth_ms <= (math.inf if high is None else high)
    assert covered >= 9


def test_intervals_stay_in_the_data_and_say_when_they_cannot_bound():
    rng = np.random.default_rng(1)
    values = rng.exponential(1.0, 300)
    found = quantile_interval(values, 99)
    assert values.min() <= found.low <= found.estimate
    # 300 values cannot bound a p99 from above
    assert found.high == math.inf and found.as_list()[1] is None
    assert found.decide(100.0) is None  # uncertain, whatever the threshold
    median = quantile_interval(values, 50)
    assert values.min() <= median.low <= median.estimate <= median.high <= values.max()
    assert median.decide(10.0) is True and median.decide(0.01) is False
    mean = mean_interval(values)
    assert values.min() <= mean.low < mean.estimate < mean.high <= values.max()
