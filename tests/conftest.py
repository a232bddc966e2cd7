"""Shared test helpers: small scenarios built in code."""

from __future__ import annotations

import copy

import pytest

from simulator.config.loader import scenario_from_dict

BASE = {
    "name": "test",
    "model": "llama-3.2-1b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1},
    "engine": {"batching": "continuous", "max_num_seqs": 64, "max_num_batched_tokens": 4096},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 20},
        "prompt_tokens": {"distribution": "uniform", "min": 32, "max": 512},
        "output_tokens": {"distribution": "uniform", "min": 1, "max": 64},
        "num_requests": 300,
        "seed": 1,
    },
    "slo": {"ttft_ms": {"p99": 500}, "tpot_ms": {"p99": 50}},
    "cost": {"gpu_hour_usd": 2.0},
}


def _merge(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        replaces = isinstance(value, dict) and ("distribution" in value or "process" in value)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not replaces:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def make_scenario(**changes):
    """The small base scenario with nested ``changes`` merged in (a dict naming a
    ``distribution`` or ``process`` replaces the old one whole)."""
    return scenario_from_dict(_merge(BASE, changes))


@pytest.fixture
def scenario_factory():
    return make_scenario
