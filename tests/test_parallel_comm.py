"""Communication costs against hand calculation; placement of a replica on nodes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simulator.costmodel import CostParams
from simulator.costmodel.calibration import fit, load_rows
from simulator.costmodel.comm import (
    allreduce_ring_s,
    allreduce_s,
    allreduce_tree_s,
    alltoall_s,
    p2p_s,
)
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu, load_link, load_model
from simulator.specs.link import LinkSpec
from simulator.specs.topology import NodeSpec, ReplicaPlacement, build_placement, slowest_link

LINK = LinkSpec("test", "nvlink", 100e9, 1e-6)
PARAMS = CostParams(
    allreduce_latency_s=10e-6,
    allreduce_bw_efficiency=0.8,
    alltoall_latency_s=20e-6,
    alltoall_bw_efficiency=0.5,
    p2p_latency_s=5e-6,
    p2p_bw_efficiency=0.25,
)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "calibration"


def test_ring_allreduce_by_hand():
    # 4 GPUs, 1 MB: 10 µs base + 2·3 hops of 1 µs + 2·3/4 MB over 80 GB/s.
    expected = 10e-6 + 6e-6 + 1.5e6 / 80e9
    assert allreduce_ring_s(1e6, 4, LINK, PARAMS) == pytest.approx(expected)


def test_tree_allreduce_by_hand():
    # 16 GPUs: 2·log2(16) = 8 hops; bus bytes twice the message.
    expected = 10e-6 + 8e-6 + 2e6 / 80e9
    assert allreduce_tree_s(1e6, 16, LINK, PARAMS) == pytest.approx(expected)


def test_auto_takes_the_faster_algorithm():
    small, large = 4096, 256e6
    n = 64
    ring_small, tree_small = (
        f(small, n, LINK, PARAMS) for f in (allreduce_ring_s, allreduce_tree_s)
    )
    ring_large, tree_large = (
        f(large, 8, LINK, PARAMS) for f in (allreduce_ring_s, allreduce_tree_s)
    )
    assert tree_small < ring_small  # 12 hops instead of 126
    assert ring_large < tree_large  # 8 GPUs: 1.75 instead of 2 message sizes
    assert allreduce_s(small, n, LINK, PARAMS) == tree_small
    assert allreduce_s(large, 8, LINK, PARAMS) == ring_large
    # Two GPUs: same hops, the ring moves half the bytes, so auto is the ring.
    assert allreduce_s(1e6, 2, LINK, PARAMS) == allreduce_ring_s(1e6, 2, LINK, PARAMS)


def test_single_gpu_and_empty_messages_cost_nothing():
    assert allreduce_s(1e6, 1, LINK, PARAMS) == 0.0
    assert allreduce_s(0, 8, LINK, PARAMS) == 0.0
    assert alltoall_s(1e6, 1, LINK, PARAMS) == 0.0


def test_alltoall_by_hand():
    # 8 GPUs, 8 MB each: 7/8 leave the GPU at 50 GB/s after 20 µs + one 1 µs hop.
    expected = 20e-6 + 1e-6 + 7e6 / 50e9
    assert alltoall_s(8e6, 8, LINK, PARAMS) == pytest.approx(expected)


def test_p2p_by_hand():
    assert p2p_s(1e6, LINK, PARAMS) == pytest.approx(5e-6 + 1e-6 + 1e6 / 25e9)


@pytest.mark.skipif(
    not (SHARED / "h200x2_nvlink_allreduce.jsonl").is_file(), reason="shared calibration absent"
)
def test_allreduce_fit_against_shared_measurements_still_works():
    rows = [r for r in load_rows(SHARED / "h200x2_nvlink_allreduce.jsonl") if r["kind"] != "env"]
    models = {"llama-3.2-1b": load_model("llama-3.2-1b")}
    result = fit(rows, models=models, gpu=load_gpu("h200"), link=load_link("nvlink4"))
    errors = [abs(r.error_pct) for r in result.rows]
    assert "allreduce_latency_s" in result.fitted_names
    assert max(errors) < 15.0


def test_placement_links_use_the_slowest_link_crossed():
    nvlink, ib = load_link("nvlink4"), load_link("infiniband-ndr")
    node = NodeSpec(gpus_per_node=8, intra_link=nvlink, inter_link=ib)
    within = ReplicaPlacement(tensor_parallel=8, node=node)
    assert within.tp_link() is nvlink and not within.crosses_nodes("tp")
    across = ReplicaPlacement(tensor_parallel=16, node=node)
    assert across.tp_link().bandwidth_bytes_per_s == ib.bandwidth_bytes_per_s
    assert across.nodes == 2
    # TP inside a node, experts across two nodes: all-reduce on NVLink, all-to-all on IB.
    ep = ReplicaPlacement(tensor_parallel=2, expert_parallel=8, node=node)
    assert ep.tp_link() is nvlink
    assert ep.ep_link().name == "infiniband-ndr"
    assert ep.pp_link().name == "infiniband-ndr"
    slow = slowest_link(nvlink, ib)
    assert slow.bandwidth_bytes_per_s == ib.bandwidth_bytes_per_s
    assert slow.latency_s == max(nvlink.latency_s, ib.latency_s)


def test_build_placement_needs_a_network_to_span_nodes():
    with pytest.raises(UserError, match=r"hardware\.inter_node_link"):
        build_placement("h100-sxm", "nvlink4", tensor_parallel=16, gpus_per_node=8)
    with pytest.raises(UserError, match=r"hardware\.interconnect: rtx-4090"):
        build_placement("rtx-4090", "", tensor_parallel=2)
    p = build_placement(
        "h100-sxm",
        "nvlink4",
        tensor_parallel=8,
        pipeline_parallel=2,
        gpus_per_node=8,
        inter_node_link="infiniband-ndr",
    )
    assert p.gpus == 16 and p.nodes == 2 and not p.crosses_nodes("tp")
    assert p.crosses_nodes("pp")


def test_ring_time_grows_with_group_size_per_hop():
    times = [allreduce_ring_s(1e3, n, LINK, PARAMS) for n in (2, 4, 8)]
    assert times == sorted(times)
    assert times[2] - times[1] == pytest.approx(8e-6, abs=1e-8)  # 4 more hops of 1 µs
    assert math.isclose(times[0], 10e-6 + 2e-6 + 1e3 / 80e9)
