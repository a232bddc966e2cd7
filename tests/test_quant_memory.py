"""Quantised weight formats and memory plans against published sizes."""

from __future__ import annotations

import pytest

from simulator.costmodel import CostConfig, CostModel, Precision, memory_plan
from simulator.costmodel.quant import resolve_weight_formats, weight_bytes
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu, load_model
from simulator.specs.dtypes import canonical_dtype, dtype_bytes

GB = 1e9


def total_gb(model: str, dtype: str, **overrides) -> float:
    return weight_bytes(load_model(model), resolve_weight_formats(dtype, **overrides)).total / GB


def test_llama_70b_weights_per_dtype():
    # 70.6B parameters (reference sheet G1) at 2 bytes.
    assert total_gb("llama-3.1-70b", "bf16") == pytest.approx(141.1, rel=0.005)
    # llama.cpp tools/quantize/README.md: Llama 3.1 Q4_K_M 8B 4.9 GB, 70B 43.1 GB, 405B 249.1 GB.
    assert total_gb("llama-3.1-8b", "q4_k_m") == pytest.approx(4.9, rel=0.02)
    assert total_gb("llama-3.1-70b", "q4_k_m") == pytest.approx(43.1, rel=0.02)
    assert total_gb("llama-3.1-405b", "q4_k_m") == pytest.approx(249.1, rel=0.02)
    # FP8 checkpoints (ModelOpt, vLLM): everything but the LM head and embeddings in fp8:
    # 68.5B x 1 B + 2.1B x 2 B.
    assert total_gb("llama-3.1-70b", "fp8") == pytest.approx(72.7, rel=0.01)
    # Meta's row-wise FP8 keeps attention in bf16 (Llama 3 paper §6.2): more bytes.
    assert total_gb("llama-3.1-70b", "fp8", attention_dtype="bf16") > total_gb(
        "llama-3.1-70b", "fp8"
    )


def test_a_model_runs_in_its_native_checkpoint_format():
    from simulator.costmodel.quant import checkpoint_dtype

    r1, oss, llama = (load_model(n) for n in ("deepseek-r1", "gpt-oss-120b", "llama-3.1-8b"))
    assert checkpoint_dtype(r1, "bf16", explicit=False) == "fp8_block"
    assert checkpoint_dtype(r1, "fp8") == "fp8_block"  # its FP8 checkpoint is block-scaled
    assert checkpoint_dtype(r1, "bf16") == "bf16"  # an explicit other format wins
    assert checkpoint_dtype(oss, "bf16", explicit=False) == "mxfp4"
    assert checkpoint_dtype(llama, "bf16", explicit=False) == "bf16"
    block = resolve_weight_formats("fp8_block")
    assert (block.attention, block.lm_head) == ("fp8_block", "bf16")
    mx = resolve_weight_formats("mxfp4")
    assert (mx.mlp, mx.attention, mx.lm_head) == ("mxfp4", "bf16", "bf16")


def test_deepseek_v3_weights_per_dtype():
    # 671B parameters (DeepSeek-V3 report): 1342 GB in bf16, ~671 GB in fp8.
    assert total_gb("deepseek-v3", "bf16") == pytest.approx(1342, rel=0.005)
    fp8 = total_gb("deepseek-v3", "fp8", attention_dtype="fp8")
    assert fp8 == pytest.approx(671 + 0.93, rel=0.01)  # LM head + embedding stay bf16


def test_kv_bytes_per_token_with_and_without_mla():
    # Reference sheet G1/G2: Llama-3.1-70B 327,680 B; DeepSeek-V3 MLA 70,272 B (35,136 fp8).
    plan = memory_plan(load_model("llama-3.1-70b"), load_gpu("h100-sxm"), tensor_parallel=4)
    assert plan.kv_bytes_per_token == 327_680
    assert plan.kv_bytes_per_token_per_gpu == 327_680 / 4
    ds = load_model("deepseek-v3")
    gpu = load_gpu("h200")
    plan = memory_plan(ds, gpu, tensor_parallel=8, weight_dtype="fp8")
    assert plan.kv_bytes_per_token == 70_272
    assert plan.kv_bytes_per_token_per_gpu == 70_272  # latent cache replicated on TP ranks
    fp8 = memory_plan(ds, gpu, tensor_parallel=8, weight_dtype="fp8", kv_dtype="fp8")
    assert fp8.kv_bytes_per_token == 35_136
    # Without MLA the same model would cache 128 heads x (192 + 128) per layer: 68x more.
    full = 2 * 61 * 128 * (128 + 64 + 128) / 2 * 2
    assert full / plan.kv_bytes_per_token > 30


