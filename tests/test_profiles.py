"""Engine profiles: they load, validate, and change only the runtime's parameters."""

from __future__ import annotations

import pytest

from simulator.costmodel import CostConfig, CostModel, CostParams, Parallelism, StepShape
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
#: Kernel-speed fields: a profile leaves every one of them as the calibration has it.
KERNEL_FIELDS = (
    "gemm_efficiency",
    "gemm_efficiency_8bit",
    "gemm_pad_tokens",
    "memory_bw_efficiency",
    "kernel_latency_s",
    "attention_prefill_efficiency",
    "attention_decode_bw_efficiency",
    "allreduce_latency_s",
    "allreduce_bw_efficiency",
)


@pytest.fixture(scope="module")
def calibrated() -> CostParams:
    return CostParams.from_file(specs_dir() / "calibration" / "h100-sxm.yaml")


def _model(params: CostParams, tp: int = 1) -> CostModel:
    link = load_link("nvlink4") if tp > 1 else None
    return CostModel(
        CostConfig(
            load_model("llama-3.1-8b"),
            load_gpu("h100-sxm"),
            params=params,
            parallel=Parallelism(tensor=tp, link=link),
        )
    )


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
    with pytest.raises(UserError, match="memory_accounting 'all'; known: gpu_fraction"):
        EngineProfile("x", "x", memory_accounting="all", sources=("s",))
    with pytest.raises(UserError, match="memory_fraction"):
        EngineProfile("x", "x", memory_fraction=1.5, sources=("s",))
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
    for field in KERNEL_FIELDS:
        assert getattr(params, field) == getattr(calibrated, field), field


def test_fused_engines_drop_the_reference_code_traffic(calibrated):
    assert calibrated.elementwise_traffic_factor > 1.5
    vllm = load_profile("vllm").apply(calibrated)
    assert vllm.elementwise_traffic_factor == 1.0
    assert vllm.step_overhead_s < calibrated.step_overhead_s


def test_fused_ops_launch_no_kernel_of_their_own(calibrated):
    """The residual add runs inside RMSNorm in every serving engine, rotary and the KV-cache
    write inside TensorRT-LLM's attention kernel: those ops keep their traffic but lose
    their launch latency, and the reference code launches each."""
    assert (calibrated.residual_add_kernels, calibrated.rope_kv_write_kernels) == (1.0, 1.0)
    vllm, trtllm = (load_profile(name).apply(calibrated) for name in ("vllm", "trtllm"))
    assert (vllm.residual_add_kernels, vllm.rope_kv_write_kernels) == (0.0, 1.0)
    assert (trtllm.residual_add_kernels, trtllm.rope_kv_write_kernels) == (0.0, 0.0)
    shape = StepShape.uniform(decode_count=64, decode_context=2048)
    unfused = trtllm.replace(rope_kv_write_kernels=1.0, residual_add_kernels=1.0)
    ops = {op.name: op for op in _model(trtllm).price(shape).ops}
    launched = {op.name: op for op in _model(unfused).price(shape).ops}
    layers = load_model("llama-3.1-8b").num_layers
    latency = trtllm.kernel_latency_s
    kernels = {"residual_adds": 2 * layers, "rotary": layers, "kv_cache_write": layers}
    for name, count in kernels.items():
        assert ops[name].bytes == launched[name].bytes
        assert launched[name].time_s - ops[name].time_s == pytest.approx(count * latency)
    assert ops["norms"].time_s == launched["norms"].time_s


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


def test_serving_engines_take_kernel_speed_from_their_own_measurements():
    """Kernel speed is measured per engine: the three serving profiles name the engine whose
    kernel calibrations price them, the others price the PyTorch-reference calibration."""
    assert {n: load_profile(n).kernel_engine for n in PUBLISHED_ENGINES} == {
        n: n for n in PUBLISHED_ENGINES
    }
    for name in ("llama.cpp", "hf-transformers", "ideal"):
        assert load_profile(name).kernel_engine is None


def test_no_profile_number_is_fitted_on_published_serving_rows():
    for name in list_profiles():
        assert "fitted on the published" not in " ".join(load_profile(name).sources).lower()


def test_memory_accounting_of_each_engine():
    vllm, trtllm, sglang = (load_profile(n) for n in ("vllm", "trtllm", "sglang"))
    assert (vllm.memory_knob, vllm.default_memory_fraction(4)) == ("gpu_memory_utilization", 0.9)
    assert trtllm.memory_knob == "kv_cache_free_gpu_mem_fraction"
    assert trtllm.default_memory_fraction(8) == 0.9
    assert sglang.memory_knob == "mem_fraction_static"
    assert [sglang.default_memory_fraction(tp) for tp in (1, 2, 3, 8, 32)] == [
        0.88,
        0.87,
        0.87,
        0.81,
        0.79,
    ]
    assert vllm.requires_max_model_len_fit and not trtllm.requires_max_model_len_fit
