"""Calibration fit from the stored shared measurements, and the calibrate/step commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.cli.main import main
from simulator.costmodel import CostParams
from simulator.costmodel.calibration import (
    catalog_gpu_name,
    fit,
    load_rows,
    parse_holdout,
    score,
)
from simulator.errors import UserError
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "calibration"
H100_FILE = SHARED / "h100_sxm_microbench.jsonl"
ALLREDUCE_FILE = SHARED / "h200x2_nvlink_allreduce.jsonl"
needs_data = pytest.mark.skipif(not H100_FILE.is_file(), reason="shared calibration data absent")

H100 = GpuSpec("h100-sxm", {"bf16": 989.4e12, "fp8": 1978.9e12}, 80e9, 3.35e12, 50e6)
NVLINK4 = LinkSpec("nvlink4", "nvlink", 450e9, 0.6e-6)
MODELS = {"llama-3.2-1b": ModelSpec("llama-3.2-1b", 2048, 16, 32, 8, 64, 8192, 128256)}


def median_abs(results) -> float:
    return float(np.median([abs(r.error_pct) for r in results]))


@pytest.fixture(scope="module")
def rows():
    return load_rows(H100_FILE) + load_rows(ALLREDUCE_FILE)


@needs_data
def test_fit_is_deterministic(rows):
    a = fit(rows, models=MODELS, gpu=H100, link=NVLINK4)
    b = fit(rows, models=MODELS, gpu=H100, link=NVLINK4)
    assert a.params == b.params
    assert "allreduce_latency_s" in a.fitted_names
    assert a.gemm_call_overhead_s is not None and a.gemm_call_overhead_s > 0


@needs_data
def test_fit_improves_held_out_rows_over_defaults(rows):
    # Hold out whole regions the fit never sees: fused (mixed) steps, the largest decode
    # batch, the biggest GEMMs and the largest all-reduce messages.
    def held(row):
        return (
            row["kind"] == "mixed"
            or (row["kind"] == "decode" and row["batch"] >= 256)
            or (row["kind"] == "gemm" and row["m"] == 2048)
            or (row["kind"] == "allreduce" and row["bytes"] >= 67108864)
        )

    result = fit(rows, models=MODELS, gpu=H100, link=NVLINK4, holdout=held)
    held_fit = [r for r in result.rows if r.held_out and not r.label.startswith("gemm")]
    assert len(held_fit) >= 30
    mask = [held(r) for r in rows]
    defaults = score(
        rows, CostParams.defaults(), models=MODELS, gpu=H100, link=NVLINK4, held_out=mask
    )
    held_default = [r for r in defaults if r.held_out and not r.label.startswith("gemm")]
    assert median_abs(held_fit) < median_abs(held_default)
    assert median_abs(held_fit) < 10.0


@needs_data
def test_calibrate_cli_writes_a_file_that_step_reads(tmp_path, capsys):
    out = tmp_path / "h100.yaml"
    rc = main(
        [
            "calibrate",
            "--from",
            str(H100_FILE),
            "--from",
            str(ALLREDUCE_FILE),
            "-o",
            str(out),
            "--holdout",
            "kind=mixed",
        ]
    )
    assert rc == 0
    params = CostParams.from_file(out)
    assert params != CostParams.defaults()
    text = out.read_text()
    assert "NVIDIA H100 80GB HBM3" in text and "written_utc" in text and "kind=mixed" in text
    capsys.readouterr()
    rc = main(
        [
            "step",
            "--model",
            "llama-3.2-1b",
            "--gpu",
            "h100-sxm",
            "--decode",
            "1x128",
            "--calibration",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert calibrated["calibration"] == str(out)
    assert 1.5 < calibrated["step_ms"] < 2.3  # measured 1.88 ms


def test_step_cli_json_and_table(capsys):
    rc = main(
        [
            "step",
            "--model",
            "llama-3.2-1b",
            "--gpu",
            "h100-sxm",
            "--decode",
            "64x1024",
            "--prefill",
            "1x256+2048",
            "--calibration",
            "none",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step_ms"] > 0
    assert {"name", "flops", "bytes", "ms", "bound"} <= set(out["ops"][0])
    assert out["shape"]["decode_seqs"] == 64 and out["shape"]["prefill_kv_tokens"] == 2304
    assert sum(op["ms"] for op in out["ops"]) == pytest.approx(out["step_ms"])
    rc = main(
        [
            "step",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "h100-sxm",
            "--tp",
            "2",
            "--decode",
            "8x512",
            "--calibration",
            "none",
            "--eager",
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "tp_allreduce" in table and "eager" in table and "total" in table


@pytest.mark.parametrize(
    "flag,value",
    [("--decode", "64by1024"), ("--prefill", "4x"), ("--prefill", "1x0"), ("--decode", "x5")],
)
def test_step_cli_rejects_bad_specs(flag, value, capsys):
    rc = main(["step", "--model", "llama-3.2-1b", "--gpu", "h100-sxm", flag, value])
    assert rc == 2
    err = capsys.readouterr().err
    assert flag in err and repr(value) in err and "COUNTx" in err


def test_holdout_parsing_and_device_names():
    pred = parse_holdout("kind=decode,batch=512")
    assert pred({"kind": "decode", "batch": 512})
    assert not pred({"kind": "decode", "batch": 256})
    with pytest.raises(UserError, match="--holdout"):
        parse_holdout("decode")
    assert catalog_gpu_name("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert catalog_gpu_name("NVIDIA H200") == "h200"
    assert catalog_gpu_name("Some Other Card") is None


def test_load_rows_reports_bad_lines(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "env"}\nnot json\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2"):
        load_rows(bad)


def test_step_applies_the_catalog_calibration_of_the_gpu_by_default(tmp_path, monkeypatch, capsys):
    from simulator.specs import catalog

    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("gpus", "models", "links.yaml"):
        (specs / name).symlink_to(catalog.specs_dir() / name)
    (specs / "calibration").mkdir()
    slow = CostParams.defaults().replace(step_overhead_s=0.5)
    slow.to_file(specs / "calibration" / "h100-sxm.yaml", {"gpu": "h100-sxm"})
    monkeypatch.setenv("SERVESIM_SPECS_DIR", str(specs))
    catalog.clear_cache()
    args = ["step", "--model", "llama-3.2-1b", "--gpu", "h100-sxm", "--decode", "8x512", "--json"]
    assert main(args) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert shipped["calibration"].endswith("h100-sxm.yaml")
    assert main([*args, "--calibration", "none"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["calibration"] == "datasheet defaults"
    extra_ms = (0.5 - CostParams.defaults().step_overhead_s) * 1e3
    assert shipped["step_ms"] - plain["step_ms"] == pytest.approx(extra_ms, rel=1e-6)
    catalog.clear_cache()
