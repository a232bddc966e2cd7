"""Shipped engine calibrations: they load, state their source and licence, match the
catalog's peaks, and price a replica; without one the profile falls back and says so."""

from __future__ import annotations

import pytest
import yaml

from simulator.api import build_cost_model, resolve_pricing, run, scenario_from_dict
from simulator.costmodel.kernels import KernelTables
from simulator.costmodel.pricing import ENGINES_DIR, shipped_versions, version_key
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu, specs_dir

ENGINES = specs_dir() / "calibration" / ENGINES_DIR
FILES = sorted(ENGINES.glob("*/*/*.yaml"))
#: (GPU, engine) pairs the tables cover, each with a shipped calibration.
COVERED_GPUS = (
    "h100-sxm",
    "h200",
    "a100-sxm-80gb",
    "b200",
    "b300",
    "gb200",
    "gb300",
    "l40s",
    "rtx-pro-6000",
)


def test_every_covered_gpu_has_a_calibration_of_every_engine():
    for engine in ("trtllm", "vllm", "sglang"):
        for gpu in COVERED_GPUS:
            assert shipped_versions(engine, gpu), (engine, gpu)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ENGINES)) for p in FILES])
def test_a_shipped_calibration_loads_and_states_its_source(path):
    # measured fused-MoE curves of every expert shape and layout take about 280 kB, the
    # GEMM grids of five formats about 125 kB
    assert path.stat().st_size < 500_000
    data = yaml.safe_load(path.read_text())
    kernels = KernelTables.from_dict(data, str(path))
    engine, gpu, version = path.parts[-3], path.parts[-2], path.stem
    assert (kernels.engine, kernels.gpu, kernels.version) == (engine, gpu, version)
    meta = data["metadata"]
    assert meta["source"]["package"] == "aiconfigurator-core"
    assert "Apache License, Version 2.0" in meta["notice"]
    assert "held out" in meta["split"]
    catalog = load_gpu(gpu)
    for dtype, peak in meta["peak_flops"].items():
        assert peak == catalog.peak_flops[dtype]
    assert meta["memory_bw_bytes_per_s"] == catalog.memory_bw_bytes_per_s
    assert kernels.gemm_grid("bf16") is not None


def test_versions_sort_as_releases():
    assert sorted(["1.3.0", "1.3.0rc20", "1.3.0rc3", "1.2.1"], key=version_key) == [
        "1.2.1",
        "1.3.0rc3",
        "1.3.0rc20",
        "1.3.0",
    ]
    assert version_key("0.5.6.post2") > version_key("0.5.6")


def _scenario(gpu: str = "h100-sxm", **engine) -> dict:
    return {
        "model": "llama-3.1-8b",
        "hardware": {"gpu": gpu},
        "engine": {"profile": "trtllm", **engine},
        "workload": {
            "arrival": {"process": "poisson", "rate_per_s": 2.0},
            "prompt_tokens": {"distribution": "fixed", "value": 256},
            "output_tokens": {"distribution": "fixed", "value": 32},
            "num_requests": 20,
        },
    }


def test_the_newest_engine_calibration_prices_by_default_and_a_version_picks_older():
    newest = resolve_pricing(scenario_from_dict(_scenario()))
    assert (
        newest.kernels is not None
        and newest.engine_version == shipped_versions("trtllm", "h100-sxm")[-1]
    )
    sglang = shipped_versions("sglang", "h100-sxm")
    assert len(sglang) >= 2
    old = resolve_pricing(scenario_from_dict(_scenario(profile="sglang", version=sglang[0])))
    assert old.engine_version == sglang[0] and old.kernels.version == sglang[0]
    with pytest.raises(UserError, match=r"engine\.version: '0\.1' of trtllm has no calibration"):
        resolve_pricing(scenario_from_dict(_scenario(version="0.1")))


def test_a_gpu_without_an_engine_calibration_falls_back_and_says_so():
    pricing = resolve_pricing(scenario_from_dict(_scenario(gpu="l4")))
    assert pricing.kernels is None
    assert "no trtllm kernel calibration for l4" in pricing.kernel_source
    summary = run(scenario_from_dict(_scenario(gpu="l4"))).summary
    assert summary["pricing"]["engine"] == "trtllm"
    assert summary["pricing"]["engine_version"] is None
    assert "no trtllm kernel calibration" in summary["pricing"]["kernels"]


def test_the_summary_names_the_engine_and_version_it_priced():
    summary = run(scenario_from_dict(_scenario())).summary
    assert summary["pricing"]["engine"] == "trtllm"
    assert summary["pricing"]["engine_version"] == shipped_versions("trtllm", "h100-sxm")[-1]
    assert "calibration/engines/trtllm/h100-sxm/" in summary["pricing"]["kernels"]


