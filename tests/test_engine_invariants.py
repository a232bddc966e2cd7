"""Invariants of the simulated engine: conservation, ordering, determinism, KV accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.api import build_simulation, run
from tests.conftest import make_scenario


def _check_invariants(sim, records) -> None:
    req = records.requests
    done = ~req.rejected
    assert np.all(np.isfinite(req.finish_s[done])), "every admitted request finishes"
    assert np.all(req.arrival_s[done] <= req.first_token_s[done])
    assert np.all(req.first_token_s[done] <= req.finish_s[done])
    # tokens conserved: each request yields output_tokens tokens, so output-1 gaps
    assert records.itl.count == int((req.output_tokens[done] - 1).sum())
    for replica in sim.replicas:
        assert replica.batch.size == 0 and not replica.waiting
        kv = replica.kv
        cached = kv.cache.blocks if kv.cache is not None else 0
        assert replica.batch.blocks_held == 0, "KV blocks returned"
        assert kv.used == cached, "only cached prefixes keep blocks"
        assert kv.prefilling == kv.reserved == 0
        assert replica.outstanding == 0
        assert kv.peak <= kv.total


def test_quick_scenario_invariants():
    scenario = make_scenario()
    sim = build_simulation(scenario)
    _check_invariants(sim, sim.run())


def test_same_seed_same_result_other_seed_differs():
    a = run(make_scenario()).summary
    b = run(make_scenario()).summary
    c = run(make_scenario(workload={"seed": 2})).summary
    assert a == b
    assert a != c


def _kv_pressure_scenario(**engine):
    """A KV cache of a few thousand tokens against long outputs (``engine``: extra settings)."""
    return make_scenario(
        engine={"gpu_memory_utilization": 0.05, "max_num_batched_tokens": 2048, **engine},
        workload={
            "output_tokens": {"distribution": "uniform", "min": 200, "max": 600},
            "arrival": {"rate_per_s": 50},
            "num_requests": 200,
        },
    )


def test_preemption_under_kv_pressure_conserves_tokens():
    # The small KV cache against long outputs forces recompute preemption.
    scenario = _kv_pressure_scenario()
    sim = build_simulation(scenario)
    records = sim.run()
    _check_invariants(sim, records)
    assert records.requests.preemptions.sum() > 0


def test_whole_sequence_admission_never_preempts_and_keeps_the_cache_within_bounds():
    """TensorRT-LLM's GUARANTEED_NO_EVICT: a request is admitted only when its whole
    sequence fits beside the growth due to the admitted ones; the same pressure that forces
    recompute preemptions under prompt admission preempts nothing, and every token is still
    produced."""
    scenario = _kv_pressure_scenario(kv_admission="whole_sequence")
    sim = build_simulation(scenario)
    records = sim.run()
    _check_invariants(sim, records)
    assert records.requests.preemptions.sum() == 0
    assert not records.requests.rejected.any()


def test_request_longer_than_kv_cache_is_rejected_with_reason():
    scenario = make_scenario(
        engine={"gpu_memory_utilization": 0.05},
        workload={
            "prompt_tokens": {"distribution": "fixed", "value": 60000},
            "output_tokens": {"distribution": "fixed", "value": 10},
            "num_requests": 3,
        },
    )
    result = run(scenario)
    assert result.summary["requests_rejected"] == 3
    assert "KV cache" in result.records.requests.reject_reason[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.floats(1.0, 200.0),
    max_seqs=st.integers(1, 64),
    util=st.sampled_from([0.05, 0.06, 0.9]),
    out_max=st.integers(1, 300),
    replicas=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_invariants_hold_for_random_scenarios(rate, max_seqs, util, out_max, replicas, seed):
    scenario = make_scenario(
        hardware={"replicas": replicas},
        engine={
            "max_num_seqs": max_seqs,
            "gpu_memory_utilization": util,
            "max_num_batched_tokens": 2048,
        },
        workload={
            "arrival": {"rate_per_s": rate},
            "num_requests": 80,
            "seed": seed,
            "output_tokens": {"distribution": "uniform", "min": 1, "max": out_max},
        },
    )
    sim = build_simulation(scenario)
    _check_invariants(sim, sim.run())


def test_faster_memory_is_never_slower():
    base = run(make_scenario(hardware={"gpu": "h100-sxm", "calibration": "none"})).summary
    fast = run(make_scenario(hardware={"gpu": "h200", "calibration": "none"})).summary
    for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert fast[metric]["mean"] <= base[metric]["mean"] * (1 + 1e-9), metric


def test_more_flops_is_never_slower(tmp_path):
    import yaml

    from simulator.specs.catalog import specs_dir

    spec = yaml.safe_load((specs_dir() / "gpus" / "h100-sxm.yaml").read_text())
    spec["name"] = "h100-double-flops"
    for entry in spec["peak_flops"].values():
        entry["value"] = float(entry["value"]) * 2
    path = tmp_path / "h100-double-flops.yaml"
    path.write_text(yaml.safe_dump(spec))
    long_prompts = {"prompt_tokens": {"distribution": "uniform", "min": 1000, "max": 3000}}
    base = run(make_scenario(hardware={"calibration": "none"}, workload=long_prompts)).summary
    fast = run(
        make_scenario(hardware={"gpu": str(path), "calibration": "none"}, workload=long_prompts)
    ).summary
    assert fast["ttft_ms"]["mean"] < base["ttft_ms"]["mean"]
    assert fast["e2e_ms"]["mean"] <= base["e2e_ms"]["mean"]


def test_saturated_run_is_flagged():
    over = run(
        make_scenario(
            workload={
                "arrival": {"rate_per_s": 5000},
                "num_requests": 3000,
                "prompt_tokens": {"distribution": "fixed", "value": 2000},
            }
        )
    )
    light = run(make_scenario(workload={"arrival": {"rate_per_s": 2}, "num_requests": 100}))
    assert over.summary["saturated"] is True
    assert light.summary["saturated"] is False
    assert not math.isnan(light.summary["ttft_ms"]["p99"])


def test_a_batch_still_growing_is_saturation_too():
    # Overload with room in the KV cache: nothing waits, but the batch keeps growing.
    engine = {"max_num_seqs": 1024, "max_num_batched_tokens": 65536}
    short = run(
        make_scenario(
            model="llama-3.1-8b",
            engine=engine,
            workload={
                "arrival": {"rate_per_s": 60},
                "num_requests": 400,
                "prompt_tokens": {"distribution": "fixed", "value": 200},
                "output_tokens": {"distribution": "fixed", "value": 400},
            },
        )
    )
    assert short.summary["saturated"] is True
    assert "in flight" in short.summary["saturation_reason"]


@pytest.mark.parametrize("batching", ["continuous", "chunked", "static"])
def test_inter_token_gaps_are_counted_per_class(batching):
    classes = [
        {
            "name": "chat",
            "weight": 2,
            "output_tokens": {"distribution": "uniform", "min": 1, "max": 300},
        },
        {
            "name": "long",
            "weight": 1,
            "output_tokens": {"distribution": "uniform", "min": 200, "max": 600},
        },
    ]
    scenario = make_scenario(
        engine={
            "batching": batching,
            "gpu_memory_utilization": 0.05,
            "max_num_batched_tokens": 2048,
        },
        workload={"classes": classes, "arrival": {"rate_per_s": 40}, "num_requests": 150},
    )
    sim = build_simulation(scenario)
    records = sim.run()
    _check_invariants(sim, records)
    req = records.requests
    by_class = records.itl_by_class
    assert set(by_class) == {"chat", "long"}
    for name, hist in by_class.items():
        mine = (req.class_name == name) & ~req.rejected
        assert hist.count == int((req.output_tokens[mine] - 1).sum()), name
    assert sum(h.count for h in by_class.values()) == records.itl.count
