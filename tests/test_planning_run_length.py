"""Runs too short to measure: a search row never claims more than the roofline bound, never
follows the request count the scenario holds, and never prices a rate at an infinite cost."""

from __future__ import annotations

import math

import numpy as np

from simulator.config.loader import scenario_from_dict
from simulator.planning import PlanConfig, SearchConfig, max_sustainable_rate
from simulator.planning.evidence import MEETS, UNCERTAIN, RunEvidence, Verdict, point_verdict
from simulator.planning.points import Point, PointEvaluator
from simulator.planning.rate import _bracket
from simulator.planning.search import search_configurations

#: An 8B chat scenario whose 200 requests at a few times capacity arrive in under 3 s, before
#: any request after the warm-up completes: such a run shows no queue and no throughput.
SHORT = {
    "name": "short-runs",
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1},
    "engine": {"profile": "vllm"},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 10},
        "prompt_tokens": {"distribution": "lognormal", "mean": 1000, "sigma": 0.8},
        "output_tokens": {"distribution": "fixed", "value": 200},
        "num_requests": 200,
    },
    "slo": {"ttft_ms": {"p99": 2000}, "tpot_ms": {"p99": 50}},
}


def _row(num_requests: int):
    data = {**SHORT, "workload": {**SHORT["workload"], "num_requests": num_requests}}
    search = SearchConfig(gpus=["h100-sxm"], gpu_hour_usd={"h100-sxm": 3.0})
    (row,) = search_configurations(scenario_from_dict(data), search, PlanConfig()).candidates
    return row


def test_search_row_is_bounded_finite_and_independent_of_the_request_count():
    rows = {n: _row(n) for n in (200, 1000)}
    for n, row in rows.items():
        assert row.feasible, (n, row.reason)
        assert row.max_rate_per_s <= row.rate_bound_per_s, (n, row.max_rate_per_s)
        assert math.isfinite(row.cost_per_million_output_tokens_usd), n
        assert row.cost_per_million_output_tokens_usd >= row.cost_lower_bound_usd, n
    # the planner lengthens every run to plan.min_requests_per_replica (1,000), screening
    # included: 200 requests are only a minimum, so both counts give the same row
    assert rows[200].max_rate_per_s == rows[1000].max_rate_per_s
    assert rows[200].rate_bound_per_s == rows[1000].rate_bound_per_s


def test_bracket_never_passes_the_roofline_bound():
    # runs too short to show a queue pass at every rate: the search stops at the bound and
    # gives no higher end, so no rate above it is ever returned
    tried = []

    def passes(rate: float) -> bool:
        tried.append(rate)
        return True

    lo, hi = _bracket(passes, 10.0, 40.0, 0.004)
    assert (lo, hi) == (40.0, None)
    assert max(tried) == 40.0


def test_a_search_passing_at_the_bound_gives_no_rate_and_says_why():
    scenario = scenario_from_dict(SHORT)
    evaluator = PointEvaluator(scenario, PlanConfig(), screening=True)
    # every rate meets the SLO, as on runs too short to show a queue
    evaluator.point = lambda rate, replicas: Point(rate, replicas, [], Verdict(MEETS, "meets"))
    found = max_sustainable_rate(scenario, PlanConfig(), evaluator=evaluator)
    assert found.max_rate_per_s is None and found.summaries == []
    assert "too short" in found.reason and "roofline bound" in found.reason


def test_a_run_with_no_completion_in_its_window_does_not_pass():
    summary = {
        "requests_total": 200,
        "requests_rejected": 0,
        "requests_completed_in_window": 0,
        "window_start_s": 1.27,
        "window_end_s": 2.79,
    }
    # latencies well inside the SLO: a system still filling, not a steady one
    ttft = np.random.default_rng(0).uniform(80.0, 120.0, 400)
    run = RunEvidence(summary, {"ttft_ms": ttft}, np.ones(len(ttft)))
    slo = {"ttft_ms": {"p50": 2000}}
    verdict = point_verdict([run], slo)
    assert verdict.state == UNCERTAIN and verdict.too_short
    assert "too short" in verdict.reason and "num_requests" in verdict.reason
    assert not Point(70.0, 1, [run], verdict).passes
    # the same run with completions in its window meets the SLO
    fine = RunEvidence({**summary, "requests_completed_in_window": 80}, run.latencies_ms)
    assert point_verdict([fine], slo).meets
