"""MoE measurements: the grids, the routed-expert MLP against a per-token reference, and a
CPU smoke run of ``servesim calibrate --measure --only moe``."""

from __future__ import annotations

import importlib.util
import json

import pytest

from simulator.calibrate.moe_plan import (
    MOE_GEMM_MODELS,
    SMOKE_MOE_MODEL,
    expert_shapes,
    groups_for,
    make_moe_plan,
)
from simulator.cli.main import main
from simulator.specs.catalog import load_model

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_full_plan_spans_one_to_4096_tokens_per_expert_for_every_moe_family():
    plan = make_moe_plan("full")
    assert plan.tokens_per_expert[0] == 1 and plan.tokens_per_expert[-1] == 4096
    assert set(MOE_GEMM_MODELS) == set(plan.gemm_models)
    families = {name.split("-")[0] for name in plan.gemm_models}
    assert {"deepseek", "qwen3", "mixtral", "gpt"} <= families
    assert {s.model for s in plan.steps} == {"qwen3-30b-a3b", "mixtral-8x7b"}
    quick = make_moe_plan("quick")
    assert set(quick.tokens_per_expert) <= set(plan.tokens_per_expert)


def test_expert_shapes_and_groups():
    qwen = load_model("qwen3-30b-a3b")
    assert expert_shapes(qwen) == [("experts_gate_up", 2048, 1536), ("experts_down", 768, 2048)]
    # All 128 experts up to 512 tokens each (65536 rows), then fewer.
    assert groups_for(qwen, 512, 65536) == 128
    assert groups_for(qwen, 4096, 65536) == 16
    assert groups_for(load_model("mixtral-8x7b"), 4096, 65536) == 8


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed")
def test_routed_mlp_matches_a_per_token_reference():
    import torch

    from simulator.calibrate.moe_kernels import detect_grouped_mm
    from simulator.calibrate.moe_model import MoeModel

    gmm = detect_grouped_mm("cpu", torch.float32)
    model = MoeModel(SMOKE_MOE_MODEL, "cpu", torch.float32, gmm)
    layer = model.layers[0]
    hn = torch.randn(13, SMOKE_MOE_MODEL.hidden_size)
    got = model.mlp(layer, hn)
    probs = torch.softmax(hn @ layer["router"], dim=-1)
    top_w, top_i = torch.topk(probs, SMOKE_MOE_MODEL.experts_per_token, dim=-1)
    top_w = top_w / top_w.sum(-1, keepdim=True)
    want = torch.zeros_like(hn)
    for t in range(hn.shape[0]):
        for w, e in zip(top_w[t], top_i[t], strict=True):
            gate, up = (hn[t] @ layer["experts_gate_up"][e]).chunk(2)
            want[t] += w * ((torch.nn.functional.silu(gate) * up) @ layer["experts_down"][e])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    routing = model.routing()
    assert 1 <= routing["experts_touched"] <= SMOKE_MOE_MODEL.num_experts
    assert routing["max_over_mean_load"] >= 1.0


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed")
def test_moe_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "moe.jsonl"
    argv = ["calibrate", "--measure", "--smoke", "--only", "moe", "--device", "cpu"]
    assert main([*argv, "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = {r["kind"] for r in rows}
    assert {"env", "grouped_gemm", "moe_decode", "moe_prefill", "moe_layer"} <= kinds
    assert "gemm" not in kinds and "decode" not in kinds  # --only moe
    assert rows[0]["grouped_mm"] in ("torch._grouped_mm", "torch.nn.functional.grouped_mm", "bmm")
    gemm = [r for r in rows if r["kind"] == "grouped_gemm"]
    assert {r["tokens_per_expert"] for r in gemm} == set(make_moe_plan("smoke").tokens_per_expert)
    for r in rows:
        if "ms" in r:
            assert r["ms"] > 0 and r["ms_min"] <= r["ms"] <= r["ms_max"]


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed")
def test_routing_draw_spreads_even_identical_tokens_uniformly():
    # Random weights route alike tokens alike; the draw makes routing uniform as in a
    # load-balanced model: 32 identical tokens x top-8 of 64 touch ~64(1-(7/8)^32) = 63.
    import dataclasses

    import torch

    from simulator.calibrate.moe_kernels import detect_grouped_mm
    from simulator.calibrate.moe_model import MoeModel

    spec = dataclasses.replace(SMOKE_MOE_MODEL, num_experts=64, experts_per_token=8)
    model = MoeModel(spec, "cpu", torch.float32, detect_grouped_mm("cpu", torch.float32))
    model.reserve_routing(64)
    hn = torch.randn(1, spec.hidden_size).repeat(32, 1)
    model.mlp(model.layers[0], hn)
    routing = model.routing()
    assert routing["experts_touched"] >= 56
    assert routing["max_over_mean_load"] < 3.0
