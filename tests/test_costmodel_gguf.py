"""GGUF weights: int8 GEMMs (ggml MMQ) and the SM-cycle ceilings of ggml's kernels."""

from __future__ import annotations

import pytest

from simulator.costmodel import CostConfig, CostModel, CostParams, Precision, StepShape
from simulator.costmodel.costs import OpCost
from simulator.costmodel.profiles import load_profile
from simulator.specs.catalog import load_gpu, load_model

PREFILL = StepShape.uniform(prefill_count=1, prefill_new=512)
DECODE = StepShape.uniform(decode_count=1, decode_context=64)


def _model(gpu: str, weight_dtype: str = "q4_0", **params) -> CostModel:
    return CostModel(
        CostConfig(
            load_model("llama-3.1-8b"),
            load_gpu(gpu),
            params=CostParams.defaults().replace(**params),
            precision=Precision(weights=weight_dtype),
        )
    )


def _gemm_compute_s(cm: CostModel, shape: StepShape) -> float:
    """Time of the compute-bound GEMM ops of a step."""
    names = {op.name for op in cm.plan.gemms}
    return sum(op.time_s for op in cm.price(shape).ops if op.name in names)


def test_gguf_gemms_run_in_int8_where_the_gpu_has_an_int8_rate():
    assert _model("rtx-4090").gemm_dtype == "int8"
    assert _model("h100-sxm").gemm_dtype == "int8"
    assert _model("m2-ultra").gemm_dtype == "bf16"  # no int8 rate in the catalog: bf16
    assert _model("rtx-4090", "int4").gemm_dtype == "bf16"  # AWQ/GPTQ stay W4A16


def test_gemm_ceiling_follows_sm_cycles_and_binds_only_below_the_tensor_rate():
    gpu = load_gpu("h100-sxm")
    flop_per_cycle = 500.0
    capped = _model("h100-sxm", gguf_gemm_flop_per_sm_cycle=flop_per_cycle)
    free = _model("h100-sxm")
    assert capped.step_time_s(PREFILL) > 2 * free.step_time_s(PREFILL)
    # Every GEMM of the capped prefill runs at exactly SMs x clock x FLOP per cycle, plus
    # its fixed per-kernel latency.
    rate = gpu.sm_cycles_per_s * flop_per_cycle
    for op in capped.price(PREFILL).ops:
        if op.name in {g.name for g in capped.plan.gemms}:
            layers = next(g.layers for g in capped.plan.gemms if g.name == op.name)
            latency = layers * capped.params.kernel_latency_s
            assert op.time_s == pytest.approx(op.flops / rate + latency, rel=1e-6)
    # Halving the ceiling doubles the GEMM compute time.
    half = _model("h100-sxm", gguf_gemm_flop_per_sm_cycle=flop_per_cycle / 2)
    lat = sum(g.layers for g in capped.plan.gemms) * capped.params.kernel_latency_s
    assert _gemm_compute_s(half, PREFILL) - lat == pytest.approx(
        2 * (_gemm_compute_s(capped, PREFILL) - lat), rel=1e-6
    )
    # A ceiling far above the tensor rate changes nothing.
    loose = _model("h100-sxm", gguf_gemm_flop_per_sm_cycle=1e6)
    assert loose.step_time_s(PREFILL) == pytest.approx(free.step_time_s(PREFILL))


def test_gemv_ceiling_slows_decode_of_gpus_with_few_sms_per_bandwidth():
    # 6 bytes per SM-cycle: an H100 (132 SMs x 1.98 GHz) reads 1.57 TB/s, below its HBM;
    # an RTX 4090 (128 x 2.52 GHz) 1.94 TB/s, above its 1.0 TB/s GDDR6X.
    h100_free, h100 = _model("h100-sxm"), _model("h100-sxm", gguf_gemv_bytes_per_sm_cycle=6.0)
    rtx_free, rtx = _model("rtx-4090"), _model("rtx-4090", gguf_gemv_bytes_per_sm_cycle=6.0)
    assert h100.step_time_s(DECODE) > 1.2 * h100_free.step_time_s(DECODE)
    rate = load_gpu("h100-sxm").sm_cycles_per_s * 6.0
    gemms = {g.name: g.layers for g in h100.plan.gemms}
    for op in h100.price(DECODE).ops:
        if op.name in gemms:
            latency = gemms[op.name] * h100.params.kernel_latency_s
            assert op.time_s == pytest.approx(op.bytes / rate + latency, rel=1e-6)
    assert rtx.step_time_s(DECODE) == pytest.approx(rtx_free.step_time_s(DECODE))


