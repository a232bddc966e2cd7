"""``servesim calibrate --measure``: the grids it times, its CLI, and a CPU smoke run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from simulator.calibrate.plan import SIZES, gemm_shapes, make_plan
from simulator.cli.main import main
from simulator.specs.catalog import load_model

SHARED_H100 = Path(__file__).resolve().parents[1].parent / "shared" / "calibration"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_full_grid_repeats_the_shared_step_shapes():
    # The 1B grid is the shared file's, so the two measurement files check each other.
    shared = SHARED_H100 / "h100_sxm_microbench.jsonl"
    if not shared.is_file():
        pytest.skip("shared calibration data absent")
    rows = [json.loads(line) for line in shared.read_text().splitlines()]
    grid = make_plan("full").steps["llama-3.2-1b"]
    decode = {(r["batch"], r["context"]) for r in rows if r["kind"] == "decode"}
    prefill = {(r["batch"], r["seq"]) for r in rows if r["kind"] == "prefill"}
    mixed = {
        (r["chunk"], r["chunk_context"], r["decode_batch"], r["decode_context"])
        for r in rows
        if r["kind"] == "mixed"
    }
    assert set(grid.decode) == decode
    assert set(grid.prefill) == prefill
    assert set(grid.mixed) == mixed


def test_quick_is_a_small_subset_of_full():
    full, quick = make_plan("full"), make_plan("quick")
    grid, full_grid = quick.steps["llama-3.2-1b"], full.steps["llama-3.2-1b"]
    assert set(grid.decode) <= set(full_grid.decode)
    assert len(grid.decode) < len(full_grid.decode)
    assert sum(len(g.decode) + len(g.prefill) for g in quick.steps.values()) < 30
    assert set(quick.gemm_m) <= set(full.gemm_m)
    assert quick.iters < full.iters


def test_every_size_has_steps_and_kernels():
    for size in SIZES:
        plan = make_plan(size)
        assert plan.steps and plan.gemm_m and plan.attn_decode and plan.allreduce_bytes


def test_gemm_shapes_of_a_catalog_model():
    shapes = gemm_shapes(load_model("llama-3.1-8b"))
    assert [(k, n) for _, k, n in shapes] == [
        (4096, 6144),
        (4096, 4096),
        (4096, 28672),
        (14336, 4096),
        (4096, 128256),
    ]
    moe = dict((op, (k, n)) for op, k, n in gemm_shapes(load_model("mixtral-8x7b")))
    assert moe["experts_gate_up"] == (4096, 2 * 14336)


def test_measure_options_need_measure(capsys, tmp_path):
    status = main(["calibrate", "--from", "x.jsonl", "-o", str(tmp_path / "o.yaml"), "--quick"])
    assert status == 2
    assert "go with --measure" in capsys.readouterr().err


def test_unknown_size_is_a_user_error():
    from simulator.errors import UserError

    with pytest.raises(UserError, match="must be one of"):
        make_plan("huge")


@pytest.mark.skipif(HAS_TORCH, reason="PyTorch installed: the missing-torch message is not shown")
def test_measure_without_torch_says_what_to_install(capsys, tmp_path):
    status = main(["calibrate", "--measure", "--smoke", "-o", str(tmp_path / "m.jsonl")])
    assert status == 2
    assert "servesim[torch]" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed")
def test_smoke_run_on_cpu_writes_the_shared_format(tmp_path):
    out = tmp_path / "smoke.jsonl"
    assert main(["calibrate", "--measure", "--smoke", "--device", "cpu", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = {r["kind"] for r in rows}
    assert {"env", "ceiling", "launch", "gemm", "decode", "prefill", "mixed"} <= kinds
    assert {"attn_prefill", "attn_decode"} <= kinds
    for r in rows:
        if "ms" in r:
            assert r["ms"] > 0 and r["ms_min"] <= r["ms"] <= r["ms_max"]
