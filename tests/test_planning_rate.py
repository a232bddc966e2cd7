"""Maximum sustainable rate and fewest replicas: the answers hold when simulated again."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.api import run
from simulator.config.loader import scenario_from_dict
from simulator.planning import PlanConfig, fewest_replicas, max_sustainable_rate
from simulator.planning.outcome import Criteria, judge, keep_up, simulate
from simulator.planning.rate import deployment_rate_bound_per_s

PLAN_BASE = {
    "name": "plan-test",
    "model": "llama-3.2-1b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1},
    "engine": {"batching": "continuous", "max_num_seqs": 32, "max_num_batched_tokens": 2048},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 50},
        "prompt_tokens": {"distribution": "uniform", "min": 256, "max": 1024},
        "output_tokens": {"distribution": "fixed", "value": 64},
        "num_requests": 600,
        "seed": 3,
    },
    "slo": {"ttft_ms": {"p99": 200}, "tpot_ms": {"p99": 6}},
    "cost": {"gpu_hour_usd": 2.0},
}


@pytest.fixture(scope="module")
def scenario():
    return scenario_from_dict(PLAN_BASE)


@pytest.fixture(scope="module")
def found(scenario):
    return max_sustainable_rate(scenario, PlanConfig(replications=2, rate_tolerance=0.05))


def _meets_all(scenario, rate, replications, replicas=1):
    outcomes = [
        simulate(scenario.with_replicas(replicas).with_rate(rate).with_seed_offset(i))
        for i in range(replications)
    ]
    return all(o.meets for o in outcomes), outcomes


def test_max_rate_lies_between_a_met_and_a_missed_rate(scenario, found):
    assert found.max_rate_per_s is not None and found.failing_rate_per_s is not None
    assert found.max_rate_per_s < found.failing_rate_per_s <= found.max_rate_per_s * 1.05 + 1e-9
    ok, _ = _meets_all(scenario, found.max_rate_per_s, 2)
    assert ok
    ok, outcomes = _meets_all(scenario, found.failing_rate_per_s, 2)
    assert not ok
    assert any(
        "SLO missed" in o.reason or "saturated" in o.reason or "behind" in o.reason
        for o in outcomes
    )


def test_knee_interval_and_bound(found):
    assert len(found.knees_per_s) == 2
    lo, hi = found.knee_ci95_per_s
    assert lo <= found.knee_per_s <= hi
    # The roofline bound is optimistic: no simulated sustainable rate exceeds it.
    assert found.max_rate_per_s <= found.rate_bound_per_s


def test_roofline_bound_above_saturated_throughput(scenario):
    bound = deployment_rate_bound_per_s(scenario)
    overloaded = scenario.with_num_requests(1500).with_rate(3 * bound)
    summary = run(overloaded).summary
    assert summary["saturated"]
    assert summary["throughput_rps"] < bound


def test_fewest_replicas_meets_and_one_fewer_does_not(scenario, found):
    target = 2.5 * found.max_rate_per_s
    answer = fewest_replicas(scenario, target, PlanConfig(replications=2))
    assert answer.replicas is not None and answer.replicas >= 2
    assert answer.gpus == answer.replicas
    ok, _ = _meets_all(scenario, target, 2, answer.replicas)
    assert ok
    ok, _ = _meets_all(scenario, target, 2, answer.replicas - 1)
    assert not ok


def test_unreachable_slo_reports_no_rate(scenario):
    strict = scenario.replace(slo={"tpot_ms": {"p99": 0.01}})
    found = max_sustainable_rate(strict, PlanConfig(replications=1))
    assert found.max_rate_per_s is None
    assert "SLO" in found.reason


def test_judge_reasons():
    summary = {
        "saturated": False,
        "requests_total": 10,
        "requests_rejected": 0,
        "slo": {
            "constraints": [
                {
                    "metric": "ttft_ms",
                    "percentile": "p99",
                    "observed_ms": 120.0,
                    "threshold_ms": 100.0,
                    "met": False,
                }
            ],
            "attainment": 0.9,
        },
    }
    meets, reason = judge(summary)
    assert not meets and "ttft_ms p99 120.0 ms > 100 ms" in reason
    summary["slo"]["constraints"][0]["met"] = True
    assert judge(summary) == (True, "meets the SLO")
    assert not judge(summary, Criteria(min_attainment=0.95))[0]
    summary["requests_rejected"] = 1
    assert "rejected" in judge(summary)[1]
    assert not judge({"saturated": True, "saturation_reason": "x"})[0]


def test_keep_up_flags_a_falling_behind_run():
    arrivals = np.linspace(0, 10, 1000)
    assert keep_up(arrivals, arrivals + 0.1)[0]
    slow = np.where(arrivals < 5, arrivals + 0.1, 5 + (arrivals - 5) * 2)
    ok, reason = keep_up(arrivals, slow)
    assert not ok and "falls behind" in reason
    assert math.isclose(float(np.count_nonzero(slow <= 10)), 750, abs_tol=2)


def test_min_arrival_span_lengthens_fast_runs(scenario):
    from simulator.planning.rate import Evaluator

    evaluator = Evaluator(scenario, Criteria(), min_arrival_span_s=10.0)
    assert evaluator.outcome(100.0, 1, 0).summary["requests_total"] == 1000
    assert evaluator.outcome(20.0, 1, 0).summary["requests_total"] == 600  # never fewer


def test_plan_sizes_the_fleet_with_headroom_for_model_error(scenario):
    from simulator.api import validated_error_band
    from simulator.planning import plan
    from simulator.planning.plan import resolve_safety_margin

    band = validated_error_band()
    assert band is not None
    assert resolve_safety_margin(PlanConfig()) == pytest.approx(band["median_pct"] / 100)
    assert resolve_safety_margin(PlanConfig(safety_margin=0)) == 0
    config = PlanConfig(target_rate_per_s=60, safety_margin=0.5, replications=1)
    result = plan(scenario, config)
    assert result.replicas.target_rate_per_s == pytest.approx(90.0)
    out = result.to_dict()
    assert out["max_rate_with_margin_per_s"] == pytest.approx(out["max_rate_per_s"] / 1.5)
