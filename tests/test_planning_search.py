"""Configuration search: infeasible points never ranked, Pareto set non-dominated, pruning
only drops points an evaluated one beats, and the planning file's sections validate."""

from __future__ import annotations

import textwrap

import pytest

from simulator.config.loader import scenario_from_dict
from simulator.errors import UserError
from simulator.planning import PlanConfig, SearchConfig, load_plan_file, pareto_flags
from simulator.planning.search import search_configurations

SEARCH_BASE = {
    "name": "search-test",
    "model": "llama-3.2-1b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1},
    "engine": {"batching": "continuous", "max_num_seqs": 32, "max_num_batched_tokens": 2048},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 20},
        "prompt_tokens": {"distribution": "uniform", "min": 256, "max": 1024},
        "output_tokens": {"distribution": "fixed", "value": 32},
        "num_requests": 300,
        "seed": 0,
    },
    "slo": {"ttft_ms": {"p99": 400}, "tpot_ms": {"p99": 20}},
}
#: Runs of the scenarios' own 300 requests keep the suite fast (every run, screening
#: included, has at least plan.min_requests_per_replica).
SEARCH_PLAN = PlanConfig(rate_tolerance=0.1, min_requests_per_replica=300)


@pytest.fixture(scope="module")
def result():
    scenario = scenario_from_dict(SEARCH_BASE)
    search = SearchConfig(
        gpus=["h100-sxm", "a100-sxm-80gb", "l4"],
        tensor_parallel=[1, 2],
        batching=["continuous", "no-such-policy"],
        gpu_hour_usd={"h100-sxm": 3.0, "a100-sxm-80gb": 1.5, "l4": 6.0},
        # TPOT separates the GPUs clearly enough for the L4 points to be pruned
        latency="tpot_ms.p50",
    )
    return search_configurations(scenario, search, SEARCH_PLAN)


def test_ranked_points_are_all_feasible_and_ordered(result):
    ranked = result.feasible
    assert ranked, "some configuration must meet this loose SLO"
    assert all(c.status == "ranked" and c.max_rate_per_s > 0 for c in ranked)
    costs = [c.cost_per_million_output_tokens_usd for c in ranked]
    assert costs == sorted(costs)
    assert [c.rank for c in ranked] == list(range(1, len(ranked) + 1))
    for c in result.candidates:
        if not c.feasible:
            assert c.rank is None and not c.pareto and c.reason
            assert c.status in ("infeasible", "pruned")
    assert result.simulated + result.pruned + result.infeasible == len(result.candidates)


def test_unknown_policy_is_infeasible_with_reason(result):
    bogus = [c for c in result.candidates if c.settings["batching"] == "no-such-policy"]
    assert len(bogus) == 6
    assert all(not c.feasible and "unknown policy" in c.reason for c in bogus)
    assert all("continuous" in c.reason for c in bogus)


def test_pareto_set_is_non_dominated(result):
    ranked = result.feasible
    front = [c for c in ranked if c.pareto]
    assert front and ranked[0].pareto  # the cheapest is always on the frontier
    for c in front:
        for other in ranked:
            assert not (
                other.cost_per_million_output_tokens_usd <= c.cost_per_million_output_tokens_usd
                and other.latency_ms <= c.latency_ms
                and (
                    other.cost_per_million_output_tokens_usd < c.cost_per_million_output_tokens_usd
                    or other.latency_ms < c.latency_ms
                )
            )
    for c in ranked:
        if not c.pareto:
            assert any(
                o.cost_per_million_output_tokens_usd <= c.cost_per_million_output_tokens_usd
                and o.latency_ms <= c.latency_ms
                for o in front
            )


def test_pruned_points_are_beaten_by_a_simulated_one(result):
    ranked = result.feasible
    assert result.pruned >= 1
    for c in result.candidates:
        if c.status != "pruned":
            continue
        assert any(
            o.cost_per_million_output_tokens_usd <= c.cost_lower_bound_usd
            and o.latency_ms <= c.latency_lower_bound_ms
            for o in ranked
        )


def test_pruning_changes_nothing_ranked():
    scenario = scenario_from_dict(SEARCH_BASE)
    search = SearchConfig(
        gpus=["h100-sxm", "l4"],
        tensor_parallel=[1, 2],
        gpu_hour_usd={"h100-sxm": 3.0, "l4": 6.0},
        latency="tpot_ms.p50",
    )
    pruned = search_configurations(scenario, search, SEARCH_PLAN)
    full = search_configurations(scenario, search, SEARCH_PLAN, prune=False)
    assert full.pruned == 0
    assert pruned.pruned >= 1
    assert pruned.simulated + pruned.pruned == full.simulated
    best_full = full.feasible[0]
    best = pruned.feasible[0]
    assert best.settings == best_full.settings
    assert best.cost_per_million_output_tokens_usd == best_full.cost_per_million_output_tokens_usd
    front = {tuple(c.settings.items()) for c in full.feasible if c.pareto}
    assert front == {tuple(c.settings.items()) for c in pruned.feasible if c.pareto}