def test_sharding_over_tp_pp_ep():
    m, gpu = load_model("llama-3.1-70b"), load_gpu("h100-sxm")
    tp4 = memory_plan(m, gpu, tensor_parallel=4)
    tp2pp2 = memory_plan(m, gpu, tensor_parallel=2, pipeline_parallel=2)
    assert tp4.weight_bytes_per_gpu == pytest.approx(141.1e9 / 4, rel=0.01)
    assert tp2pp2.weight_bytes_per_gpu == pytest.approx(tp4.weight_bytes_per_gpu, rel=0.02)
    # PP splits the KV cache by layers: half the bytes per token on each GPU.
    pp2 = memory_plan(m, gpu, tensor_parallel=4, pipeline_parallel=2)
    assert pp2.kv_bytes_per_token_per_gpu == tp4.kv_bytes_per_token_per_gpu / 2
    ds = load_model("deepseek-v3")
    ep = memory_plan(ds, gpu, tensor_parallel=2, expert_parallel=8, weight_dtype="fp8")
    tp16 = memory_plan(ds, gpu, tensor_parallel=16 // 2, pipeline_parallel=2, weight_dtype="fp8")
    assert ep.fits and ep.gpus == 16
    # Attention is copied in every expert group; routed experts are split over all 16 GPUs.
    assert ep.weight_bytes_per_gpu > tp16.weight_bytes_per_gpu * 0.9
    assert ep.max_kv_tokens > 8 * (ep.kv_capacity_bytes_per_gpu // 70_272) - 8


def test_int4_group_size_adds_scale_bytes():
    assert dtype_bytes("int4") == pytest.approx(0.5 + 2.5 / 128)
    assert dtype_bytes("int4-g32") > dtype_bytes("int4-g64") > dtype_bytes("int4") > 0.5
    assert canonical_dtype("AWQ") == canonical_dtype("gptq") == "int4"
    assert dtype_bytes("q8_0") * 8 == pytest.approx(8.5)
    assert dtype_bytes("q4_k_m") * 8 == pytest.approx(4.85)
    assert dtype_bytes("mxfp4") * 8 == pytest.approx(4.25)


def test_kv_cache_rejects_weight_only_formats():
    with pytest.raises(UserError, match="kv_dtype"):
        memory_plan(load_model("llama-3.1-8b"), load_gpu("h100-sxm"), kv_dtype="q4_k_m")
    with pytest.raises(UserError, match="kv_dtype"):
        CostModel(
            CostConfig(
                load_model("llama-3.1-8b"),
                load_gpu("h100-sxm"),
                precision=Precision(kv_cache="int4"),
            )
        )


def _rate(cost_model, name):
    """(seconds per FLOP at full efficiency, dequantisation factor) of the op ``name``."""
    op = next(op for op in cost_model.plan.gemms if op.name == name)
    rate = cost_model.gemms.rate(op)
    return rate.s_per_flop, rate.dequant


def test_compute_runs_at_the_matching_rate_or_pays_dequantisation():
    m = load_model("llama-3.1-8b")
    b200 = CostModel(CostConfig(m, load_gpu("b200"), precision=Precision(weights="fp4")))
    assert b200.gemm_dtype == "fp4"
    assert _rate(b200, "down_proj")[1] == 1.0
    h100 = CostModel(CostConfig(m, load_gpu("h100-sxm"), precision=Precision(weights="fp4")))
    assert h100.gemm_dtype == "bf16"  # no fp4 tensor cores on Hopper: W4A16
    assert _rate(h100, "down_proj")[1] == pytest.approx(1 + h100.params.dequant_overhead)
    a100 = CostModel(CostConfig(m, load_gpu("a100-sxm-80gb"), precision=Precision(weights="fp8")))
    assert a100.gemm_dtype == "bf16" and _rate(a100, "down_proj")[1] > 1.0
    h100_fp8 = CostModel(CostConfig(m, load_gpu("h100-sxm"), precision=Precision(weights="fp8")))
    assert h100_fp8.gemm_dtype == "fp8" and _rate(h100_fp8, "down_proj")[1] == 1.0
    # Attention projections of an FP8 checkpoint run in fp8 too.
    assert _rate(h100_fp8, "qkv_proj")[0] == _rate(h100_fp8, "down_proj")[0]


def test_quantised_decode_reads_fewer_bytes_and_runs_faster():
    from simulator.costmodel import StepShape

    m, gpu = load_model("llama-3.1-8b"), load_gpu("rtx-4090")
    shape = StepShape.uniform(decode_count=1, decode_context=512)
    times = {
        d: CostModel(CostConfig(m, gpu, precision=Precision(weights=d))).step_time_s(shape)
        for d in ("bf16", "q8_0", "q4_k_m")
    }
    assert times["q4_k_m"] < times["q8_0"] < times["bf16"]