@pytest.mark.parametrize(
    ("gpu", "weight_dtype"), [("h100-sxm", "bf16"), ("h100-sxm", "fp8"), ("m2-ultra", "q4_0")]
)
def test_ceilings_leave_other_formats_and_gpus_without_sm_counts_alone(gpu, weight_dtype):
    free = _model(gpu, weight_dtype)
    capped = _model(
        gpu, weight_dtype, gguf_gemm_flop_per_sm_cycle=100.0, gguf_gemv_bytes_per_sm_cycle=1.0
    )
    for shape in (PREFILL, DECODE):
        assert capped.step_time_s(shape) == pytest.approx(free.step_time_s(shape))


def test_the_llama_cpp_profile_sets_both_ceilings_and_others_none():
    params = load_profile("llama.cpp").apply(CostParams.defaults())
    assert params.gguf_gemm_flop_per_sm_cycle > 0 and params.gguf_gemv_bytes_per_sm_cycle > 0
    for name in ("vllm", "sglang", "trtllm", "hf-transformers"):
        other = load_profile(name).apply(CostParams.defaults())
        assert other.gguf_gemm_flop_per_sm_cycle == 0 and other.gguf_gemv_bytes_per_sm_cycle == 0


def test_up_to_eight_rows_run_the_vector_kernels_and_more_the_padded_matrix_ones():
    gpu = load_gpu("h100-sxm")
    cm = _model(
        "h100-sxm",
        gguf_gemv_flop_per_sm_cycle=10.0,
        gguf_gemm_flop_per_sm_cycle=100.0,
        gguf_gemm_pad_tokens=64.0,
    )
    gemms = {g.name: g.layers for g in cm.plan.gemms}
    latency = cm.params.kernel_latency_s

    def gemm_times(seqs: int) -> dict[str, OpCost]:
        shape = StepShape.uniform(decode_count=seqs, decode_context=64)
        return {op.name: op for op in cm.price(shape).ops if op.name in gemms}

    # 8 rows: ggml's MMVQ at 10 FLOP per SM-cycle (compute-bound at this low rate).
    for name, op in gemm_times(8).items():
        expected = op.flops / (gpu.sm_cycles_per_s * 10.0) + gemms[name] * latency
        assert op.time_s == pytest.approx(expected, rel=1e-6)
    # 9 rows: MMQ at 100 FLOP per SM-cycle, paid as 9 + 64 rows.
    for name, op in gemm_times(9).items():
        expected = op.flops * (9 + 64) / 9 / (gpu.sm_cycles_per_s * 100.0)
        assert op.time_s == pytest.approx(expected + gemms[name] * latency, rel=1e-6)


def test_slower_unpacking_formats_lower_all_three_ceilings():
    from simulator.costmodel.ggml import ggml_format_speed

    assert ggml_format_speed("q4_0") == 1.0 and ggml_format_speed("fp16") == 1.0
    assert ggml_format_speed("q4_k_m") == ggml_format_speed("q4_k_pure") < 1.0
    assert ggml_format_speed("q6_k") < ggml_format_speed("q8_0") < 1.0
    ceilings = {
        "gguf_gemm_flop_per_sm_cycle": 100.0,
        "gguf_gemv_bytes_per_sm_cycle": 2.0,
    }
    q4, q6 = _model("h100-sxm", "q4_0", **ceilings), _model("h100-sxm", "q6_k", **ceilings)
    speed = ggml_format_speed("q6_k")
    # prefill at the MMQ ceiling: Q6_K's GEMMs take 1/speed as long for the same FLOPs
    assert _gemm_compute_s(q6, PREFILL) - _gemm_compute_s(q4, PREFILL) == pytest.approx(
        (1 / speed - 1) * (_gemm_compute_s(q4, PREFILL) - _lat(q4)), rel=1e-6
    )


def _lat(cm: CostModel) -> float:
    return sum(g.layers for g in cm.plan.gemms) * cm.params.kernel_latency_s
