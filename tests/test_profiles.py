"""Engine profiles: they load, validate, and change only the runtime's parameters."""

from __future__ import annotations

import pytest

from simulator.costmodel import CostModel, CostParams, StepShape
from simulator.costmodel.profiles import EngineProfile, list_profiles, load_profile
from simulator.errors import UnknownNameError, UserError
from simulator.specs.catalog import load_gpu, load_link, load_model, specs_dir

PUBLISHED_ENGINES = ("vllm", "sglang", "trtllm")
SHAPES = [
    StepShape.uniform(decode_count=1, decode_context=128),
    StepShape.uniform(decode_count=64, decode_context=2048),
    StepShape.uniform(prefill_count=1, prefill_new=2048),
    StepShape.uniform(prefill_count=1, prefill_new=512, decode_count=32, decode_context=1024),
]
GPU_FIELDS = ("gemm_pad_tokens", "attention_decode_bw_efficiency", "allreduce_bw_efficiency")


@pytest.fixture(scope="module")
def calibrated() -> CostParams:
    return CostParams.from_file(specs_dir() / "calibration" / "h100-sxm.yaml")


def _model(params: CostParams, tp: int = 1) -> CostModel:
    link = load_link("nvlink4") if tp > 1 else None
    return CostModel(
        load_model("llama-3.1-8b"), load_gpu("h100-sxm"), params=params, tensor_parallel=tp,
        link=link,
    )  # fmt: skip


def test_the_six_profiles_exist_and_name_their_sources():
    assert list_profiles() == ["hf-transformers", "ideal", "llama.cpp", "sglang", "trtllm", "vllm"]
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.name == name and profile.sources and profile.description


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: hf-transformers, ideal"):
        load_profile("vllm2")
    with pytest.raises(UserError, match="did you mean 'vllm'"):
        load_profile("vlm")


def test_invalid_profile_values_are_user_errors():
    with pytest.raises(UserError, match="gemm_efficiency_scale"):
        EngineProfile("x", "x", gemm_efficiency_scale=0.0, sources=("s",))
    with pytest.raises(UserError, match="unknown limit"):
        EngineProfile("x", "x", limits={"max_seqs": 3}, sources=("s",))
    with pytest.raises(UserError, match="no sources"):
        EngineProfile("x", "x")


@pytest.mark.parametrize("name", ["vllm", "sglang", "trtllm", "llama.cpp", "hf-transformers"])
def test_apply_keeps_the_gpu_fits(name, calibrated):
    profile = load_profile(name)
    params = profile.apply(calibrated)
    assert isinstance(params, CostParams)
    assert params.cuda_graphs is profile.cuda_graphs
    for field in GPU_FIELDS:
        assert getattr(params, field) == getattr(calibrated, field)
    assert params.gemm_efficiency == pytest.approx(
        calibrated.gemm_efficiency * profile.gemm_efficiency_scale
    )


def test_fused_engines_drop_the_reference_code_traffic(calibrated):
    assert calibrated.elementwise_traffic_factor > 1.5
    vllm = load_profile("vllm").apply(calibrated)
    assert vllm.elementwise_traffic_factor == 1.0
    assert vllm.step_overhead_s < calibrated.step_overhead_s
    assert vllm.allreduce_latency_s < calibrated.allreduce_latency_s


def test_ideal_is_a_lower_bound_for_every_profile(calibrated):
    ideal = _model(load_profile("ideal").apply(calibrated))
    for name in list_profiles():
        other = _model(load_profile(name).apply(calibrated))
        for shape in SHAPES:
            assert ideal.step_time_s(shape) <= other.step_time_s(shape) * (1 + 1e-12)


def test_ideal_decode_is_weights_over_datasheet_bandwidth(calibrated):
    model = _model(load_profile("ideal").apply(calibrated))
    gpu = load_gpu("h100-sxm")
    floor = model.weight_bytes_per_gpu() / gpu.memory_bw_bytes_per_s
    step = model.step_time_s(StepShape.uniform(decode_count=1, decode_context=128))
    assert floor <= step < 1.05 * floor


def test_eager_transformers_is_slowest_at_small_decode(calibrated):
    shape = SHAPES[0]
    eager = _model(load_profile("hf-transformers").apply(calibrated)).step_time_s(shape)
    for name in ("vllm", "sglang", "trtllm"):
        assert _model(load_profile(name).apply(calibrated)).step_time_s(shape) < eager / 2


def test_profiles_apply_to_defaults_and_tensor_parallel_models():
    for name in list_profiles():
        params = load_profile(name).apply(CostParams.defaults())
        assert _model(params, tp=2).step_time_s(SHAPES[1]) > 0


def test_limits_are_engine_fields():
    assert load_profile("vllm").limits["max_num_seqs"] == 256
    assert load_profile("sglang").limits["kv_block_size"] == 1
    assert load_profile("llama.cpp").limits["max_num_seqs"] == 1


def test_serving_engines_differ_in_kernel_quality(calibrated):
    """vLLM 0.7 (fitted on one published row) is the slowest of the three serving engines on
    a prefill-heavy step; TensorRT-LLM's fitted factor stays within the calibrated GPU's
    reach, and SGLang keeps the calibrated kernels (fitted on nothing)."""
    eff = {n: load_profile(n).apply(calibrated).gemm_efficiency_8bit for n in PUBLISHED_ENGINES}
    assert len(set(eff.values())) == 3
    assert eff["sglang"] == pytest.approx(calibrated.gemm_efficiency_8bit)
    assert eff["vllm"] < eff["trtllm"] <= 0.72  # 0.72: best measured H100 FP8 matmul (C1)
    shape = StepShape.uniform(prefill_count=8, prefill_new=1024)
    times = {n: _model(load_profile(n).apply(calibrated)).step_time_s(shape) for n in eff}
    assert max(times, key=times.get) == "vllm"


def test_fitted_profile_fields_name_their_fit_rows():
    """A profile number fitted on published rows says so in its sources, naming the row."""
    vllm_sources = " ".join(load_profile("vllm").sources)
    assert "FITTED" in vllm_sources and "vLLM 0.7.3, Llama-2-70B FP8, Offline" in vllm_sources
    trtllm_sources = " ".join(load_profile("trtllm").sources)
    assert "FITTED" in trtllm_sources and "v4.0 2x H100 TP2x1, Offline" in trtllm_sources
    assert "FITTED" not in " ".join(load_profile("sglang").sources)
