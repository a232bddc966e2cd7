"""One pricing entry point: ``price(shape).total_s`` is the step time, and the fast paths
the engine calls (``step_time_s``, ``decode_run_s``) equal it, for every kind of replica
(tensor, pipeline and expert parallel, offload, eager, measured kernel tables)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.costmodel import CostConfig, CostModel, CostParams, Parallelism, Precision
from simulator.costmodel.kernels import KernelTables
from simulator.costmodel.offload import OffloadPlan
from simulator.costmodel.pricing import engine_calibration_path
from simulator.costmodel.shape import StepShape
from simulator.specs.catalog import load_gpu, load_link, load_model

EAGER = CostParams.defaults().replace(cuda_graphs=False)


@functools.cache
def _kernels(engine: str = "trtllm") -> KernelTables:
    return KernelTables.from_file(engine_calibration_path(engine, "h100-sxm", None))


def _config(name: str) -> CostConfig:
    h100, nvlink = load_gpu("h100-sxm"), load_link("nvlink4")
    pcie = load_link("pcie4")
    configs = {
        "dense": lambda: CostConfig(load_model("llama-3.1-8b"), h100),
        "dense tp2 eager": lambda: CostConfig(
            load_model("llama-3.1-8b"), h100, params=EAGER, parallel=Parallelism(tensor=2)
        ),
        "dense pp2": lambda: CostConfig(
            load_model("llama-3.1-8b"), h100, parallel=Parallelism(pipeline=2, link=nvlink)
        ),
        "dense fp8 measured": lambda: CostConfig(
            load_model("llama-3.1-8b"),
            h100,
            kernels=_kernels(),
            precision=Precision(weights="fp8", kv_cache="fp8"),
        ),
        "dense tp4 measured": lambda: CostConfig(
            load_model("llama-3.1-70b"),
            h100,
            kernels=_kernels("vllm"),
            parallel=Parallelism(tensor=4),
        ),
        "moe ep4 measured": lambda: CostConfig(
            load_model("qwen3-30b-a3b"),
            h100,
            kernels=_kernels("sglang"),
            parallel=Parallelism(expert=4, link=nvlink),
        ),
        "moe tp2 pp2 ep2": lambda: CostConfig(
            load_model("qwen3-30b-a3b"),
            h100,
            parallel=Parallelism(tensor=2, pipeline=2, expert=2, link=nvlink),
        ),
        "mxfp4 windowed measured": lambda: CostConfig(
            load_model("gpt-oss-20b"),
            h100,
            kernels=_kernels(),
            precision=Precision(weights="mxfp4"),
        ),
        "mla fp8_block measured": lambda: CostConfig(
            load_model("deepseek-v3"),
            h100,
            kernels=_kernels(),
            parallel=Parallelism(expert=8, link=nvlink),
            precision=Precision(weights="fp8_block"),
        ),
        "moe ep8 measured graph padding": lambda: CostConfig(
            load_model("qwen3-235b-a22b"),
            h100,
            kernels=_kernels(),
            parallel=Parallelism(expert=8, link=nvlink),
            precision=Precision(weights="fp8", kv_cache="fp8"),
            graph_batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        ),
        "dense graph padding": lambda: CostConfig(
            load_model("llama-3.1-8b"), h100, graph_batch_sizes=(1, 8, 64, 96, 256)
        ),
        "offload cpu": lambda: CostConfig(
            load_model("llama-3.1-8b"),
            h100,
            offload=OffloadPlan(20, "cpu", load_gpu("cpu-server"), pcie),
        ),
        "offload stream": lambda: CostConfig(
            load_model("llama-3.1-8b"), h100, offload=OffloadPlan(20, "stream", None, pcie)
        ),
    }
    return configs[name]()


CONFIGS = [
    "dense",
    "dense tp2 eager",
    "dense pp2",
    "dense fp8 measured",
    "dense tp4 measured",
    "moe ep4 measured",
    "moe tp2 pp2 ep2",
    "mxfp4 windowed measured",
    "mla fp8_block measured",
    "moe ep8 measured graph padding",
    "dense graph padding",
    "offload cpu",
    "offload stream",
]


@functools.cache
def _model(name: str) -> CostModel:
    return CostModel(_config(name))


shapes = st.builds(
    lambda prefills, decodes: StepShape.build(prefills=prefills, decode_contexts=decodes),
    st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 6000)), max_size=3),
    st.lists(st.integers(0, 12000), max_size=40),
).filter(lambda s: s.tokens > 0)


@settings(max_examples=120, deadline=None)
@given(name=st.sampled_from(CONFIGS), shape=shapes)
def test_step_time_is_the_price_total(name, shape):
    model = _model(name)
    cost = model.price(shape)
    assert model.step_time_s(shape) == pytest.approx(cost.total_s, rel=1e-9)
    assert all(op.time_s >= 0 for op in cost.ops)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(CONFIGS),
    batch=st.integers(1, 300),
    context=st.integers(0, 5000),
    steps=st.integers(1, 12),
)
def test_a_decode_run_is_its_steps_one_by_one(name, batch, context, steps):
    model = _model(name)
    run = model.decode_run_s(batch, batch * context, steps)
    for i, duration in enumerate(run):
        shape = StepShape(
            decode_seqs=batch,
            decode_context_tokens=batch * context + i * batch,
            logits_rows=batch,
        )
        assert duration == pytest.approx(model.price(shape).total_s, rel=1e-9)


def test_every_replica_kind_is_exercised():
    """The configurations above cover each path of the cost model at least once."""
    kinds = {name: _model(name) for name in CONFIGS}
    assert any(m.config.kernels is not None and m.model.is_moe for m in kinds.values())
    assert any(m.pipeline_parallel > 1 for m in kinds.values())
    assert any(m.offload is not None and m.offload.mode == "cpu" for m in kinds.values())
    assert any(not m.params.cuda_graphs for m in kinds.values())


@pytest.mark.parametrize(("engine", "gpu"), [("trtllm", "a100-sxm-80gb"), ("vllm", "h100-sxm")])
def test_measured_decode_attention_never_reads_faster_than_hbm(engine, gpu):
    """Some measured decode-attention rows run faster than HBM's datasheet bandwidth (the
    collector's sequences share KV blocks, served from cache); serving reads distinct KV,
    so the measured time is floored at the bytes over the datasheet bandwidth."""
    spec, model = load_gpu(gpu), load_model("llama-3.1-8b")
    kernels = KernelTables.from_file(engine_calibration_path(engine, gpu, None))
    cost = CostModel(CostConfig(model, spec, kernels=kernels))
    kv_per_token = 2 * model.num_layers * model.num_kv_heads * model.head_dim * 2  # bf16
    for seqs, context in [(1, 128), (8, 512), (64, 2048), (256, 4096)]:
        shape = StepShape.uniform(decode_count=seqs, decode_context=context)
        [attention] = [op for op in cost.price(shape).ops if op.name == "attention_decode"]
        floor = seqs * context * kv_per_token / spec.memory_bw_bytes_per_s
        assert attention.time_s >= floor * (1 - 1e-9), (seqs, context)
