"""The AIConfigurator importer on a committed excerpt of its tables (no package needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.calibrate import aiconfigurator as fit
from simulator.calibrate.aiconfigurator_import import build, write
from simulator.calibrate.aiconfigurator_tables import Table, version_for
from simulator.costmodel.kernels import KernelTables
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu

FIXTURE = Path(__file__).parent / "fixtures" / "aiconfigurator"
H100 = load_gpu("h100-sxm")


@pytest.fixture(scope="module")
def document() -> dict:
    return build("h100_sxm", "trtllm", root=FIXTURE)


def test_the_importer_writes_every_section_with_its_source(document, tmp_path):
    assert (document["engine"], document["version"], document["gpu"]) == (
        "trtllm",
        "1.3.0rc20",
        "h100-sxm",
    )
    meta = document["metadata"]
    assert "Apache License, Version 2.0" in meta["notice"]
    tables = meta["source"]["tables"]
    assert set(tables) == {
        "gemm",
        "context_attention",
        "generation_attention",
        "moe",
        "custom_allreduce",
        "compute_scale",
        "scale_matrix",
        "nccl",
    }
    assert tables["gemm"]["collection_meta"]["runtime"]["version"] == "1.3.0rc20"
    assert meta["peak_flops"]["bf16"] == H100.peak_flops["bf16"]
    kernels = KernelTables.from_file(write(document, tmp_path / "x.yaml"))
    assert set(kernels.gemm) == {"bf16", "fp8", "fp8_static", "fp8_input"}
    assert kernels.prefill_grid("bf16") is not None and kernels.decode_grid("fp16") is not None
    assert kernels.moe_curve("bf16") is not None and kernels.allreduce is not None


def test_the_fit_reports_fitted_and_held_out_errors(document):
    errors = document["metadata"]["errors"]
    for section in ("gemm", "attention_prefill", "attention_decode", "moe_grouped_gemm"):
        for stats in errors[section].values():
            assert stats["fitted"]["n"] > 0 and stats["held_out"]["n"] > 0
    # The GEMM grid reproduces rows it did not see within a few percent (median).
    assert errors["gemm"]["bf16"]["held_out"]["median_abs_pct"] < 10
    assert errors["allreduce"]["held_out"]["median_abs_pct"] < 10


def test_the_split_is_deterministic_and_holds_out_a_quarter():
    keys = [f"{n}x{k}" for n in range(100) for k in range(40)]
    out = fit.held_out(keys)
    assert np.array_equal(out, fit.held_out(keys))
    assert 0.2 < out.mean() < 0.3


def test_a_grid_fitted_on_a_roofline_recovers_it():
    """Rows timed as an exact roofline with a fixed latency: the fitted GEMM grid predicts
    the held-out shapes within 3 %."""
    dims = [256, 512, 1024, 2048, 3072, 4096, 6144, 8192]
    rows = []
    for n in dims:
        for k in dims:
            for m in [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096]:
                compute = 2 * m * n * k / (0.7 * H100.peak_flops["bf16"])
                memory = 2 * (m * k + k * n + m * n) / (0.8 * H100.memory_bw_bytes_per_s)
                ms = (max(compute, memory) + 5e-6) * 1e3
                rows.append(("torch_flow", "bfloat16", m, n, k, ms))
    frame = pd.DataFrame(rows, columns=["kernel_source", "gemm_dtype", "m", "n", "k", "latency"])
    grids, report = fit.fit_gemm(Table("gemm", "x", "1", Path("."), {}, frame), H100)
    assert set(grids) == {"bf16"}
    assert report["bf16"]["held_out"]["median_abs_pct"] < 3


def test_versions_of_other_tables_follow_the_engine_version():
    assert version_for(FIXTURE, "h100_sxm", "gemm", "trtllm", "1.3.0rc20") == "1.3.0rc20"
    assert version_for(FIXTURE, "h100_sxm", "moe", "trtllm", "1.4.0") == "1.3.0rc20"
    assert version_for(FIXTURE, "h100_sxm", "moe", "trtllm", "1.0.0") == "1.3.0rc20"
    assert version_for(FIXTURE, "h100_sxm", "moe", "vllm", "0.24.0") is None


def test_unknown_system_engine_or_version_is_a_user_error():
    with pytest.raises(UserError, match="unknown system 'h300'"):
        build("h300", "trtllm", root=FIXTURE)
    with pytest.raises(UserError, match="--engine: 'tgi'"):
        build("h100_sxm", "tgi", root=FIXTURE)
    with pytest.raises(UserError, match=r"--version: '9\.9'; trtllm on h100_sxm has 1\.3\.0rc20"):
        build("h100_sxm", "trtllm", "9.9", root=FIXTURE)


def test_measured_moe_curves_keep_each_layout_and_report_held_out_points(document, tmp_path):
    """Every measured expert shape and layout is kept under both routings; the held-out
    token points are left out of the file and the curve through the others is judged on
    them."""
    section = document["moe_measured"]
    assert "aiconfigurator-core" in section["source"]
    body = section["fp8"]["power_law_1.2"]
    curve = body["curves_us"]["4096x1536 top8/128 tp1 ep8"]
    assert len(curve) == len(body["tokens"]) and None in curve
    report = document["metadata"]["errors"]["moe_measured"]["fp8"]
    for routing in ("power_law_1.01", "power_law_1.2"):
        stats = report[routing]["held_out_points"]
        assert report[routing]["curves"] == 2 and stats["n"] > 0
        assert stats["median_abs_pct"] < 15
    kernels = KernelTables.from_file(write(document, tmp_path / "x.yaml"))
    assert ("fp8", "power_law_1.01") in kernels.moe_measured


def test_nccl_collectives_are_fitted_from_the_system_table(document):
    """The node's NCCL all-gather and reduce-scatter (half precision) by bytes and GPUs."""
    assert document["metadata"]["source"]["tables"]["nccl"]["version"] == "2.27.3"
    errors = document["metadata"]["errors"]["nccl"]
    for op in ("all_gather", "reduce_scatter"):
        assert errors[op]["held_out"]["n"] > 0
        assert errors[op]["held_out"]["median_abs_pct"] < 10
    assert set(document["nccl"]) == {"all_gather", "reduce_scatter"}


