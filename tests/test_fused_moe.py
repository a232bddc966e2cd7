"""Measured fused-MoE curves: reading, interpolation, and the layer they price."""

from __future__ import annotations

import math

import pytest

from simulator.costmodel import CostModel
from simulator.costmodel.config import CostConfig, Parallelism, Precision
from simulator.costmodel.fused_moe import (
    ROUTING_DEFAULT,
    ROUTING_MLA,
    FusedMoeCurve,
    moe_layout,
    parse_section,
    routing_for,
)
from simulator.costmodel.pricing import resolve_pricing
from simulator.specs.catalog import load_gpu, load_model


def test_curve_interpolates_in_log_log_and_holds_efficiency_past_its_ends():
    curve = FusedMoeCurve.from_points([1, 4, 16, 64], [1e-5, None, 4e-5, 8e-5])
    assert curve.seconds(16) == pytest.approx(4e-5)
    # halfway in log tokens between 1 and 16: the geometric mean of the times
    assert curve.seconds(4) == pytest.approx(math.sqrt(1e-5 * 4e-5))
    assert curve.seconds(128) == pytest.approx(1.6e-4)  # twice the tokens, twice the time
    assert curve.seconds(0.5) == pytest.approx(1e-5)  # held below the first point


def test_one_noisy_last_point_does_not_set_the_extrapolation():
    tokens = [1024, 2048, 4096, 8192, 16384]
    on_trend = [t * 1e-8 for t in tokens]  # compute-bound: time in proportion to tokens
    high, low = [*on_trend[:-1], on_trend[-1] * 1.5], [*on_trend[:-1], on_trend[-1] * 0.7]
    assert FusedMoeCurve.from_points(tokens, on_trend).seconds(65536) == pytest.approx(65536e-8)
    # the last measured point itself is kept; far past it the fitted tail sets the level
    noisy_high = FusedMoeCurve.from_points(tokens, high)
    assert noisy_high.seconds(16384) == pytest.approx(high[-1])
    assert noisy_high.seconds(65536) < 1.5 * 65536e-8 * 0.9
    noisy_low = FusedMoeCurve.from_points(tokens, low)
    assert noisy_low.seconds(65536) > 0.7 * 65536e-8 * 1.1
    # never below the last measured time just past it
    assert noisy_high.seconds(16385) >= high[-1]


def test_section_is_read_by_format_routing_and_layout():
    section = {
        "source": "test",
        "fp8": {"power_law_1.2": {"tokens": [1, 2], "curves_us": {"a": [10.0, 20.0]}}},
    }
    curves = parse_section(section)
    assert set(curves) == {("fp8", "power_law_1.2")}
    assert curves[("fp8", "power_law_1.2")]["a"].seconds(2) == pytest.approx(2e-5)


def test_routing_follows_the_model_family():
    assert routing_for(load_model("deepseek-r1")) == ROUTING_MLA
    assert routing_for(load_model("qwen3-235b-a22b")) == ROUTING_DEFAULT
    layout = moe_layout(load_model("qwen3-235b-a22b"), 1, 8)
    assert layout.key == "4096x1536 top8/128 tp1 ep8"


def _experts_s(model: str, ep: int, tokens: int) -> tuple[CostModel, float]:
    pricing = resolve_pricing("h200", profile="trtllm")
    cost = CostModel(
        CostConfig(
            load_model(model),
            load_gpu("h200"),
            params=pricing.params,
            kernels=pricing.kernels,
            parallel=Parallelism(expert=ep),
            precision=Precision(weights="fp8", kv_cache="fp8"),
        )
    )
    ops = [op for op in cost.plan.gemms if op.is_expert]
    per_layer = sum(cost.gemms.gemm(op, tokens, ep).time_s / op.layers for op in ops)
    return cost, per_layer


def test_a_measured_layout_is_priced_from_its_own_curve():
    """Qwen3-235B's experts on 4 expert-parallel H200s: the shipped curve's time per layer,
    split between gate/up and down."""
    cost, per_layer = _experts_s("qwen3-235b-a22b", 4, 2048)
    curve = cost.gemms.kernels.fused_moe("fp8", ROUTING_DEFAULT, moe_layout(cost.model, 1, 4))
    assert curve is not None
    assert per_layer == pytest.approx(curve.seconds(2048), rel=1e-9)


def test_attention_data_parallel_groups_gather_and_scatter_tokens_in_one_node():
    """With the engine's measured NCCL table, an attention-data-parallel MoE layer costs an
    all-gather and a reduce-scatter of every group's half-precision rows; across nodes the
    dispatch stays an all-to-all."""
    from simulator.costmodel.shape import StepShape
    from simulator.specs.topology import NodeSpec, ReplicaPlacement

    cost, _ = _experts_s("qwen3-235b-a22b", 8, 1)
    shape = StepShape(decode_seqs=1024, decode_context_tokens=1024 * 1000, logits_rows=1024)
    ops = {op.name: op for op in cost.price(shape).ops}
    nccl = cost.gemms.kernels.nccl
    gathered = 1024 * cost.model.hidden_size * 2.0  # 128 tokens on each of 8 groups
    per_layer = nccl["all_gather"](gathered, 8) + nccl["reduce_scatter"](gathered, 8)
    assert ops["ep_allgather"].time_s == pytest.approx(per_layer * cost.model.num_layers)
    assert "ep_alltoall" not in ops
    pricing = resolve_pricing("h200", profile="trtllm")
    two_nodes = NodeSpec(gpus_per_node=4, intra_link=cost.link, inter_link=cost.link)
    across = CostModel(
        CostConfig(
            cost.model,
            cost.gpu,
            params=pricing.params,
            kernels=pricing.kernels,
            parallel=Parallelism(expert=8, placement=ReplicaPlacement(1, 1, 8, two_nodes)),
            precision=Precision(weights="fp8", kv_cache="fp8"),
        )
    )
    assert "ep_alltoall" in {op.name for op in across.price(shape).ops}