def test_pareto_flags_by_hand():
    points = [(1.0, 5.0), (2.0, 3.0), (2.0, 4.0), (3.0, 3.0), (0.5, 9.0)]
    assert pareto_flags(points) == [True, True, False, False, True]


def test_plan_file_sections_validate(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent(
            """
            model: llama-3.2-1b
            workload:
              arrival: {process: poisson, rate_per_s: 5}
              prompt_tokens: {distribution: fixed, value: 100}
              output_tokens: {distribution: fixed, value: 10}
            plan: {target_rate_per_s: -1, bogus: 1}
            search: {gpus: [h100-sxm], weight_dtype: [bf17], latency: ttft_ms.p42}
            """
        )
    )
    with pytest.raises(UserError) as err:
        load_plan_file(path)
    text = "\n".join(err.value.messages)
    assert "plan.target_rate_per_s" in text
    assert "plan.bogus: unknown key" in text
    assert "search.weight_dtype" in text
    assert "search.latency" in text
    good = tmp_path / "g.yaml"
    good.write_text(
        path.read_text()
        .replace("target_rate_per_s: -1, bogus: 1", "replications: 2")
        .replace("bf17", "fp8")
        .replace("p42", "p99")
    )
    loaded = load_plan_file(good, ["plan.target_rate_per_s=7"])
    assert loaded.plan.replications == 2 and loaded.plan.target_rate_per_s == 7
    assert loaded.search.weight_dtype == ["fp8"]
    assert loaded.scenario.model == "llama-3.2-1b"


def test_roofline_bounds_hold_for_simulated_points():
    """Pruning is safe only if no simulated point beats its own bounds: rate, cost, latency
    (tensor and pipeline parallel, chunked prefill, fp8 weights on an 8B model)."""
    data = {
        **SEARCH_BASE,
        "model": "llama-3.1-8b",
        "engine": {"batching": "continuous", "max_num_seqs": 256, "max_num_batched_tokens": 8192},
        "workload": {
            **SEARCH_BASE["workload"],
            "prompt_tokens": {"distribution": "lognormal", "mean": 800, "sigma": 0.8},
            "output_tokens": {"distribution": "fixed", "value": 64},
            "num_requests": 300,
        },
        "slo": {"ttft_ms": {"p99": 1000}, "tpot_ms": {"p99": 50}},
    }
    search = SearchConfig(
        gpus=["h100-sxm"],
        tensor_parallel=[1, 4],
        pipeline_parallel=[1, 2],
        batching=["continuous", "chunked"],
        weight_dtype=["bf16", "fp8"],
        gpu_hour_usd={"h100-sxm": 3.0},
    )
    found = search_configurations(scenario_from_dict(data), search, SEARCH_PLAN, prune=False)
    assert len(found.feasible) >= 8
    # the rate search never goes past the bound: a point whose bound a run still met would
    # say its runs are too short instead of giving a rate
    assert not any("too short" in c.reason for c in found.candidates)
    for c in found.feasible:
        assert c.max_rate_per_s <= c.rate_bound_per_s, c.settings
        assert c.cost_per_million_output_tokens_usd >= c.cost_lower_bound_usd, c.settings
        assert c.latency_ms >= c.latency_lower_bound_ms, c.settings


def test_a_scenario_with_micro_batches_keeps_its_single_stage_candidates_feasible():
    """Micro-batches need pipeline stages: a candidate of one stage drops the scenario's."""
    from simulator.planning.search import Candidate, _static_check, expand_axes

    staged = {**SEARCH_BASE["hardware"], "pipeline_parallel": 2, "pipeline_microbatches": 4}
    scenario = scenario_from_dict({**SEARCH_BASE, "hardware": staged})
    search = SearchConfig(pipeline_parallel=[1, 2], gpu_hour_usd={"h100-sxm": 2.0})
    points = {}
    for settings in expand_axes(scenario, search):
        cand = Candidate(settings)
        points[settings["pipeline_parallel"]] = (_static_check(scenario, search, cand), cand)
    single, cand = points[1]
    assert single is not None, cand.reason
    assert single.hardware.pipeline_microbatches is None
    assert points[2][0].hardware.pipeline_microbatches == 4


def test_a_planned_rate_takes_a_workload_rate_bounds():
    """A target rate is simulated as an arrival rate: below the lowest one a workload takes,
    the plan file is refused at load time, not deep in the search."""
    from pydantic import ValidationError

    from simulator.workload.config import MIN_RATE_PER_S

    with pytest.raises(ValidationError, match=r"greater than or equal to 0\.000001"):
        PlanConfig(target_rate_per_s=MIN_RATE_PER_S / 100)
    assert PlanConfig(target_rate_per_s=MIN_RATE_PER_S).target_rate_per_s == MIN_RATE_PER_S
