"""Pipeline and expert parallelism, MoE expert reading, offload in the step cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.costmodel import CostConfig, CostModel, CostParams, Parallelism, Precision, StepShape
from simulator.costmodel.offload import OffloadPlan
from simulator.costmodel.quant import resolve_weight_formats, weight_bytes
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu, load_link, load_model
from simulator.specs.topology import NodeSpec, ReplicaPlacement

H100 = load_gpu("h100-sxm")
NVLINK, IB = load_link("nvlink4"), load_link("infiniband-ndr")


def test_expected_distinct_experts_follow_topk_and_batch():
    model = CostModel(CostConfig(load_model("mixtral-8x7b"), H100))
    op = next(o for o in model.plan.gemms if o.is_expert)
    e, k = 8, 2
    for batch in (1, 2, 4, 16):
        assert op.experts_touched(batch) == pytest.approx(e * (1 - (1 - k / e) ** batch))
    assert op.experts_touched(1) == pytest.approx(k)
    assert op.experts_touched(4) == pytest.approx(5.46875)


def test_deepseek_v3_reads_active_weights_at_batch_1_and_all_experts_at_large_batch():
    ds = load_model("deepseek-v3")
    model = CostModel(CostConfig(ds, H100))
    one = model.weight_bytes_per_token(1) / 2  # bf16: parameters read
    # 37B active parameters (DeepSeek-V3 report), less the embedding table (a row is read).
    active_read = ds.active_param_count() - ds.vocab_size * ds.hidden_size
    assert one == pytest.approx(active_read, rel=0.02)
    assert 35e9 < one < 38e9
    big = model.weight_bytes_per_token(4096)
    assert big / model.weight_bytes_per_gpu() > 0.99


def test_pipeline_parallel_batch_one_pays_the_bubble():
    m = load_model("llama-3.1-70b")
    shape = StepShape.uniform(decode_count=1, decode_context=1024)
    pp1 = CostModel(CostConfig(m, H100, parallel=Parallelism(tensor=1))).step_time_s(shape)
    pp4 = CostModel(CostConfig(m, H100, parallel=Parallelism(pipeline=4, link=NVLINK)))
    # One sequence cannot be split: every stage waits its turn (no speed-up), plus hand-offs.
    assert pp4.step_time_s(shape) == pytest.approx(pp1, rel=0.1)
    assert pp4.step_time_s(shape) > pp1 * 0.95


def test_pipeline_micro_batches_overlap_stages():
    m = load_model("llama-3.1-8b")
    shape = StepShape.uniform(prefill_count=8, prefill_new=2048)
    pp1 = CostModel(CostConfig(m, H100)).step_time_s(shape)
    pp2 = CostModel(CostConfig(m, H100, parallel=Parallelism(pipeline=2, link=NVLINK))).step_time_s(
        shape
    )
    assert 0.45 < pp2 / pp1 < 0.65  # two GPUs, compute-bound: about half
    one_mb = CostModel(
        CostConfig(m, H100, parallel=Parallelism(pipeline=2, link=NVLINK, microbatches=1))
    )
    assert one_mb.step_time_s(shape) > pp2 * 1.5  # no overlap: the bubble is back


def test_pipeline_round_formula():
    m = load_model("llama-3.1-8b")
    cm = CostModel(CostConfig(m, H100, parallel=Parallelism(pipeline=4, link=NVLINK)))
    shape = StepShape.uniform(decode_count=2, decode_context=1000)
    micro = StepShape.uniform(decode_count=1, decode_context=1000)
    t_stage = cm._stage_time(micro)
    t_p2p = cm._p2p_time(1)
    expected = max(2 * t_stage, 4 * (t_stage + t_p2p)) + cm.params.step_overhead_s
    assert cm.step_time_s(shape) == pytest.approx(expected)
    assert cm.price(shape).total_s == pytest.approx(expected)
    run = cm.decode_run_s(2, 2000, 3)
    assert run[0] == pytest.approx(expected, rel=1e-6)


def test_decode_run_matches_step_time_with_parallelism():
    ds = load_model("deepseek-v3")
    node = NodeSpec(gpus_per_node=8, intra_link=NVLINK, inter_link=IB)
    cm = CostModel(
        CostConfig(
            ds,
            H100,
            parallel=Parallelism(tensor=2, expert=8, placement=ReplicaPlacement(2, 1, 8, node)),
            precision=Precision(weights="fp8"),
        )
    )
    for seqs, ctx in ((1, 100), (64, 64 * 1000), (256, 256 * 3000)):
        shape = StepShape(decode_seqs=seqs, decode_context_tokens=ctx, logits_rows=seqs)
        run = cm.decode_run_s(seqs, ctx, 2)
        assert run[0] == pytest.approx(cm.step_time_s(shape), rel=1e-3)
        assert cm.price(shape).total_s == pytest.approx(cm.step_time_s(shape), rel=1e-9)


def test_expert_parallel_adds_all_to_all_and_crossing_nodes_costs_more():
    ds = load_model("deepseek-v3")
    shape = StepShape.uniform(decode_count=128, decode_context=2000)
    one_node = NodeSpec(gpus_per_node=16, intra_link=NVLINK)
    two_nodes = NodeSpec(gpus_per_node=8, intra_link=NVLINK, inter_link=IB)
    inside = CostModel(
        CostConfig(
            ds,
            H100,
            parallel=Parallelism(expert=16, placement=ReplicaPlacement(1, 1, 16, one_node)),
        )
    )
    across = CostModel(
        CostConfig(
            ds,
            H100,
            parallel=Parallelism(expert=16, placement=ReplicaPlacement(1, 1, 16, two_nodes)),
        )
    )
    ops = {op.name: op for op in inside.price(shape).ops}
    assert ops["ep_alltoall"].time_s > 0
    a2a_in = ops["ep_alltoall"].time_s
    a2a_out = {op.name: op for op in across.price(shape).ops}["ep_alltoall"].time_s
    assert a2a_out > a2a_in  # decode: the fixed latencies are a large share
    prefill = StepShape.uniform(prefill_count=16, prefill_new=2048)
    big_in = {op.name: op for op in inside.price(prefill).ops}["ep_alltoall"].time_s
    big_out = {op.name: op for op in across.price(prefill).ops}["ep_alltoall"].time_s
    # prefill: a row crosses the 50 GB/s NIC once per remote node (DeepEP), then NVLink
    assert big_out > 1.5 * big_in
    skewed = CostModel(
        CostConfig(
            ds,
            H100,
            params=CostParams(expert_load_imbalance=2.0),
            parallel=Parallelism(expert=16, placement=ReplicaPlacement(1, 1, 16, one_node)),
        )
    )
    assert skewed.step_time_s(shape) > inside.step_time_s(shape)


def test_expert_parallel_needs_moe_and_params_validate():
    with pytest.raises(UserError, match="mixture-of-experts"):
        CostModel(
            CostConfig(
                load_model("llama-3.1-8b"), H100, parallel=Parallelism(expert=2, link=NVLINK)
            )
        )
    with pytest.raises(UserError, match="expert_load_imbalance"):
        CostParams(expert_load_imbalance=0.5)


def test_tensor_parallel_across_nodes_is_slower_at_decode():
    m = load_model("llama-3.1-70b")
    shape = StepShape.uniform(decode_count=8, decode_context=1000)
    inside = CostModel(CostConfig(m, H100, parallel=Parallelism(tensor=16, link=NVLINK)))
    node = NodeSpec(gpus_per_node=8, intra_link=NVLINK, inter_link=IB)
    across = CostModel(
        CostConfig(
            m, H100, parallel=Parallelism(tensor=16, placement=ReplicaPlacement(16, 1, 1, node))
        )
    )
    assert across.step_time_s(shape) > inside.step_time_s(shape)


def test_offload_costs_sit_between_gpu_and_host_bounds():
    m = load_model("llama-3.1-70b")
    gpu, host = load_gpu("rtx-4090"), load_gpu("cpu-server")
    shape = StepShape.uniform(decode_count=1, decode_context=500)
    pcie = load_link("pcie4")
    cpu = CostModel(
        CostConfig(
            m,
            gpu,
            precision=Precision(weights="q4_k_m"),
            offload=OffloadPlan(36, "cpu", host, pcie),
        )
    ).step_time_s(shape)
    all_gpu = CostModel(CostConfig(m, gpu, precision=Precision(weights="q4_k_m"))).step_time_s(
        shape
    )
    all_cpu = CostModel(CostConfig(m, host, precision=Precision(weights="q4_k_m"))).step_time_s(
        shape
    )
    assert all_gpu < cpu < all_cpu
    stream = CostModel(
        CostConfig(
            m,
            gpu,
            precision=Precision(weights="q4_k_m"),
            offload=OffloadPlan(36, "stream", None, pcie),
        )
    )
    # Streaming 44 of 80 layers (~22.8 GB of the 41.5 GB of layers) over PCIe 4 at 80% of
    # 31.5 GB/s: ~0.9 s per step.
    layer_bytes = weight_bytes(m, resolve_weight_formats("q4_k_m")).layer_bytes
    offloaded = 44 / 80 * layer_bytes
    assert stream.step_time_s(shape) == pytest.approx(
        offloaded / (31.5e9 * 0.8) + stream.params.step_overhead_s, rel=0.02
    )
    # Bandwidth bound of the CPU layers: they cannot beat host memory bandwidth.
    cpu_bytes = 44 / 80 * 42.8e9
    assert cpu > cpu_bytes / host.memory_bw_bytes_per_s
    assert math.isfinite(cpu)


def test_batch_one_decode_never_beats_the_bandwidth_bound():
    for model, gpu, dtype in (
        ("llama-3.1-8b", "rtx-4090", "q4_k_m"),
        ("llama-3.1-70b", "m2-ultra", "q4_k_m"),
        ("llama-3.1-8b", "cpu-server", "bf16"),
    ):
        cm = CostModel(
            CostConfig(load_model(model), load_gpu(gpu), precision=Precision(weights=dtype))
        )
        step = float(cm.decode_run_s(1, 512, 1)[0])
        bound_s = cm.weight_bytes_per_token(1) / cm.gpu.memory_bw_bytes_per_s
        assert step >= bound_s
        assert np.isfinite(step)


@pytest.mark.parametrize(
    ("name", "total_b", "active_b"),
    [
        # Published totals / active parameters (reference sheet G1; model cards).
        ("mixtral-8x7b", 46.7, 12.9),
        ("qwen3-30b-a3b", 30.5, 3.3),
        ("qwen3-235b-a22b", 235.0, 22.0),
        ("deepseek-v3", 671.0, 37.0),
        ("gpt-oss-120b", 116.8, 5.1),
        ("gpt-oss-20b", 20.9, 3.6),
    ],
)
def test_moe_catalog_parameter_counts_match_published(name, total_b, active_b):
    m = load_model(name)
    assert m.param_count() / 1e9 == pytest.approx(total_b, rel=0.02)
    # Publishers differ on counting the input embedding (a row is read, not the table).
    active = m.active_param_count() / 1e9
    without_embedding = active - m.vocab_size * m.hidden_size / 1e9
    assert min(abs(active - active_b), abs(without_embedding - active_b)) / active_b < 0.06


def test_moe_decode_weight_bytes_grow_with_batch_as_experts_are_touched():
    cm = CostModel(CostConfig(load_model("qwen3-30b-a3b"), H100))
    reads = [cm.weight_bytes_per_token(b) for b in (1, 2, 8, 64, 1024)]
    assert reads == sorted(reads)
    assert reads[-1] == pytest.approx(cm.weight_bytes_per_gpu(), rel=1e-3)
    step = [cm.step_time_s(StepShape.uniform(decode_count=b, decode_context=100)) for b in (1, 64)]
    assert step[1] > 2 * step[0]  # a dense model's step would barely grow


def test_expert_groups_take_whole_sequences():
    from simulator.costmodel.costs import ep_group_shape

    one_prompt = StepShape.uniform(prefill_count=1, prefill_new=2048)
    group = ep_group_shape(one_prompt, 8)
    assert group.prefill_tokens == 2048 and group.prefill_seqs == 1  # not spread over groups
    decodes = StepShape.uniform(decode_count=64, decode_context=1000)
    group = ep_group_shape(decodes, 8)
    assert (group.decode_seqs, group.decode_context_tokens, group.logits_rows) == (8, 8000, 8)
    uneven = ep_group_shape(StepShape.uniform(decode_count=9, decode_context=100), 8)
    assert uneven.decode_seqs == 2  # the busiest group sets the pace
    # A long prompt on a DP-attention replica costs about what it costs one group alone.
    ds = load_model("deepseek-v3")
    node = NodeSpec(gpus_per_node=16, intra_link=NVLINK)
    ep8 = CostModel(
        CostConfig(
            ds,
            H100,
            parallel=Parallelism(tensor=2, expert=8, placement=ReplicaPlacement(2, 1, 8, node)),
            precision=Precision(weights="fp8"),
        )
    )
    t_one = ep8.step_time_s(one_prompt)
    t_eight = ep8.step_time_s(StepShape.uniform(prefill_count=8, prefill_new=2048))
    assert t_eight < 3 * t_one  # eight prompts spread over eight groups


def test_a_rank_schedules_no_more_than_its_share_of_the_token_budget():
    from simulator.costmodel.costs import ep_group_shape
    from simulator.engine.entities import Prefilling, Waiting
    from simulator.engine.steps import prompt_chunks

    # Nine prompt chunks over eight ranks: whole sequences put two average chunks on the
    # busiest rank, more than the 5,384 tokens its own scheduler takes in a step.
    step = StepShape.uniform(prefill_count=9, prefill_new=4785)
    assert ep_group_shape(step, 8).prefill_tokens == 2 * 4785
    bounded = ep_group_shape(step, 8, token_budget=5384)
    assert bounded.prefill_tokens == 5384 and bounded.prefill_seqs == 2
    share = 5384 / step.prefill_tokens
    assert bounded.prefill_attn_pairs == pytest.approx(step.prefill_attn_pairs * share)
    # never below an even share; a budget that does not bind changes nothing
    assert ep_group_shape(step, 8, token_budget=100).prefill_tokens == math.ceil(9 * 4785 / 8)
    assert ep_group_shape(step, 8, token_budget=20_000) == ep_group_shape(step, 8)
    # and one long prompt takes at most its rank's budget per step, not the replica's
    waiting = Waiting(0, 0.0, 20_000, 10, 0, False)
    long, short = Prefilling(waiting, 20_000, 0, 0, 0), Prefilling(waiting, 3_000, 0, 0, 0)
    chunks = prompt_chunks([long, short], 43_072, max_chunk=5384)
    assert [take for _, take in chunks] == [5384, 3000]
    assert [take for _, take in prompt_chunks([long, short], 43_072)] == [20_000, 3000]


EAGER = CostParams.defaults().replace(cuda_graphs=False)
LAYOUTS = [
    ("llama-3.1-8b", {"parallel": Parallelism(pipeline=2, link=NVLINK)}),
    ("llama-3.1-8b", {"parallel": Parallelism(pipeline=4, link=NVLINK), "params": EAGER}),
    ("qwen3-30b-a3b", {"parallel": Parallelism(expert=4, link=NVLINK)}),
    ("qwen3-30b-a3b", {"parallel": Parallelism(expert=2, pipeline=2, tensor=2, link=NVLINK)}),
    (
        "gpt-oss-20b",
        {"parallel": Parallelism(expert=4, link=NVLINK), "precision": Precision(weights="mxfp4")},
    ),
    ("llama-3.1-8b", {"offload": ("cpu", 10)}),
    ("llama-3.1-8b", {"offload": ("stream", 10)}),
    ("llama-3.1-8b", {"offload": ("cpu", 0)}),
]


@pytest.mark.parametrize(("name", "layout"), LAYOUTS)
def test_fast_paths_agree_with_the_breakdown(name, layout):
    layout = dict(layout)
    if "offload" in layout:
        mode, gpu_layers = layout.pop("offload")
        host = load_gpu("cpu-server") if mode == "cpu" else None
        layout["offload"] = OffloadPlan(gpu_layers, mode, host, load_link("pcie4"))
    cm = CostModel(CostConfig(load_model(name), H100, **layout))
    shapes = [
        StepShape.uniform(decode_count=1, decode_context=100),
        StepShape.uniform(decode_count=37, decode_context=900),
        StepShape.uniform(
            prefill_count=3,
            prefill_new=500,
            prefill_cached=100,
            decode_count=20,
            decode_context=700,
        ),
        StepShape.uniform(prefill_count=1, prefill_new=4000),
    ]
    for shape in shapes:
        assert cm.price(shape).total_s == pytest.approx(cm.step_time_s(shape), rel=1e-12)
    for seqs, context in ((1, 100), (37, 37 * 900), (256, 256 * 2000)):
        run = cm.decode_run_s(seqs, context, 3)
        for i in range(3):
            step = StepShape(
                decode_seqs=seqs, decode_context_tokens=context + i * seqs, logits_rows=seqs
            )
            assert run[i] == pytest.approx(cm.step_time_s(step), rel=1e-9)


def test_rows_cross_the_network_once_per_remote_node():
    from simulator.costmodel.comm import expected_remote_nodes

    # two nodes, 8 groups of experts, a token in at most 4 groups: it misses the other
    # node only if all 4 groups are on its own: C(4,4)/C(8,4) = 1/70
    assert expected_remote_nodes(2, 8, 8, 4) == pytest.approx(1 - 1 / 70)
    # no group limit, 8 nodes, top-2: 8 (1 - (7/8)^2) nodes touched, 7/8 of them remote
    assert expected_remote_nodes(8, 2) == pytest.approx(8 * (1 - (7 / 8) ** 2) * 7 / 8)
    assert expected_remote_nodes(1, 8) == 0.0
    # the group limit never lets a token reach more nodes than unlimited routing would
    assert expected_remote_nodes(8, 8, 8, 4) < expected_remote_nodes(8, 8)


def test_a_bridge_joins_a_pair_beyond_which_the_cards_use_pcie():
    """PCIe cards talk over PCIe unless bridged (AIConfigurator's A100 PCIe node: no NVLink);
    an NVLink bridge joins two of them: TP2 of bridged A100 PCIe runs its all-reduces over
    the bridge, TP4 and TP8 over PCIe (the slowest hop of their ring)."""
    from simulator.specs.topology import build_placement

    gpu = load_gpu("a100-pcie-80gb")
    assert build_placement(gpu.name, gpu.interconnect, tensor_parallel=2).tp_link().name == (
        "pcie4"
    )
    links = {
        tp: build_placement(
            gpu.name, gpu.interconnect, tensor_parallel=tp, interconnect="nvlink-bridge",
            host_link=gpu.host_link,
        ).tp_link()
        for tp in (2, 4, 8)
    }  # fmt: skip
    assert links[2].name == "nvlink-bridge" and links[2].max_gpus == 2
    assert links[4].name == links[8].name == "pcie4"
    h100 = load_gpu("h100-sxm")  # NVSwitch: no pair limit
    assert build_placement(h100.name, h100.interconnect, tensor_parallel=8).tp_link().name == (
        "nvlink4"
    )
