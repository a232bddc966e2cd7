"""Invariants of the cost model: monotonicity, fast path = breakdown, TP, eager, memory plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.costmodel import (
    CostConfig,
    CostModel,
    CostParams,
    Parallelism,
    Precision,
    StepShape,
    memory_plan,
)
from simulator.errors import UserError
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec

H100 = GpuSpec(
    name="h100-sxm",
    peak_flops={"bf16": 989.4e12, "fp8": 1978.9e12},
    memory_bytes=80e9,
    memory_bw_bytes_per_s=3.35e12,
    l2_bytes=50e6,
)
NVLINK4 = LinkSpec(name="nvlink4", kind="nvlink", bandwidth_bytes_per_s=450e9, latency_s=0.6e-6)
LLAMA_1B = ModelSpec("llama-3.2-1b", 2048, 16, 32, 8, 64, 8192, 128256)
LLAMA_8B = ModelSpec("llama-3.1-8b", 4096, 32, 32, 8, 128, 14336, 128256)
LLAMA_70B = ModelSpec("llama-3.1-70b", 8192, 80, 64, 8, 128, 28672, 128256)

shapes = st.builds(
    lambda prefills, decodes: StepShape.build(prefills=prefills, decode_contexts=decodes),
    st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 8192)), max_size=3),
    st.lists(st.integers(0, 16384), max_size=64),
).filter(lambda s: s.tokens > 0)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, factor=st.floats(1.01, 4.0))
def test_more_bandwidth_or_flops_is_never_slower(shape, factor):
    base = CostModel(CostConfig(LLAMA_1B, H100)).step_time_s(shape)
    faster_bw = dataclasses.replace(H100, memory_bw_bytes_per_s=H100.memory_bw_bytes_per_s * factor)
    faster_fl = dataclasses.replace(
        H100, peak_flops={k: v * factor for k, v in H100.peak_flops.items()}
    )
    assert CostModel(CostConfig(LLAMA_1B, faster_bw)).step_time_s(shape) <= base
    assert CostModel(CostConfig(LLAMA_1B, faster_fl)).step_time_s(shape) <= base
    # Strictly faster when the step is large enough to be bound by either.
    both = dataclasses.replace(faster_bw, peak_flops=faster_fl.peak_flops)
    assert CostModel(CostConfig(LLAMA_1B, both)).step_time_s(shape) < base


@settings(max_examples=60, deadline=None)
@given(shape=shapes, eager=st.booleans(), tp=st.sampled_from([1, 2, 4]))
def test_step_time_equals_breakdown_total(shape, eager, tp):
    model = CostModel(
        CostConfig(
            LLAMA_8B,
            H100,
            params=CostParams.defaults().replace(cuda_graphs=not eager),
            parallel=Parallelism(tensor=tp, link=NVLINK4),
        )
    )
    cost = model.price(shape)
    assert model.step_time_s(shape) == pytest.approx(cost.total_s, rel=1e-12)
    assert cost.total_s == pytest.approx(sum(op.time_s for op in cost.ops), rel=1e-12)
    assert all(op.time_s >= 0 for op in cost.ops)
    assert {op.bound for op in cost.ops} <= {
        "compute",
        "memory",
        "latency",
        "communication",
        "overhead",
    }


@pytest.mark.parametrize("eager", [False, True])
@pytest.mark.parametrize("batch,context", [(1, 0), (7, 333), (256, 4096)])
def test_decode_run_matches_step_by_step(batch, context, eager):
    model = CostModel(
        CostConfig(LLAMA_1B, H100, params=CostParams.defaults().replace(cuda_graphs=not eager))
    )
    run = model.decode_run_s(batch, batch * context, 50)
    one_by_one = [
        model.step_time_s(
            StepShape(
                decode_seqs=batch,
                decode_context_tokens=batch * context + i * batch,
                logits_rows=batch,
            )
        )
        for i in range(50)
    ]
    np.testing.assert_allclose(run, one_by_one, rtol=1e-12)
    assert np.all(np.diff(run) >= 0)  # contexts grow, steps never get shorter


def test_tensor_parallel_adds_allreduce_and_halves_weight_bytes():
    tp1 = CostModel(CostConfig(LLAMA_8B, H100))
    tp2 = CostModel(CostConfig(LLAMA_8B, H100, parallel=Parallelism(tensor=2, link=NVLINK4)))
    shape = StepShape.uniform(decode_count=32, decode_context=1024)
    ops1 = {op.name: op for op in tp1.price(shape).ops}
    ops2 = {op.name: op for op in tp2.price(shape).ops}
    assert "tp_allreduce" not in ops1
    ar = ops2["tp_allreduce"]
    assert ar.bound == "communication"
    # 2 all-reduces per layer of 32 tokens x 4096 hidden in bf16.
    assert ar.bytes == 2 * 32 * (32 * 4096 * 2)
    assert ar.time_s >= 64 * tp2.params.allreduce_latency_s
    assert tp2.weight_bytes_per_gpu() == pytest.approx(tp1.weight_bytes_per_gpu() / 2, rel=1e-3)
    for name in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"):
        assert ops2[name].flops == pytest.approx(ops1[name].flops / 2)
    assert ops2["attention_decode"].bytes < ops1["attention_decode"].bytes
    # The step itself: less per-GPU work, but the all-reduces are not free.
    assert tp2.step_time_s(shape) > tp1.step_time_s(shape) / 2


def test_tensor_parallel_must_divide_heads_and_needs_a_link():
    with pytest.raises(UserError, match="does not divide 32 attention heads"):
        CostModel(CostConfig(LLAMA_8B, H100, parallel=Parallelism(tensor=3, link=NVLINK4)))
    with pytest.raises(UserError, match="needs a link"):
        CostModel(
            CostConfig(
                LLAMA_8B, dataclasses.replace(H100, interconnect=""), parallel=Parallelism(tensor=2)
            )
        )
    with pytest.raises(UserError, match="weight_dtype"):
        CostModel(CostConfig(LLAMA_8B, H100, precision=Precision(weights="fp7")))


def test_eager_is_slower_and_host_bound_for_small_batches():
    graphed = CostModel(CostConfig(LLAMA_8B, H100))
    eager = CostModel(
        CostConfig(LLAMA_8B, H100, params=CostParams.defaults().replace(cuda_graphs=False))
    )
    shape = StepShape.uniform(decode_count=1, decode_context=512)
    assert eager.step_time_s(shape) > 2 * graphed.step_time_s(shape)
    assert any(op.name == "host_launch" for op in eager.price(shape).ops)
    # A long prefill keeps the GPU busier than the host: no launch penalty.
    big = StepShape.uniform(prefill_count=1, prefill_new=8192)
    assert eager.step_time_s(big) == pytest.approx(graphed.step_time_s(big))


def test_decode_time_grows_with_batch_and_context():
    model = CostModel(CostConfig(LLAMA_8B, H100))
    t = [
        model.step_time_s(StepShape.uniform(decode_count=b, decode_context=c))
        for b, c in [(1, 128), (8, 128), (8, 4096), (64, 4096)]
    ]
    assert t == sorted(t)


def test_memory_plan_llama_8b_on_h100():
    plan = memory_plan(LLAMA_8B, H100)
    assert plan.weight_bytes_per_gpu == pytest.approx(16.06e9, rel=1e-3)
    assert plan.kv_bytes_per_token_per_gpu == 131072
    assert plan.fits
    assert plan.usable_bytes == pytest.approx(72e9)
    expected_kv = plan.usable_bytes - plan.weight_bytes_per_gpu - plan.workspace_bytes
    assert plan.kv_capacity_bytes_per_gpu == pytest.approx(expected_kv)
    assert plan.max_kv_tokens == int(expected_kv // 131072)
    assert 300_000 < plan.max_kv_tokens < 450_000
    tp2 = memory_plan(LLAMA_8B, H100, tensor_parallel=2)
    assert tp2.kv_bytes_per_token_per_gpu == 65536
    assert tp2.max_kv_tokens > 2 * plan.max_kv_tokens
    assert "tokens" in plan.explain()


def test_memory_plan_model_that_does_not_fit():
    plan = memory_plan(LLAMA_70B, H100)
    assert not plan.fits
    assert plan.max_kv_tokens == 0
    text = plan.explain()
    assert "does not fit" in text and "engine.gpu_memory_utilization" in text
    assert f"{(plan.weight_bytes_per_gpu + plan.workspace_bytes) / 1e9:.2f} GB needed" in text
    assert "usable 72.00 GB (90% of 80.00 GB)" in text
    assert memory_plan(LLAMA_70B, H100, tensor_parallel=4).fits
    with pytest.raises(UserError, match="gpu_memory_utilization"):
        memory_plan(LLAMA_8B, H100, gpu_memory_utilization=1.5)


def test_params_validation_and_roundtrip(tmp_path):
    with pytest.raises(UserError, match="gemm_efficiency"):
        CostParams(gemm_efficiency=-0.1)
    params = CostParams.defaults().replace(kernel_latency_s=7e-6, cuda_graphs=False)
    path = tmp_path / "cal.yaml"
    params.to_file(path, {"gpu": "h100-sxm"})
    assert CostParams.from_file(path) == params
    path.write_text("params: {gemm_eficiency: 0.5}\n")
    with pytest.raises(UserError, match="unknown cost parameter"):
        CostParams.from_file(path)


def test_sliding_window_layers_cap_attention_reads():
    windowed = dataclasses.replace(LLAMA_8B, sliding_window=128, sliding_window_layers=16)
    full, win = CostModel(CostConfig(LLAMA_8B, H100)), CostModel(CostConfig(windowed, H100))
    short = StepShape.uniform(decode_count=8, decode_context=100)
    long = StepShape.uniform(decode_count=8, decode_context=8000)
    assert win.step_time_s(short) == pytest.approx(full.step_time_s(short))
    attn = {m: {op.name: op for op in m.price(long).ops}["attention_decode"] for m in (full, win)}
    # Half the layers read 129 tokens per sequence instead of 8001.
    assert attn[win].flops == pytest.approx(attn[full].flops * (8001 + 129) / (2 * 8001))
    run = win.decode_run_s(8, 8 * 8000, 3)
    steps = [
        win.step_time_s(
            StepShape(decode_seqs=8, decode_context_tokens=8 * 8000 + 8 * i, logits_rows=8)
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(run, steps, rtol=1e-12)
    prefill = StepShape.uniform(prefill_count=1, prefill_new=4096)
    assert win.step_time_s(prefill) < full.step_time_s(prefill)