def test_engine_kernels_price_gemms_and_attention():
    """The trtllm replica prices its GEMMs and attention from the measured tables: without
    them (same runtime parameters) the prefill step costs something else; with
    ``hardware.calibration: none`` no measured kernels are used at all."""
    import dataclasses

    from simulator.costmodel import CostModel

    shape = StepShape.uniform(prefill_count=2, prefill_new=2048)
    measured = build_cost_model(scenario_from_dict(_scenario()))
    assert measured.config.kernels is not None
    unmeasured = CostModel(dataclasses.replace(measured.config, kernels=None))
    assert measured.step_time_s(shape) != pytest.approx(unmeasured.step_time_s(shape), rel=0.01)
    plain = _scenario()
    plain["hardware"]["calibration"] = "none"
    assert build_cost_model(scenario_from_dict(plain)).config.kernels is None


def test_static_fp8_scales_price_each_gemm_from_the_grid_of_its_input():
    """TensorRT-LLM runs ModelOpt FP8 checkpoints with static activation scales: the GEMMs
    after a norm cast their input (``fp8_static``), o_proj and down_proj get FP8 from
    attention and SiLU x up (``fp8_input``); ``fp8_activation_scales: dynamic`` prices the
    measured ``fp8`` rows, scale computation and cast included."""
    shape = StepShape.uniform(decode_count=64, decode_context=2048)
    models = {
        scales: build_cost_model(
            scenario_from_dict(_scenario(weight_dtype="fp8", fp8_activation_scales=scales))
        )
        for scales in (None, "static", "dynamic")
    }
    kernels = models[None].config.kernels
    plan = models[None].plan
    gpu = load_gpu("h100-sxm")
    expected_grid = {"qkv_proj": "fp8_static", "gate_up_proj": "fp8_static",
                     "o_proj": "fp8_input", "down_proj": "fp8_input"}  # fmt: skip
    for scales, model in models.items():
        ops = {op.name: op for op in model.price(shape).ops}
        for gemm in plan.gemms:
            grid = kernels.gemm_grid("fp8" if scales == "dynamic" else expected_grid[gemm.name])
            flops = gemm.flops_per_token * 64
            seconds = flops / (gpu.peak_flops["fp8"] * grid(64, gemm.n, gemm.k))
            assert ops[gemm.name].time_s == pytest.approx(gemm.layers * seconds, rel=1e-9)
    assert models["static"].step_time_s(shape) == models[None].step_time_s(shape)
    assert models["static"].step_time_s(shape) < models["dynamic"].step_time_s(shape)
    vllm = build_cost_model(scenario_from_dict(_scenario(profile="vllm", weight_dtype="fp8")))
    assert not vllm.config.params.fp8_static_activation_scales


def test_narrow_weights_without_their_own_grid_are_not_read_at_bf16_size():
    """int4 and fp4 weights on an H100 compute in bf16, but the engine measured no grid
    for them: the bf16 grid would read 16-bit weights, so their GEMMs are priced from their
    own bytes and a small decode step costs less than in bf16, as the reference does."""
    shape = StepShape.uniform(decode_count=16, decode_context=1024)
    for profile in ("vllm", "trtllm"):
        step = {
            dtype: build_cost_model(
                scenario_from_dict(_scenario(profile=profile, weight_dtype=dtype))
            ).step_time_s(shape)
            for dtype in ("bf16", "int4", "fp4")
        }
        assert step["int4"] < 0.6 * step["bf16"] and step["fp4"] < 0.6 * step["bf16"]


def test_a_gpu_name_in_other_letter_case_finds_the_same_calibrations():
    upper = scenario_from_dict(_scenario(gpu="H100-SXM"))
    assert upper.hardware.gpu == "h100-sxm"
    assert (
        resolve_pricing(upper).describe()
        == resolve_pricing(scenario_from_dict(_scenario())).describe()
    )


def test_max_model_len_beyond_the_models_context_is_refused_with_the_limit():
    with pytest.raises(UserError, match=r"engine\.max_model_len: 1,000,000 tokens exceeds "
                       r"llama-3\.1-8b's context length of 131,072"):  # fmt: skip
        run(scenario_from_dict(_scenario(max_model_len=1_000_000)))
    with pytest.raises(UserError, match="max_model_len"):
        run(scenario_from_dict(_scenario(profile="vllm", max_model_len=1_000_000)))


def test_a_version_with_datasheet_pricing_names_both_settings():
    plain = _scenario(profile="vllm", version=shipped_versions("vllm", "h100-sxm")[-1])
    plain["hardware"]["calibration"] = "none"
    with pytest.raises(UserError, match=r"hardware\.calibration: none prices the datasheet"):
        resolve_pricing(scenario_from_dict(plain))
