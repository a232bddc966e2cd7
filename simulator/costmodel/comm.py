"""Collective communication time between the GPUs of one tensor-parallel group."""

from __future__ import annotations

from simulator.costmodel.params import CostParams
from simulator.specs.link import LinkSpec


def allreduce_s(num_bytes: float, n_gpus: int, link: LinkSpec, params: CostParams) -> float:
    """Time (s) of a ring all-reduce of ``num_bytes`` over ``n_gpus`` GPUs.

    Bus traffic is ``2(n-1)/n`` times the message (NCCL's busbw convention); the bus runs at
    ``allreduce_bw_efficiency`` of the link's per-direction bandwidth, after a fixed latency.
    """
    if n_gpus <= 1 or num_bytes <= 0:
        return 0.0
    bus_bytes = num_bytes * 2.0 * (n_gpus - 1) / n_gpus
    bus_bw = link.bandwidth_bytes_per_s * params.allreduce_bw_efficiency
    return params.allreduce_latency_s + bus_bytes / bus_bw


def allgather_s(num_bytes: float, n_gpus: int, link: LinkSpec, params: CostParams) -> float:
    """Time (s) of an all-gather whose result is ``num_bytes`` on every GPU."""
    if n_gpus <= 1 or num_bytes <= 0:
        return 0.0
    bus_bytes = num_bytes * (n_gpus - 1) / n_gpus
    bus_bw = link.bandwidth_bytes_per_s * params.allreduce_bw_efficiency
    return params.allreduce_latency_s + bus_bytes / bus_bw
