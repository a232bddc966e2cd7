"""Scenario-level effects of batching policies, KV memory management and routing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.api import build_simulation, run
from tests.conftest import make_scenario
from tests.test_engine_invariants import _check_invariants

MIXED = {
    "arrival": {"process": "poisson", "rate_per_s": 3.0},
    "num_requests": 400,
    "prompt_tokens": {"distribution": "lognormal", "mean": 3000, "sigma": 1.0, "max": 20000},
    "output_tokens": {"distribution": "uniform", "min": 100, "max": 300},
}
SESSIONS = {
    "arrival": {"process": "poisson", "rate_per_s": 3.0},
    "num_requests": 400,
    "prompt_tokens": {"distribution": "uniform", "min": 200, "max": 1500},
    "output_tokens": {"distribution": "uniform", "min": 50, "max": 300},
    "sessions": {"turns": {"distribution": "uniform", "min": 2, "max": 6}, "think_time_s": 5.0},
}


def _run(**changes):
    return run(make_scenario(model="llama-3.1-8b", **changes))


def test_chunked_prefill_cuts_the_inter_token_tail():
    engine = {"max_num_seqs": 128, "max_num_batched_tokens": 32768}
    plain = _run(engine=engine, workload=MIXED).summary
    chunked = _run(
        engine={**engine, "batching": {"policy": "chunked", "chunk_size": 512}},
        workload=MIXED,
    ).summary
    assert chunked["itl_ms"]["p99"] < 0.5 * plain["itl_ms"]["p99"]


def test_static_batching_serves_less_than_continuous():
    load = {
        **MIXED,
        "arrival": {"process": "poisson", "rate_per_s": 3.0},
        "prompt_tokens": {"distribution": "uniform", "min": 100, "max": 3000},
    }
    cont = _run(workload=load).summary
    static = _run(
        engine={"batching": {"policy": "static", "batch_size": 32}}, workload=load
    ).summary
    assert static["throughput_rps"] < cont["throughput_rps"] or static["e2e_ms"]["p99"] > (
        2 * cont["e2e_ms"]["p99"]
    )


def test_prefix_caching_skips_cached_prompt_tokens_and_lowers_ttft():
    off = _run(engine={"prefix_caching": False}, workload=SESSIONS)
    on = _run(engine={"prefix_caching": True}, workload=SESSIONS)
    for result in (off, on):
        req = result.records.requests
        done = ~req.rejected
        computed = result.records.prefill_tokens_computed
        assert computed == int(req.prompt_tokens[done].sum() - req.cached_prompt_tokens[done].sum())
    assert off.records.requests.cached_prompt_tokens.sum() == 0
    assert on.summary["prefix_cache_hit_fraction"] > 0.2
    assert on.summary["ttft_ms"]["mean"] < off.summary["ttft_ms"]["mean"]


def test_swap_preemption_completes_everything_and_reports_bytes():
    result = run(
        make_scenario(
            engine={
                "gpu_memory_utilization": 0.05,
                "max_num_batched_tokens": 2048,
                "preemption": "swap",
            },
            workload={
                "output_tokens": {"distribution": "uniform", "min": 200, "max": 600},
                "arrival": {"rate_per_s": 50},
                "num_requests": 200,
            },
        )
    )
    assert result.summary["requests_completed"] == 200
    assert result.summary["preemptions"] > 0
    assert result.records.swapped_bytes > 0


def test_disaggregated_ttft_includes_the_kv_transfer():
    wl = {**MIXED, "num_requests": 200}
    pools = {"prefill": {"gpu": "h100-sxm"}, "decode": {"gpu": "h100-sxm"}}
    fast = _run(disaggregated={**pools, "kv_link": "nvlink4"}, workload=wl)
    slow = _run(disaggregated={**pools, "kv_link": "ethernet-100g"}, workload=wl)
    assert fast.records.kv_transfer_bytes > 0
    assert slow.summary["ttft_ms"]["mean"] > fast.summary["ttft_ms"]["mean"]
    # decode replicas receive requests only from the prefill pool
    assert set(np.unique(fast.records.requests.replica)) == {1}


@pytest.mark.parametrize("acceptance", [0.0, 0.9])
def test_speculative_decoding_speedup_follows_acceptance(acceptance):
    wl = {"arrival": {"rate_per_s": 1}, "num_requests": 100}
    spec = {
        "speculative": {
            "draft_model": "llama-3.2-1b",
            "num_speculative_tokens": 4,
            "acceptance_rate": acceptance,
        }
    }
    plain = _run(workload=wl).summary["tpot_ms"]["mean"]
    fast = _run(engine=spec, workload=wl).summary["tpot_ms"]["mean"]
    assert (fast > plain) if acceptance == 0.0 else (fast < 0.7 * plain)


def test_routing_policies_and_fleets_run_and_balance():
    wl = {"arrival": {"rate_per_s": 30}, "num_requests": 600}
    for policy in (
        "round_robin",
        "random",
        "least_outstanding",
        "least_kv",
        "prefix_affinity",
        "length_aware",
    ):
        routing = {"policy": policy}
        if policy == "length_aware":
            routing |= {"long_prompt_tokens": 300, "long_replica_fraction": 0.34}
        result = _run(hardware={"replicas": 3}, routing=routing, workload=wl)
        counts = np.bincount(result.records.requests.replica, minlength=3)
        assert counts.sum() == 600 and (counts > 0).all(), policy
    fleet = [{"gpu": "h200", "replicas": 1}, {"gpu": "a100-sxm-80gb", "replicas": 1}]
    result = _run(fleet=fleet, workload=wl, routing={"policy": "round_robin"})
    counts = np.bincount(result.records.requests.replica, minlength=2)
    assert counts[0] > counts[1]  # the faster group gets the larger share


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batching=st.sampled_from(
        ["continuous", "chunked", "decode_priority", "priority", "static", "disaggregated"]
    ),
    preemption=st.sampled_from(["recompute", "swap"]),
    util=st.sampled_from([0.05, 0.06, 0.9]),
    sessions=st.booleans(),
    rate=st.floats(2.0, 100.0),
    seed=st.integers(0, 100),
)
def test_invariants_hold_for_every_policy(batching, preemption, util, sessions, rate, seed):
    workload = {
        "arrival": {"rate_per_s": rate},
        "num_requests": 60,
        "seed": seed,
        "output_tokens": {"distribution": "uniform", "min": 1, "max": 200},
    }
    if sessions:
        workload["sessions"] = {
            "turns": {"distribution": "uniform", "min": 1, "max": 4},
            "think_time_s": 0.5,
        }
    engine = {"preemption": preemption, "gpu_memory_utilization": util}
    engine["max_num_batched_tokens"] = 2048
    pools = None
    if batching == "disaggregated":
        pools = {"prefill": {"engine": {"batching": "chunked"}}, "decode": {}}
    else:
        engine["batching"] = batching
    scenario = make_scenario(engine=engine, workload=workload, disaggregated=pools)
    sim = build_simulation(scenario)
    records = sim.run()
    _check_invariants(sim, records)
    for replica in sim.replicas:
        assert not replica.swap.sequences
        assert replica.swap.used_bytes == pytest.approx(0, abs=1e-3)
        assert not replica.prefilling and replica.kv.prefilling == 0
        cached = replica.kv.cache.blocks if replica.kv.cache is not None else 0
        assert replica.kv.used == cached <= replica.kv.total


def test_shared_system_prompt_is_served_from_the_prefix_cache():
    wl = {"system_prompt_tokens": 2000, "arrival": {"rate_per_s": 5}, "num_requests": 300}
    off = _run(engine={"prefix_caching": False}, workload=wl)
    on = _run(engine={"prefix_caching": True}, workload=wl)
    req = on.records.requests
    assert (req.prompt_tokens >= 2000 + 32).all()
    # every request after the first reuses the 2000-token prompt, whole blocks only
    assert (req.cached_prompt_tokens[1:] == 2000).all()
    assert on.summary["ttft_ms"]["mean"] < 0.5 * off.summary["ttft_ms"]["mean"]


def test_disaggregated_prefix_cache_hits_are_those_of_the_prefill_pool():
    pools = {"prefill": {"gpu": "h100-sxm"}, "decode": {"gpu": "h100-sxm"}}
    result = _run(engine={"prefix_caching": True}, workload=SESSIONS, disaggregated=pools)
    req = result.records.requests
    done = ~req.rejected
    computed = result.records.prefill_tokens_computed
    # the decode pool receives prefilled KV: its admission reads no prompt from a cache
    assert req.cached_prompt_tokens[done].sum() > 0
    assert computed == int(req.prompt_tokens[done].sum() - req.cached_prompt_tokens[done].sum())
