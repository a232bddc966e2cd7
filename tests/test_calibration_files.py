"""Shipped calibration files: reproducible from the stored measurements, and checked on
measurements they were not fitted on (no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.costmodel import CostConfig, CostModel, CostParams, StepShape
from simulator.costmodel.calibration import fit, load_rows, score
from simulator.specs.catalog import load_gpu, load_link, load_model, specs_dir

CALIBRATION = specs_dir() / "calibration"
MEASUREMENTS = CALIBRATION / "measurements"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "calibration"
ALLREDUCE = SHARED / "h200x2_nvlink_allreduce.jsonl"
needs_shared = pytest.mark.skipif(not ALLREDUCE.is_file(), reason="shared calibration absent")


def _models(rows):
    kinds = ("prefill", "decode", "mixed", "attn_prefill", "attn_decode")
    return {r["model"]: load_model(r["model"]) for r in rows if r["kind"] in kinds}


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_stored_measurements_describe_their_gpu(gpu):
    rows = load_rows(MEASUREMENTS / f"{gpu}.jsonl")
    env = rows[0]
    assert env["kind"] == "env" and env["torch"] and env["driver"]
    kinds = {r["kind"] for r in rows}
    assert {"gemm", "decode", "prefill", "mixed", "attn_decode", "launch"} <= kinds


@needs_shared
@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_shipped_file_is_the_fit_of_the_stored_measurements(gpu):
    rows = load_rows(MEASUREMENTS / f"{gpu}.jsonl") + load_rows(ALLREDUCE)
    first = fit(rows, models=_models(rows), gpu=load_gpu(gpu), link=load_link("nvlink4"))
    second = fit(rows, models=_models(rows), gpu=load_gpu(gpu), link=load_link("nvlink4"))
    assert first.params == second.params  # deterministic
    shipped = yaml.safe_load((CALIBRATION / f"{gpu}.yaml").read_text())
    assert set(shipped["params"]) == {*first.fitted_names, "cuda_graphs"}
    # The optimiser's last digits depend on the BLAS and SciPy build: agree to 1e-4.
    for name in first.fitted_names:
        assert shipped["params"][name] == pytest.approx(getattr(first.params, name), rel=1e-4)
    assert first.gemm_call_overhead_s is None  # graphed GEMM rows need no nuisance term
    assert "gemm_efficiency_8bit" in first.fitted_names


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_shipped_files_state_where_and_with_what(gpu):
    meta = yaml.safe_load((CALIBRATION / f"{gpu}.yaml").read_text())["metadata"]
    measured = meta["measured_with"][0]
    assert measured["torch"].startswith("2.") and measured["cuda"]
    assert "lent" in meta["note"]


@needs_shared
def test_release_check_on_the_shared_h100_rows():
    # The default h100-sxm calibration was fitted on our H100 only: the shared H100 decode
    # rows (another card, another implementation) are a held-out check.
    shared = [r for r in load_rows(SHARED / "h100_sxm_microbench.jsonl") if r["kind"] == "decode"]
    params = CostParams.from_file(CALIBRATION / "h100-sxm.yaml")
    model = CostModel(CostConfig(load_model("llama-3.2-1b"), load_gpu("h100-sxm"), params=params))
    errors = []
    for r in shared:
        shape = StepShape.uniform(decode_count=r["batch"], decode_context=r["context"])
        errors.append(abs(model.step_time_s(shape) * 1e3 / r["ms"] - 1))
    assert len(errors) == 57
    assert np.median(errors) < 0.10
    assert max(errors) < 0.20


def test_fitting_one_model_predicts_the_other():
    # Fit on the 1B steps and kernels of our H100, predict the 8B steps (held out).
    rows = load_rows(MEASUREMENTS / "h100-sxm.jsonl")

    def held(row):
        return row["kind"] in ("decode", "prefill", "mixed") and row["model"] == "llama-3.1-8b"

    result = fit(rows, models=_models(rows), gpu=load_gpu("h100-sxm"), holdout=held)
    held_steps = [r for r in result.rows if r.held_out and not r.label.startswith("eager")]
    assert len(held_steps) >= 20
    assert np.median([abs(r.error_pct) for r in held_steps]) < 10.0
    # and the fit improves on the datasheet defaults for those rows
    defaults = score(
        [r.row for r in held_steps],
        CostParams.defaults(),
        models=_models(rows),
        gpu=load_gpu("h100-sxm"),
    )
    fitted_err = np.median([abs(r.error_pct) for r in held_steps])
    assert fitted_err <= np.median([abs(r.error_pct) for r in defaults])
