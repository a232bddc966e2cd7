"""Maximum sustainable rate and fewest replicas: verdicts at 95% confidence, sequential
stopping, answers that hold when simulated again and that do not depend on the request
count the scenario happens to hold."""

from __future__ import annotations

import pytest

from simulator.api import run
from simulator.config.loader import scenario_from_dict
from simulator.planning import PlanConfig, fewest_replicas, max_sustainable_rate
from simulator.planning.evidence import MEETS, MISSES, UNCERTAIN, Criteria
from simulator.planning.outcome import judge
from simulator.planning.points import PointEvaluator
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
#: A small budget keeps the suite fast: at most 3,000 requests per replica per point.
PLAN = PlanConfig(replications=1, min_requests_per_replica=600, max_requests_per_replica=3000)


@pytest.fixture(scope="module")
def scenario():
    return scenario_from_dict(PLAN_BASE)


@pytest.fixture(scope="module")
def found(scenario):
    return max_sustainable_rate(scenario, PLAN)


def _state(scenario, rate, replicas=1, plan=PLAN):
    return PointEvaluator(scenario, plan).point(rate, replicas).verdict.state


def _passes(scenario, rate, replicas=1, plan=PLAN):
    return PointEvaluator(scenario, plan).point(rate, replicas).passes


def test_max_rate_is_certified_and_the_next_rate_is_not(scenario, found):
    assert found.max_rate_per_s is not None and found.failing_rate_per_s is not None
    assert found.max_rate_per_s < found.failing_rate_per_s <= found.max_rate_per_s * 1.05 + 1e-9
    # simulated again (same seeds): the same verdicts
    assert _state(scenario, found.max_rate_per_s) == found.max_rate_verdict
    assert _passes(scenario, found.max_rate_per_s)
    assert not _passes(scenario, found.failing_rate_per_s)
    assert found.intervals  # the SLO statistics at the maximum rate, with intervals
    for stat in found.intervals.values():
        assert stat["estimate_ms"] <= stat["threshold_ms"]
        if found.max_rate_verdict == MEETS:
            assert stat["verdict"] == "met" and stat["ci95_ms"][1] <= stat["threshold_ms"]
    # the highest certified rate is a simulated rate certified to meet, at or below it
    assert found.certified_max_rate_per_s <= found.max_rate_per_s
    assert _state(scenario, found.certified_max_rate_per_s) == MEETS


def test_knee_lies_in_a_positive_bracket_of_simulated_rates(found):
    low, high = found.knee_ci95_per_s
    assert low == found.certified_max_rate_per_s > 0
    assert high is not None and low <= found.knee_per_s <= high
    # The roofline bound is optimistic: no certified rate exceeds it.
    assert found.max_rate_per_s <= found.rate_bound_per_s


def test_sequential_stopping_stops(scenario, found):
    # far below the knee: certified after the first replications
    easy = PointEvaluator(scenario, PLAN).point(0.3 * found.max_rate_per_s, 1)
    assert easy.verdict.state == MEETS and len(easy.runs) <= 3
    # far above: certified to miss at once
    hard = PointEvaluator(scenario, PLAN).point(3 * found.max_rate_per_s, 1)
    assert hard.verdict.state == MISSES and len(hard.runs) == 1
    # at the knee: replications are added until the budget is spent, then "uncertain"
    knee = PointEvaluator(scenario, PLAN).point(found.knee_per_s, 1)
    if knee.verdict.state == UNCERTAIN:
        assert knee.requests >= PLAN.max_requests_per_replica
        assert knee.requests < PLAN.max_requests_per_replica + 2 * 600
        assert "budget" in knee.verdict.reason


def test_roofline_bound_above_saturated_throughput(scenario):
    bound = deployment_rate_bound_per_s(scenario)
    overloaded = scenario.with_num_requests(1500).with_rate(3 * bound)
    summary = run(overloaded).summary
    assert summary["saturated"]
    assert summary["throughput_rps"] < bound


def test_fewest_replicas_meets_and_one_fewer_does_not(scenario, found):
    target = 2.5 * found.max_rate_per_s
    answer = fewest_replicas(scenario, target, PLAN, per_replica_rate_per_s=found.knee_per_s)
    assert answer.replicas is not None and answer.replicas >= 2
    assert answer.gpus == answer.replicas
    assert _passes(scenario, target, answer.replicas)
    assert _state(scenario, target, answer.replicas) == answer.verdict
    assert not _passes(scenario, target, answer.replicas - 1)


def test_fleet_runs_do_not_depend_on_the_scenarios_request_count(scenario, found):
    # every fleet replica gets min_requests_per_replica: the scenario's own count (600 or
    # 1,200) is only a minimum, so the answer is the same
    target = 3 * found.max_rate_per_s
    plan = PLAN.model_copy(update={"min_requests_per_replica": 1200})
    answers = [
        fewest_replicas(scenario.with_num_requests(n), target, plan).replicas for n in (600, 1200)
    ]
    assert answers[0] is not None and answers[0] == answers[1]
    evaluator = PointEvaluator(scenario, plan)
    assert evaluator.run_requests(target, 3) == 3600


def test_unreachable_slo_reports_no_rate(scenario):
    strict = scenario.replace(slo={"tpot_ms": {"p99": 0.01}})
    found = max_sustainable_rate(strict, PLAN)
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


def test_min_arrival_span_lengthens_fast_runs(scenario):
    plan = PLAN.model_copy(update={"min_arrival_span_s": 10.0})
    evaluator = PointEvaluator(scenario, plan)
    assert evaluator.run_requests(100.0, 1) == 1000
    assert evaluator.run_requests(20.0, 1) == 600  # never fewer than the scenario's own


def test_plan_sizes_the_fleet_with_headroom_for_model_error(scenario):
    from simulator.api import validated_error_band
    from simulator.planning import plan
    from simulator.planning.plan import resolve_safety_margin

    band = validated_error_band()
    assert band is not None
    assert resolve_safety_margin(PlanConfig()) == pytest.approx(band["median_pct"] / 100)
    assert resolve_safety_margin(PlanConfig(safety_margin=0)) == 0
    config = PLAN.model_copy(update={"target_rate_per_s": 60, "safety_margin": 0.5})
    result = plan(scenario, config)
    assert result.replicas.target_rate_per_s == pytest.approx(90.0)
    out = result.to_dict()
    assert out["max_rate_with_margin_per_s"] == pytest.approx(out["max_rate_per_s"] / 1.5)
