"""The issue-5 scenario files run end to end at small request counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.api import build_cost_model, build_memory_plan, load_scenario, run
from simulator.costmodel import StepShape

WORKLOADS = Path(__file__).resolve().parents[1] / "workloads"
SCENARIOS = [
    "llama70b_4xh100_tp4",
    "llama405b_fp8_8xh200",
    "deepseek_v3_2x8xh100_ep_disagg",
    "mixtral_2xa100_pcie",
    "llama8b_q4_rtx4090",
    "llama70b_m2_ultra",
    "llama70b_offload_24gb",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_runs(name):
    scenario = load_scenario(WORKLOADS / f"{name}.yaml")
    result = run(scenario)
    summary = result.summary
    assert summary["requests_completed"] == scenario.workload.num_requests
    assert summary["requests_rejected"] == 0
    assert not summary["saturated"]


@pytest.mark.parametrize(
    "name", ["llama8b_q4_rtx4090", "llama70b_m2_ultra", "llama70b_offload_24gb"]
)
def test_local_decode_within_memory_bandwidth_bound(name):
    scenario = load_scenario(WORKLOADS / f"{name}.yaml")
    cm = build_cost_model(scenario)
    plan = build_memory_plan(scenario)
    assert plan.fits
    step_s = cm.step_time_s(StepShape.uniform(decode_count=1, decode_context=500))
    tokens_per_s = 1.0 / step_s
    bound = cm.gpu.memory_bw_bytes_per_s / cm.weight_bytes_per_token(1)
    assert tokens_per_s <= bound


def _quick(hardware: dict, **engine) -> dict:
    return {
        "model": engine.pop("model", "llama-3.1-8b"),
        "hardware": hardware,
        "engine": engine,
        "workload": {
            "arrival": {"process": "poisson", "rate_per_s": 1},
            "prompt_tokens": {"distribution": "fixed", "value": 100},
            "output_tokens": {"distribution": "fixed", "value": 10},
            "num_requests": 5,
            "seed": 0,
        },
    }


@pytest.mark.parametrize(
    ("hardware", "engine", "message"),
    [
        ({"expert_parallel": 2}, {}, "hardware.expert_parallel: 2 needs a mixture-of-experts"),
        ({"tensor_parallel": 8, "gpus_per_node": 4}, {}, "hardware.inter_node_link"),
        ({"gpu": "rtx-4090", "tensor_parallel": 2}, {}, "hardware.interconnect: rtx-4090"),
        ({"pipeline_parallel": 64}, {}, "hardware.pipeline_parallel: 64 exceeds the 32 layers"),
        ({"gpu": "rtx-4090", "offload": {"gpu_layers": 99}}, {}, "hardware.offload.gpu_layers"),
        ({}, {"kv_dtype": "q4_k_m"}, "engine.kv_dtype"),
    ],
)
def test_bad_parallel_settings_name_the_field(hardware, engine, message):
    from simulator.api import scenario_from_dict
    from simulator.errors import UserError

    with pytest.raises(UserError) as info:
        run(scenario_from_dict(_quick(hardware, **engine)))
    assert any(message in line for line in info.value.messages), info.value.messages


def test_scenario_pipeline_and_offload_settings_reach_the_cost_model():
    from simulator.api import scenario_from_dict

    pp = scenario_from_dict(
        _quick({"tensor_parallel": 2, "pipeline_parallel": 2, "pipeline_microbatches": 4})
    )
    cm = build_cost_model(pp)
    assert (cm.tensor_parallel, cm.pipeline_parallel, cm.microbatches) == (2, 2, 4)
    assert run(pp).summary["requests_completed"] == 5
    off = scenario_from_dict(
        _quick(
            {"gpu": "rtx-4090", "offload": {"gpu_layers": 16, "mode": "stream"}},
            weight_dtype="bf16",
            max_num_batched_tokens=2048,
        )
    )
    plan = build_memory_plan(off)
    assert plan.fits and plan.offloaded_weight_bytes > 5e9
    streamed = build_cost_model(off).price(StepShape.uniform(decode_count=1, decode_context=10))
    assert next(op for op in streamed.ops if op.name == "offload_stream").time_s > 0
