"""The shipped grouped expert GEMM curve: the fit of its rows, applied by default, judged on
MoE steps it was not fitted on (``benchmarks/validation_moe.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from simulator.calibrate.moe_fit import curve_document, fit_curve
from simulator.costmodel import CostConfig, CostModel, Precision, StepShape
from simulator.costmodel.calibration import load_rows
from simulator.costmodel.moe import SECTION, curve_for_calibration, load_curve
from simulator.specs.catalog import load_gpu, load_model

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "hardware_specs" / "calibration"
MEASURED = "hardware_specs/calibration/measurements/h100-sxm-moe.jsonl"


def _validation_moe():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        path = ROOT / "benchmarks" / "validation_moe.py"
        spec = importlib.util.spec_from_file_location("servesim_validation_moe", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("servesim_validation_moe", module)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_shipped_curve_is_the_fit_of_the_shipped_rows():
    rows = load_rows(ROOT / MEASURED)
    gpu = load_gpu("h100-sxm")
    shipped = yaml.safe_load((CALIBRATION / "h100-sxm-moe.yaml").read_text())
    refit = curve_document(rows, [MEASURED], gpu)
    assert shipped[SECTION]["source"] == refit[SECTION]["source"]
    assert shipped[SECTION]["latency_s"] == pytest.approx(refit[SECTION]["latency_s"])
    for key, value in refit[SECTION]["routing"].items():
        assert shipped[SECTION]["routing"][key] == pytest.approx(value, rel=1e-4)
    assert (
        shipped[SECTION]["bf16"]["tokens_per_expert"] == refit[SECTION]["bf16"]["tokens_per_expert"]
    )
    assert shipped[SECTION]["bf16"]["efficiency"] == pytest.approx(
        refit[SECTION]["bf16"]["efficiency"], rel=1e-4
    )
    # Fitted on kernel rows only: the step rows do not move it.
    kernels_only = [r for r in rows if not r["kind"].startswith(("moe_decode", "moe_prefill"))]
    assert fit_curve(kernels_only, gpu, "x").curves == fit_curve(rows, gpu, "x").curves


def test_grouped_gemms_are_memory_bound_at_few_tokens_and_saturate():
    curve = load_curve(CALIBRATION / "h100-sxm-moe.yaml")
    eff = curve.curves["bf16"]
    # Doubling tokens per expert doubles the rate while weights dominate the traffic ...
    assert eff.at(2) / eff.at(1) == pytest.approx(2.0, rel=0.1)
    # ... and large groups reach a dense-GEMM-like fraction of peak.
    assert 0.5 < eff.at(4096) < 0.8
    assert 0 < curve.latency_s < 50e-6


def test_reference_curve_applies_by_default_and_only_to_expert_gemms():
    curve = curve_for_calibration(CALIBRATION / "h100-sxm.yaml")
    assert curve is not None
    gpu, shape = load_gpu("h100-sxm"), StepShape.uniform(decode_count=8, decode_context=512)
    moe = load_model("qwen3-30b-a3b")
    with_curve = CostModel(CostConfig(moe, gpu, moe_grouped_gemm=curve)).price(shape)
    without = CostModel(CostConfig(moe, gpu)).price(shape)
    times = {op.name: op.time_s for op in with_curve.ops}
    for op in without.ops:
        if op.name.startswith("experts_"):
            assert times[op.name] > op.time_s
        else:
            assert times[op.name] == op.time_s
    dense = load_model("llama-3.1-8b")
    assert CostModel(CostConfig(dense, gpu, moe_grouped_gemm=curve)).step_time_s(
        shape
    ) == CostModel(CostConfig(dense, gpu)).step_time_s(shape)
    # fp8 experts have no curve: priced as dense GEMMs.
    fp8 = CostModel(
        CostConfig(moe, gpu, moe_grouped_gemm=curve, precision=Precision(weights="fp8"))
    )
    assert fp8.step_time_s(shape) == CostModel(
        CostConfig(moe, gpu, precision=Precision(weights="fp8"))
    ).step_time_s(shape)


def test_scenarios_use_the_curve_without_an_engine_calibration():
    """The reference curve prices experts unless the engine's own kernels do (an engine
    profile on a GPU its calibration covers) or the calibration is turned off."""
    from simulator.api import build_cost_model, scenario_from_dict

    base = {
        "model": "mixtral-8x7b",
        "hardware": {"gpu": "h100-sxm", "tensor_parallel": 2},
        "workload": {
            "arrival": {"process": "poisson", "rate_per_s": 1},
            "prompt_tokens": {"distribution": "fixed", "value": 128},
            "output_tokens": {"distribution": "fixed", "value": 16},
            "num_requests": 5,
        },
    }
    assert build_cost_model(scenario_from_dict(base)).config.moe_grouped_gemm is not None
    profiled = build_cost_model(scenario_from_dict({**base, "engine": {"profile": "vllm"}}))
    assert profiled.config.moe_grouped_gemm is None and profiled.config.kernels is not None
    off = {**base, "hardware": {**base["hardware"], "calibration": "none"}}
    assert build_cost_model(scenario_from_dict(off)).config.moe_grouped_gemm is None


def test_moe_steps_meet_their_targets_held_out():
    module = _validation_moe()
    rows = module.moe_section()
    medians = module.acceptance(rows)
    judged = [key for key in module.TARGETS_PCT if key[0] in module.MOE_FILES]
    assert ("h100-sxm", "qwen3-30b-a3b") in judged
    for (gpu, model), target in module.TARGETS_PCT.items():
        if (gpu, model) not in judged:
            continue
        assert medians[(module.SECTION, gpu, model)] <= target
        # The curve improves on dense-GEMM pricing of the experts.
        assert medians[(module.SECTION, gpu, model)] < medians[(module.SECTION_DENSE, gpu, model)]
    steps = [r for r in rows if r.metric == "MoE step time"]
    assert steps and all(r.status == "held out" for r in steps)
