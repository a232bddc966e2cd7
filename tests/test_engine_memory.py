"""Each engine sizes its KV cache its own way; what it runs is simulated, what it cannot
run is refused with the numbers and the knob to turn."""

from __future__ import annotations

import pytest

from simulator.api import build_memory_plan, scenario_from_dict
from simulator.errors import UserError


def _scenario(model: str, tp: int, **engine) -> dict:
    return {
        "model": model,
        "hardware": {"gpu": "h100-sxm", "tensor_parallel": tp},
        "engine": engine,
        "workload": {
            "arrival": {"process": "offline"},
            "prompt_tokens": {"distribution": "fixed", "value": 1000},
            "output_tokens": {"distribution": "fixed", "value": 100},
            "num_requests": 10,
        },
    }


def test_tensorrt_llm_runs_70b_fp16_on_two_h100_with_little_kv_room():
    """TensorRT-LLM gives the KV cache 90 % of what the weights and activations leave;
    vLLM's 90 % of the whole GPU does not even hold the weights."""
    trt = build_memory_plan(scenario_from_dict(_scenario("llama-3.1-70b", 2, profile="trtllm")))
    assert trt.fits and trt.accounting == "free_fraction"
    free = trt.gpu_memory_bytes - trt.weight_bytes_per_gpu - trt.workspace_bytes
    assert trt.kv_capacity_bytes_per_gpu == pytest.approx(0.9 * free)
    vllm = build_memory_plan(scenario_from_dict(_scenario("llama-3.1-70b", 2, profile="vllm")))
    assert not vllm.fits
    assert "engine.gpu_memory_utilization" in vllm.explain()


def test_sglang_static_fraction_holds_weights_and_kv():
    plan = build_memory_plan(scenario_from_dict(_scenario("llama-3.1-8b", 2, profile="sglang")))
    assert plan.knob == "mem_fraction_static" and plan.gpu_memory_utilization == 0.87
    assert plan.kv_capacity_bytes_per_gpu == pytest.approx(
        0.87 * plan.gpu_memory_bytes - plan.weight_bytes_per_gpu
    )
    explicit = _scenario("llama-3.1-8b", 2, profile="sglang", mem_fraction_static=0.5)
    assert build_memory_plan(scenario_from_dict(explicit)).gpu_memory_utilization == 0.5


def test_vllm_refuses_a_max_model_len_that_does_not_fit_and_names_the_knob():
    """Llama-3.1-8B on one L4 (24 GB) leaves KV room for about 26,000 tokens: vLLM will not
    start with the model's 131,072-token context, starts with 16,384; TensorRT-LLM starts."""
    on_l4 = _scenario("llama-3.1-8b", 1, profile="vllm")
    on_l4["hardware"]["gpu"] = "l4"
    plan = build_memory_plan(scenario_from_dict(on_l4))
    assert not plan.fits and plan.required_tokens == 131072 > plan.max_kv_tokens > 0
    text = plan.explain()
    assert "refuses to start" in text
    assert f"lower engine.max_model_len to at most {plan.max_kv_tokens}" in text
    on_l4["engine"]["max_model_len"] = 16384
    assert build_memory_plan(scenario_from_dict(on_l4)).fits
    on_l4["engine"] = {"profile": "trtllm"}
    trt = build_memory_plan(scenario_from_dict(on_l4))
    assert trt.fits and trt.required_tokens == 0


def test_a_knob_of_another_engine_is_an_error_naming_the_right_one():
    wrong = _scenario("llama-3.1-8b", 1, profile="trtllm", gpu_memory_utilization=0.8)
    with pytest.raises(UserError, match=r"engine\.kv_cache_free_gpu_mem_fraction; set that"):
        build_memory_plan(scenario_from_dict(wrong))


def test_attention_data_parallel_moe_layer_holds_every_groups_tokens():
    """Qwen3-235B-A22B on 8 H100s as 8 attention-data-parallel ranks, 2,048 tokens a rank:
    each GPU's MoE layer takes all 16,384 tokens, 8 expert pairs each, 16,404 bytes a pair
    (bf16 permuted input and gated output of 2 × 1,536, 20 index bytes), plus the gathered
    input and combined output; one rank alone (tensor parallel) holds an eighth of that."""
    from simulator.costmodel.memory import fused_moe_workspace_bytes
    from simulator.specs.catalog import load_model

    model = load_model("qwen3-235b-a22b")
    dep8 = fused_moe_workspace_bytes(model, 1, 2.0, 8 * 2048)
    assert dep8 == pytest.approx(16384 * 8 * 16404 + 16384 * 2 * 4096 * 2)
    assert fused_moe_workspace_bytes(model, 1, 2.0, 2048) == pytest.approx(dep8 / 8)
    assert fused_moe_workspace_bytes(load_model("llama-3.1-8b"), 1, 2.0, 2048) == 0.0

    def plan(ep: int, profile: str = "trtllm", per_rank: int = 2048):
        data = _scenario("qwen3-235b-a22b", 8 // ep, profile=profile, weight_dtype="fp8")
        data["hardware"]["expert_parallel"] = ep
        data["engine"]["max_num_batched_tokens"] = per_rank * ep
        return build_memory_plan(scenario_from_dict(data))

    dep, tp = plan(8), plan(1)
    assert dep.workspace_bytes > dep8 > tp.workspace_bytes
    # vLLM runs a step of more than 16,384 tokens through its fused MoE in chunks.
    whole, chunked = plan(8, "trtllm", 8192), plan(8, "vllm", 8192)
    moe_whole = fused_moe_workspace_bytes(model, 1, 2.0, 8 * 8192)
    moe_chunk = fused_moe_workspace_bytes(model, 1, 2.0, 16384)
    assert whole.workspace_bytes - chunked.workspace_bytes == pytest.approx(moe_whole - moe_chunk)


def test_a_draft_model_takes_its_weights_and_kv_cache_from_the_replicas_memory():
    from simulator.costmodel.memory import kv_bytes_per_token_per_gpu
    from simulator.specs.catalog import load_model

    alone = build_memory_plan(scenario_from_dict(_scenario("llama-3.1-8b", 1, profile="vllm")))
    spec = {"method": "draft", "draft_model": "llama-3.2-1b"}
    drafted = build_memory_plan(
        scenario_from_dict(_scenario("llama-3.1-8b", 1, profile="vllm", speculative=spec))
    )
    draft = load_model("llama-3.2-1b")
    assert drafted.weight_bytes_per_gpu - alone.weight_bytes_per_gpu == pytest.approx(
        draft.param_count() * 2, rel=0.01
    )
    per_token = kv_bytes_per_token_per_gpu(draft, 1, "bf16")
    assert drafted.kv_bytes_per_token_per_gpu == alone.kv_bytes_per_token_per_gpu + per_token
    assert drafted.max_kv_tokens < alone.max_kv_tokens
    spec["draft_model"] = "llama-3.1-70b"
    too_big = build_memory_plan(
        scenario_from_dict(_scenario("llama-3.1-8b", 1, profile="vllm", speculative=spec))
    )
    assert not too_big.fits and "draft llama-3.1-70b" in too_big.explain()