def test_static_scale_fp8_rows_drop_the_quantisation_kernels_measured_at_their_shape():
    root = FIXTURE / "data" / "h100_sxm"
    gemm = pd.read_csv(root / "gemm/trtllm/1.3.0rc20/gemm_perf.csv")
    fp8 = gemm[gemm.gemm_dtype == "fp8"]
    tables = []
    for kind, name in (
        ("compute_scale", "computescale_perf"),
        ("scale_matrix", "scale_matrix_perf"),
    ):
        path = root / f"quantize/trtllm/1.3.0rc20/{name}.csv"
        tables.append(Table(kind, "trtllm", "1.3.0rc20", path, {}, pd.read_csv(path)))
    scale, cast = (t.frame.set_index(["m", "k"]).latency for t in tables)
    static = fit.static_fp8_rows(fp8, *tables, cast=True).set_index(["m", "n", "k"]).latency
    fed = fit.static_fp8_rows(fp8, *tables, cast=False).set_index(["m", "n", "k"]).latency
    assert len(static) > 0.9 * len(fp8)
    for row in fp8.itertuples():
        key = (row.m, row.n, row.k)
        if key in static.index:
            assert static[key] == pytest.approx(row.latency - scale[(row.m, row.k)])
        if key in fed.index:
            saved = scale[(row.m, row.k)] + cast[(row.m, row.k)]
            assert fed[key] == pytest.approx(row.latency - saved)


def test_each_moe_layout_keeps_the_kernel_measured_on_it():
    """vLLM's tables time tensor-parallel layouts with Triton and expert-parallel ones with
    FlashInfer-CUTLASS: both kinds of layout stay, each from its own kernel."""
    shape = {"hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256}
    rows = []
    for kernel, tp, ep, n in (("triton", 8, 1, 3), ("cutlass", 1, 8, 3), ("cutlass", 8, 1, 2)):
        for tokens in range(n):
            rows.append({**shape, "moe_tp_size": tp, "moe_ep_size": ep, "kernel_source": kernel,
                         "moe_dtype": "fp8_block", "num_tokens": tokens})  # fmt: skip
    kept = fit.moe_layout_kernels(pd.DataFrame(rows))
    by_layout = kept.groupby(["moe_tp_size", "moe_ep_size"]).kernel_source.unique()
    assert {k: list(v) for k, v in by_layout.items()} == {
        (1, 8): ["cutlass"],
        (8, 1): ["triton"],
    }


def test_each_gemm_shape_keeps_the_kernel_measured_on_it():
    """vLLM times block-scaled FP8 with FlashInfer for few tokens and DeepGEMM above: every
    shape stays, and where two kernels timed one shape the one measured more wins."""
    rows = pd.DataFrame(
        [
            {"m": 16, "n": 4096, "k": 4096, "kernel_source": "flashinfer", "latency": 0.05},
            {"m": 64, "n": 4096, "k": 4096, "kernel_source": "deepgemm", "latency": 0.06},
            {"m": 256, "n": 4096, "k": 4096, "kernel_source": "flashinfer", "latency": 0.5},
            {"m": 256, "n": 4096, "k": 4096, "kernel_source": "deepgemm", "latency": 0.07},
            {"m": 1024, "n": 4096, "k": 4096, "kernel_source": "deepgemm", "latency": 0.2},
        ]
    )
    kept = fit.kernel_per_shape(rows).sort_values("m")
    assert list(zip(kept.m, kept.kernel_source, strict=True)) == [
        (16, "flashinfer"),
        (64, "deepgemm"),
        (256, "deepgemm"),
        (1024, "deepgemm"),
    ]
