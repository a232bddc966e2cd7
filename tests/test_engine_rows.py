"""The held-out published engine rows (``benchmarks/data``) and their runner."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from simulator.config.loader import scenario_from_dict
from simulator.specs.catalog import load_gpu, load_model

ROOT = Path(__file__).resolve().parents[1]


def _load_runner():
    path = ROOT / "benchmarks" / "engine_rows.py"
    spec = importlib.util.spec_from_file_location("servesim_engine_rows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("servesim_engine_rows", module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


engine_rows = _load_runner()


@pytest.fixture(scope="module")
def rows():
    return engine_rows.load_rows()


def test_every_source_names_its_page_method_and_metric():
    for name in engine_rows.ROW_FILES:
        data = yaml.safe_load((engine_rows.DATA / name).read_text())
        for key, source in data["sources"].items():
            assert source["url"].startswith("https://"), key
            assert source["method"] and source["metric"] and source["read_from"], key
        assert {row["source"] for row in data["rows"]} <= data["sources"].keys()


def test_rows_are_unique_positive_and_in_the_catalog(rows):
    assert len(rows) > 400
    assert len({r.id for r in rows}) == len(rows)
    for row in rows:
        assert row.published_tok_s > 0 and row.num_requests > 0
        load_model(row.model)
        load_gpu(row.gpu)


def test_every_row_is_a_valid_user_scenario(rows):
    for row in rows:
        scenario = scenario_from_dict(engine_rows.scenario_for(row))
        assert scenario.workload.arrival.process == "offline"
        assert scenario.engine.profile == "trtllm"
        assert scenario.hardware.gpus_per_replica == row.gpus


def test_ratio_check_compares_one_change_at_a_time():
    base = {"source": engine_rows.RATIO_SOURCE, "model": "m", "isl": 128, "osl": 128}
    results = [
        {**base, "id": "a", "gpu": "h200", "precision": "fp8", "tp": 2, "published_tok_s": 300.0,
         "predicted_tok_s": 330.0},
        {**base, "id": "b", "gpu": "h100-sxm", "precision": "fp8", "tp": 2,
         "published_tok_s": 200.0, "predicted_tok_s": 200.0},
        {**base, "id": "c", "gpu": "h100-sxm", "precision": "fp8", "tp": 1,
         "published_tok_s": 100.0, "predicted_tok_s": 120.0},
    ]  # fmt: skip
    pairs = {p["kind"]: p for p in engine_rows.ratio_checks(results)}
    assert set(pairs) == {"H200 vs H100", "TP doubled"}
    assert pairs["H200 vs H100"]["error_pct"] == pytest.approx((1.65 / 1.5 - 1) * 100)
    assert pairs["TP doubled"]["error_pct"] == pytest.approx((200 / 120 / 2 - 1) * 100)


def test_evaluate_reports_errors_and_refusals(rows):
    small = next(r for r in rows if r.model == "llama-3.1-8b" and r.gpu == "h100-sxm")
    small = dataclasses.replace(small, num_requests=40, isl=128, osl=16)
    too_big = next(r for r in rows if r.model == "llama-3.1-405b")
    too_big = dataclasses.replace(too_big, gpu="a100-sxm-80gb", tp=1, num_requests=4)
    result = engine_rows.evaluate([small, too_big])
    first = result["rows"][0]
    assert first["error_pct"] == pytest.approx(
        (first["predicted_tok_s"] / small.published_tok_s - 1) * 100
    )
    assert [r["id"] for r in result["refused"]] == [too_big.id]
    assert "does not fit" in result["refused"][0]["reason"]
    assert result["groups"][small.group]["rows"] == 1


def test_bench_limits_follow_trtllm_bench():
    """trtllm-bench's own settings for a tuned (FP8) and an untuned (MXFP4) quantisation:
    Llama-3.1-8B FP8 on one H100 at 128/128 gets the 4,096-request, 8,192-token engine of
    the 2024 page's example; gpt-oss keeps the build defaults, with room for one whole
    prompt beside the batch in the PyTorch flow."""
    from benchmarks.engine_rows_limits import bench_limits

    row = engine_rows.Row(
        "x", "trtllm-0.14.0", "0.14.0", "llama-3.1-8b", False, "h100-sxm", 1, 1, "fp8", "fp8",
        "fp8", 128, 128, 1.0, False, 1,
    )  # fmt: skip
    assert bench_limits(row) == (4096, 8192)
    oss = dataclasses.replace(row, release="1.1", model="gpt-oss-20b", weight_dtype="mxfp4",
                              isl=32768, osl=1024)  # fmt: skip
    assert bench_limits(oss) == (2048, 32768 + 2048)
