"""Workload schema: nonsense parameters are rejected with their path and value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from simulator.workload import build_source, iterate_requests
from simulator.workload.config import WorkloadConfig

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"
ISSUE_3_SCENARIOS = [
    "chat",
    "rag_long_prompt",
    "code_completion",
    "batch_summarisation",
    "bursty_mixed",
    "daily_cycle",
    "trace_replay",
]

VALID = {
    "arrival": {"process": "poisson", "rate_per_s": 5},
    "prompt_tokens": {"distribution": "fixed", "value": 100},
    "output_tokens": {"distribution": "fixed", "value": 10},
}


def errors_of(**changes) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        WorkloadConfig(**{**VALID, **changes})
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_minimal_workload_gets_default_count():
    assert WorkloadConfig(**VALID).num_requests == 1000
    assert WorkloadConfig(**VALID, duration_s=60).num_requests is None


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"prompt_tokens": {"distribution": "lognormal", "mean": 100, "sigma": 0}},
            "prompt_tokens.lognormal.sigma",
            "greater than 0",
        ),
        (
            {"prompt_tokens": {"distribution": "uniform", "min": 500, "max": 100}},
            "prompt_tokens.uniform",
            "min (500.0) must not exceed max (100.0)",
        ),
        (
            {"output_tokens": {"distribution": "normal", "mean": 100, "std": -1}},
            "output_tokens.normal.std",
            "greater than 0",
        ),
        (
            {"output_tokens": {"distribution": "gaussian", "mean": 1}},
            "output_tokens",
            "does not match any of the expected tags",
        ),
        ({"arrival": {"process": "gamma", "rate_per_s": 5}}, "arrival.gamma.cv", "Field required"),
        (
            {"arrival": {"process": "poisson", "rate_per_s": 5, "burst": 2}},
            "arrival.poisson.burst",
            "Extra inputs",
        ),
        (
            {"arrival": {"process": "constant", "rate_per_s": 1, "interval_s": 1}},
            "arrival.constant",
            "exactly one of rate_per_s, interval_s",
        ),
        (
            {
                "arrival": {
                    "process": "time_varying",
                    "points": [{"time_s": 0, "rate_per_s": 1}, {"time_s": 0, "rate_per_s": 2}],
                }
            },
            "arrival.time_varying",
            "strictly increasing",
        ),
        (
            {"arrival": {"process": "diurnal", "mean_rate_per_s": 1, "peak_to_trough": 0.5}},
            "arrival.diurnal.peak_to_trough",
            "greater than or equal to 1",
        ),
        (
            {"classes": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]},
            "",
            "weights must sum to a positive number",
        ),
        ({"classes": [{"name": "a"}, {"name": "a"}]}, "", "duplicate names ['a']"),
        (
            {"prompt_tokens": {"distribution": "empirical"}},
            "prompt_tokens.empirical",
            "exactly one of samples, file, histogram",
        ),
        (
            {
                "prompt_tokens": {
                    "distribution": "empirical",
                    "histogram": {"edges": [0, 10], "counts": [0]},
                }
            },
            "prompt_tokens.empirical.histogram",
            "counts must sum to a positive number",
        ),
        (
            {"prompt_tokens": {"distribution": "zipf", "exponent": 1.1, "max": 1e9}},
            "prompt_tokens.zipf",
            "too large",
        ),
        ({"length_correlation": 1.5}, "length_correlation", "less than or equal to 1"),
        ({"window": {"start_s": 5}}, "", "only apply with trace"),
        ({"arrival": None}, "", "arrival is required"),
    ],
)
def test_nonsense_is_rejected_with_path(change, path, words):
    errors = errors_of(**change)
    assert any(loc == path and words in msg for loc, msg in errors), errors


def test_trace_excludes_synthetic_arrivals():
    with pytest.raises(ValidationError, match="remove arrival"):
        WorkloadConfig(trace="t.csv", arrival={"process": "poisson", "rate_per_s": 1})


def test_classes_may_carry_all_lengths():
    config = WorkloadConfig(
        arrival={"process": "poisson", "rate_per_s": 1},
        classes=[
            {
                "name": "a",
                "prompt_tokens": {"distribution": "fixed", "value": 3},
                "output_tokens": {"distribution": "fixed", "value": 4},
                "slo": {"ttft_ms": {"p99": 200}},
            }
        ],
    )
    assert config.classes[0].slo.ttft_ms == {"p99": 200}
    with pytest.raises(ValidationError, match="output_tokens is required"):
        WorkloadConfig(
            arrival={"process": "poisson", "rate_per_s": 1},
            prompt_tokens={"distribution": "fixed", "value": 3},
            classes=[{"name": "a"}],
        )


@pytest.mark.parametrize("name", ISSUE_3_SCENARIOS)
def test_shipped_scenarios_have_valid_workloads(name):
    path = WORKLOADS / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    config = WorkloadConfig.model_validate(data["workload"])
    source = build_source(config, base_dir=path.parent)
    requests = list(iterate_requests(source))
    assert requests and source.exhausted
    assert all(r.prompt_tokens >= 1 and r.output_tokens >= 1 for r in requests)


def test_trace_and_synthetic_options_do_not_mix():
    with pytest.raises(ValidationError, match="remove prompt_tokens"):
        WorkloadConfig(trace="t.csv", prompt_tokens={"distribution": "fixed", "value": 3})
    with pytest.raises(ValidationError, match=r"classes\.a\.output_tokens"):
        WorkloadConfig(
            trace="t.csv",
            classes=[{"name": "a", "output_tokens": {"distribution": "fixed", "value": 3}}],
        )
    with pytest.raises(ValidationError, match="time_scale only apply with trace"):
        WorkloadConfig(**VALID, time_scale=2)
    assert (
        WorkloadConfig(trace="t.csv", classes=[{"name": "a", "priority": 2}]).num_requests is None
    )


def test_class_slos_in_the_shape_of_the_scenario_slo():
    config = WorkloadConfig(
        **VALID,
        classes=[
            {"name": "chat", "slo": {"ttft_ms": {"p99": 500}, "tpot_ms": {"p90": 40}}},
            {"name": "batch"},
        ],
    )
    assert config.class_slos() == {"chat": {"ttft_ms": {"p99": 500}, "tpot_ms": {"p90": 40}}}
