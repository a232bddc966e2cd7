"""How a replica's GPUs share a step: tensor, expert and pipeline parallelism.

Where the GPUs sit is ``simulator/specs/topology.py``; each collective runs over the slowest
link its group crosses (``comm.py`` prices it).

* Tensor parallel: two all-reduces of the hidden rows per layer (ring or tree), and an
  all-gather of the logits.
* Expert parallel (MoE): ``expert_parallel`` groups of ``tensor_parallel`` GPUs per stage.
  Attention, dense MLPs and shared experts run data-parallel (each group takes 1/ep of the
  step's sequences); routed experts are split over the groups, each receiving its share of
  the ``tokens × top_k`` assignments times ``expert_load_imbalance``. Each MoE layer adds a
  dispatch and a combine all-to-all.
* Pipeline parallel: each stage runs ⌈layers / stages⌉ layers (the last one also the LM
  head). The step's sequences are split into ``m = min(pipeline_microbatches, sequences)``
  micro-batches that follow each other through the stages. In steady state (the engine
  keeps all micro-batches in flight, as vLLM's virtual engines do) a sequence gets its next
  token once per round of ``max(m · t_stage, stages · (t_stage + t_p2p))``, where
  ``t_stage`` prices one micro-batch on one stage: with ``m >= stages`` the stages overlap
  fully; with fewer micro-batches (batch 1) the round pays the bubble, the idle stages'
  share ``(stages - m) · t_stage``, and every hand-off between stages. The engine sees one
  replica whose step time is this round.
"""

from __future__ import annotations

import numpy as np

from simulator.errors import UserError
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.topology import NodeSpec, ReplicaPlacement


def pipeline_round_s(microbatches: int, stages: int, t_stage_s, t_p2p_s: float):
    """Time (s) between successive steps of a sequence with ``stages`` pipeline stages and
    ``microbatches`` micro-batches in flight (scalar or numpy array ``t_stage_s``)."""
    busy = microbatches * t_stage_s
    cycle = stages * (t_stage_s + t_p2p_s)
    if isinstance(busy, np.ndarray):
        return np.maximum(busy, cycle)
    return busy if busy > cycle else cycle


def resolve_placement(
    gpu: GpuSpec,
    tensor_parallel: int,
    pipeline_parallel: int,
    expert_parallel: int,
    placement: ReplicaPlacement | None,
    link: LinkSpec | None,
) -> ReplicaPlacement:
    """The given placement (checked against the layout), or one node holding the whole
    replica joined by ``link`` (default: the GPU's own interconnect from the catalog)."""
    tp, pp, ep = tensor_parallel, pipeline_parallel, expert_parallel
    if placement is not None:
        given = (placement.tensor_parallel, placement.pipeline_parallel, placement.expert_parallel)
        if given != (tp, pp, ep):
            raise UserError(
                f"placement: TP{given[0]} PP{given[1]} EP{given[2]} does not match "
                f"TP{tp} PP{pp} EP{ep}"
            )
        if placement.gpus > 1 and placement.tp_link() is None and placement.pp_link() is None:
            raise UserError("placement: a replica of several GPUs needs a link between them")
        return placement
    gpus = tp * pp * ep
    if link is None and gpus > 1:
        link = _gpu_link(gpu, gpus)
    return ReplicaPlacement(tp, pp, ep, NodeSpec(gpus_per_node=gpus, intra_link=link))


def _gpu_link(gpu: GpuSpec, gpus: int) -> LinkSpec:
    """The GPU's interconnect, or its host link (PCIe) for more GPUs than the interconnect
    joins (a bridge joins a pair of cards)."""
    name = gpu.interconnect
    if name:
        try:
            from simulator.specs.catalog import load_link  # optional catalog

            link = load_link(name)
            if link.max_gpus and gpus > link.max_gpus and gpu.host_link not in ("", "none"):
                return load_link(gpu.host_link)
            return link
        except (ImportError, KeyError, UserError):
            pass
    raise UserError(
        f"tensor_parallel: a replica of {gpus} GPUs needs a link between the GPUs; "
        f"{gpu.name} names no known interconnect ({name!r}); pass a link"
    )
