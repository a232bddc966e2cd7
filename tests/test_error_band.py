"""Which validated error band an answer carries: the GPU, the engine and the model's kind."""

from __future__ import annotations

from pathlib import Path

import yaml

from simulator.api import error_band_for
from simulator.metrics.error_band import error_band
from tests.conftest import make_scenario

BANDS = {
    "source": "test bands",
    "step_time": {"rows": 10, "median_pct": 4.0, "worst_pct": 18.0},
    "moe_step_time": {"rows": 8, "median_pct": 3.5, "worst_pct": 12.0, "metric": "MoE step time"},
    "moe_step_time_dense_experts": {
        "rows": 8,
        "median_pct": 17.0,
        "worst_pct": 45.0,
        "metric": "MoE step time, dense experts",
    },
    "bands": [
        {"gpu": "g", "engine": "trtllm", "models": "dense", "rows": 30, "median_pct": 4.0,
         "worst_pct": 8.0, "worst_is": "p90", "metric": "output tok/s"},
        {"gpu": "g", "engine": "trtllm", "models": "moe", "rows": 20, "median_pct": 15.0,
         "worst_pct": 38.0, "worst_is": "p90", "metric": "output tok/s"},
    ],
}  # fmt: skip


def _specs(tmp_path: Path) -> Path:
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "error_band.yaml").write_text(yaml.safe_dump(BANDS))
    (tmp_path / "g.yaml").write_text("metadata: {}\n")
    return tmp_path


def test_engine_answers_carry_the_serving_band_of_their_model_kind(tmp_path):
    specs = _specs(tmp_path)
    kernels = tmp_path / "engines" / "trtllm" / "g" / "1.0.yaml"
    dense = error_band(specs, "g", "trtllm", None, kernels, "fp8", moe=False)
    moe = error_band(specs, "g", "trtllm", None, kernels, "fp8", moe=True)
    assert (dense["median_pct"], dense["worst_is"]) == (4.0, "p90")
    assert moe["median_pct"] == 15.0 and "MoE models" in moe["applies_to"]
    # a GPU without serving rows for the engine falls back to the kernel tables (none here)
    assert error_band(specs, "other", "trtllm", None, kernels, "fp8", moe=True) is None


def test_moe_on_a_reference_calibration_carries_the_moe_step_band(tmp_path):
    specs = _specs(tmp_path)
    calibration = str(tmp_path / "g.yaml")
    assert error_band(specs, "g", None, calibration, moe=False)["median_pct"] == 4.0
    without_curve = error_band(specs, "g", None, calibration, moe=True)
    assert without_curve["median_pct"] == 17.0
    assert "no grouped expert GEMM curve" in without_curve["applies_to"]
    # with the curve the MoE steps are judged within the (wider) step-time band
    (tmp_path / "g-moe.yaml").write_text("metadata: {}\n")
    with_curve = error_band(specs, "g", None, calibration, moe=True)
    assert (with_curve["median_pct"], with_curve["metric"]) == (4.0, "step time")


def test_shipped_bands_for_a_trtllm_moe_answer_are_wider_than_for_dense():
    dense = error_band_for(make_scenario(model="llama-3.1-8b", engine={"profile": "trtllm"}))
    moe = error_band_for(make_scenario(model="qwen3-30b-a3b", engine={"profile": "trtllm"}))
    assert "output tok/s" in dense["metric"] and "output tok/s" in moe["metric"]
    assert moe["median_pct"] > dense["median_pct"]
