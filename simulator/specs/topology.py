"""Where the GPUs of one replica sit: nodes, the links inside and between them.

A node holds ``gpus_per_node`` GPUs joined by an intra-node link (NVLink/NVSwitch, xGMI or
PCIe); nodes are joined by an inter-node link whose bandwidth is per GPU (one NIC per GPU,
as on DGX/HGX systems). A replica's ``tensor_parallel × expert_parallel ×
pipeline_parallel`` GPUs are numbered with tensor-parallel ranks innermost, then expert
groups, then pipeline stages, and filled node by node. A collective whose group spans
nodes runs at the pace of the slowest link it crosses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.specs.link import LinkSpec


@dataclass(frozen=True)
class NodeSpec:
    """A server: how many GPUs it holds and the links inside and out of it."""

    gpus_per_node: int
    #: Link between GPUs of one node; None for a single-GPU node.
    intra_link: LinkSpec | None = None
    #: Per-GPU network link to other nodes; None when nothing spans nodes.
    inter_link: LinkSpec | None = None


def slowest_link(*links: LinkSpec | None) -> LinkSpec | None:
    """The link of least bandwidth among ``links`` (latency: the largest of them).

    A ring or all-to-all crossing several links moves at the pace of its slowest hop."""
    present = [link for link in links if link is not None]
    if not present:
        return None
    slow = min(present, key=lambda link: link.bandwidth_bytes_per_s)
    latency = max(link.latency_s for link in present)
    if latency == slow.latency_s:
        return slow
    return LinkSpec(slow.name, slow.kind, slow.bandwidth_bytes_per_s, latency, slow.sources)


@dataclass(frozen=True)
class ReplicaPlacement:
    """The GPUs of one model replica laid out on nodes."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    expert_parallel: int = 1
    node: NodeSpec | None = None

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.expert_parallel

    @property
    def gpus_per_stage(self) -> int:
        """GPUs of one pipeline stage: its tensor-parallel ranks times its expert groups."""
        return self.tensor_parallel * self.expert_parallel

    @property
    def gpus_per_node(self) -> int:
        return self.node.gpus_per_node if self.node else self.gpus

    @property
    def nodes(self) -> int:
        """Nodes the replica occupies."""
        return math.ceil(self.gpus / self.gpus_per_node)

    def _spans(self, group_size: int) -> bool:
        """Whether a group of ``group_size`` consecutive ranks crosses a node boundary."""
        return group_size > self.gpus_per_node

    def _link(self, group_size: int) -> LinkSpec | None:
        intra = self.node.intra_link if self.node else None
        if not self._spans(group_size):
            return intra
        return slowest_link(intra, self.node.inter_link if self.node else None)

    def tp_link(self) -> LinkSpec | None:
        """Link of the tensor-parallel all-reduces."""
        return self._link(self.tensor_parallel)

    def ep_link(self) -> LinkSpec | None:
        """Link of the expert-parallel all-to-all among the GPUs of one stage."""
        return self._link(self.gpus_per_stage)

    def pp_link(self) -> LinkSpec | None:
        """Link of the activation hand-off between pipeline stages (the slowest boundary)."""
        return self._link(self.gpus)

    def crosses_nodes(self, group: str) -> bool:
        """Whether the ``"tp"``, ``"ep"`` or ``"pp"`` group spans nodes."""
        size = {"tp": self.tensor_parallel, "ep": self.gpus_per_stage, "pp": self.gpus}[group]
        return self._spans(size)


def build_placement(
    gpu_name: str,
    gpu_interconnect: str,
    *,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    expert_parallel: int = 1,
    gpus_per_node: int | None = None,
    interconnect: str | None = None,
    inter_node_link: str | None = None,
    field_prefix: str = "hardware.",
    field_names: tuple[str, str] = ("interconnect", "inter_node_link"),
    host_link: str = "",
) -> ReplicaPlacement:
    """Place a replica on nodes, loading its links from the catalog.

    ``interconnect`` (default: the GPU's own, ``gpu_interconnect``) joins the GPUs of a node;
    a link that joins fewer GPUs than a node's share of the replica (an NVLink bridge joins
    a pair of PCIe cards) leaves the collectives of more GPUs to the GPUs' ``host_link``
    (PCIe), the slowest hop of their ring. ``inter_node_link`` joins nodes and is required
    once the replica spans more than one node of ``gpus_per_node`` GPUs (default: one node
    holds the whole replica). Errors name ``field_prefix`` + ``field_names`` (scenario keys,
    or command-line flags)."""
    from simulator.errors import UserError
    from simulator.specs.catalog import load_link

    gpus = tensor_parallel * pipeline_parallel * expert_parallel
    per_node = gpus_per_node or gpus
    intra = None
    name = interconnect or gpu_interconnect
    if gpus > 1 and per_node > 1:
        if not name or name == "none":
            raise UserError(
                f"{field_prefix}{field_names[0]}: {gpu_name} has no GPU-to-GPU link; name one for "
                f"a replica of {gpus} GPUs (e.g. pcie4)"
            )
        intra = load_link(name)
        bridged_pairs_only = intra.max_gpus and min(gpus, per_node) > intra.max_gpus
        if bridged_pairs_only and host_link not in ("", "none"):
            intra = load_link(host_link)
    inter = None
    if gpus > per_node:
        if not inter_node_link:
            raise UserError(
                f"{field_prefix}{field_names[1]}: the replica's {gpus} GPUs span "
                f"{math.ceil(gpus / per_node)} nodes of {per_node}; name the network between "
                "them (e.g. infiniband-ndr)"
            )
        inter = load_link(inter_node_link)
    node = NodeSpec(gpus_per_node=per_node, intra_link=intra, inter_link=inter)
    return ReplicaPlacement(tensor_parallel, pipeline_parallel, expert_parallel, node)
