"""Collective communication time between the GPUs of one replica.

Each collective costs a software base latency (a ``CostParams`` field: NCCL's protocol
setup, kernel launch), a per-hop latency of the link times the hops on its critical path,
and its bus bytes over the link's per-direction bandwidth times an achieved fraction.

* All-reduce, ring: ``2(n-1)`` hops, bus bytes ``2(n-1)/n × message`` (NCCL's busbw
  convention). Double binary tree: ``2⌈log2 n⌉`` hops, bus bytes ``2 × message`` (each rank
  receives from two children while reducing). ``"auto"`` takes the faster, as NCCL's tuner
  does: trees win small messages on many GPUs, rings win large ones.
* All-to-all (MoE dispatch/combine): each GPU sends ``(n-1)/n`` of its buffer to the others
  over direct connections, one hop.
* Point-to-point (pipeline stages): one hop, ``bytes / bandwidth``.
"""

from __future__ import annotations

import math

from simulator.costmodel.params import CostParams
from simulator.specs.link import LinkSpec

ALLREDUCE_ALGORITHMS = ("auto", "ring", "tree")


def allreduce_ring_s(num_bytes: float, n_gpus: int, link: LinkSpec, params: CostParams) -> float:
    """Time (s) of a ring all-reduce of ``num_bytes`` over ``n_gpus`` GPUs."""
    if n_gpus <= 1 or num_bytes <= 0:
        return 0.0
    bus_bytes = num_bytes * 2.0 * (n_gpus - 1) / n_gpus
    bus_bw = link.bandwidth_bytes_per_s * params.allreduce_bw_efficiency
    hops = 2 * (n_gpus - 1)
    return params.allreduce_latency_s + hops * link.latency_s + bus_bytes / bus_bw


def allreduce_tree_s(num_bytes: float, n_gpus: int, link: LinkSpec, params: CostParams) -> float:
    """Time (s) of a double-binary-tree all-reduce of ``num_bytes`` over ``n_gpus`` GPUs."""
    if n_gpus <= 1 or num_bytes <= 0:
        return 0.0
    bus_bw = link.bandwidth_bytes_per_s * params.allreduce_bw_efficiency
    hops = 2 * math.ceil(math.log2(n_gpus))
    return params.allreduce_latency_s + hops * link.latency_s + 2.0 * num_bytes / bus_bw


def allreduce_s(
    num_bytes: float,
    n_gpus: int,
    link: LinkSpec,
    params: CostParams,
    algorithm: str = "auto",
) -> float:
    """Time (s) of an all-reduce of ``num_bytes`` over ``n_gpus`` GPUs (ring, tree or the
    faster of the two)."""
    if algorithm == "ring":
        return allreduce_ring_s(num_bytes, n_gpus, link, params)
    if algorithm == "tree":
        return allreduce_tree_s(num_bytes, n_gpus, link, params)
    if algorithm != "auto":
        raise ValueError(f"all-reduce algorithm {algorithm!r}; known: {ALLREDUCE_ALGORITHMS}")
    return min(
        allreduce_ring_s(num_bytes, n_gpus, link, params),
        allreduce_tree_s(num_bytes, n_gpus, link, params),
    )


def allgather_s(num_bytes: float, n_gpus: int, link: LinkSpec, params: CostParams) -> float:
    """Time (s) of a ring all-gather whose result is ``num_bytes`` on every GPU."""
    if n_gpus <= 1 or num_bytes <= 0:
        return 0.0
    bus_bytes = num_bytes * (n_gpus - 1) / n_gpus
    bus_bw = link.bandwidth_bytes_per_s * params.allreduce_bw_efficiency
    return params.allreduce_latency_s + (n_gpus - 1) * link.latency_s + bus_bytes / bus_bw


def alltoall_s(bytes_per_gpu: float, n_gpus: int, link: LinkSpec, params: CostParams) -> float:
    """Time (s) of an all-to-all where each GPU holds ``bytes_per_gpu`` for all destinations.

    The share for its own rank stays local; the rest crosses the link once."""
    if n_gpus <= 1 or bytes_per_gpu <= 0:
        return 0.0
    sent = bytes_per_gpu * (n_gpus - 1) / n_gpus
    bw = link.bandwidth_bytes_per_s * params.alltoall_bw_efficiency
    return params.alltoall_latency_s + link.latency_s + sent / bw


def expected_remote_nodes(
    nodes: int, experts_per_token: int, groups: int = 0, groups_per_token: int = 0
) -> float:
    """Expected number of other nodes one token's routed experts live on.

    Experts spread evenly over ``nodes``. Without group limits the ``experts_per_token``
    experts are independent uniform picks; with group-limited routing (DeepSeek: the
    experts of a token come from at most ``groups_per_token`` of ``groups`` groups, each
    group on one node) the picks are whole groups."""
    if nodes <= 1:
        return 0.0
    if groups and groups_per_token and groups % nodes == 0:
        per_node = groups // nodes
        picks = min(groups_per_token, groups)
        # P(no chosen group on a given node) = C(G - g, M) / C(G, M)
        miss = math.comb(groups - per_node, picks) / math.comb(groups, picks)
    else:
        miss = (1 - 1 / nodes) ** experts_per_token
    touched = nodes * (1 - miss)
    if groups and groups_per_token:  # a group spans nodes / groups nodes when groups < nodes
        touched = min(touched, groups_per_token * max(1.0, nodes / groups))
    return touched * (nodes - 1) / nodes


def alltoall_across_nodes_s(
    row_bytes: float,
    remote_nodes: float,
    local_copies: float,
    inter_link: LinkSpec,
    intra_link: LinkSpec | None,
    params: CostParams,
) -> float:
    """Time (s) of a node-aware all-to-all (DeepEP style): each row crosses the network once
    per remote node it goes to, then is forwarded to its experts' GPUs inside the node.

    ``row_bytes`` is one GPU's bytes per copy of all its rows; ``remote_nodes`` the expected
    remote nodes per row; ``local_copies`` the copies forwarded over the intra-node link."""
    if row_bytes <= 0:
        return 0.0
    inter_bw = inter_link.bandwidth_bytes_per_s * params.alltoall_bw_efficiency
    time = params.alltoall_latency_s + inter_link.latency_s + row_bytes * remote_nodes / inter_bw
    if intra_link is not None and local_copies > 0:
        intra_bw = intra_link.bandwidth_bytes_per_s * params.alltoall_bw_efficiency
        time += intra_link.latency_s + row_bytes * local_copies / intra_bw
    return time


def p2p_s(num_bytes: float, link: LinkSpec, params: CostParams) -> float:
    """Time (s) to send ``num_bytes`` from one GPU to the next (pipeline stages)."""
    if num_bytes <= 0:
        return 0.0
    bw = link.bandwidth_bytes_per_s * params.p2p_bw_efficiency
    return params.p2p_latency_s + link.latency_s + num_bytes / bw
