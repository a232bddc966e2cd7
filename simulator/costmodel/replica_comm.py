"""Communication inside one replica: tensor-parallel all-reduces, the logits all-gather,
expert-parallel dispatch and combine, and pipeline hand-offs (``comm.py`` prices each
collective; ``parallel.py`` describes the layouts).

With an engine calibration that holds the node's NCCL collectives, the attention-data-
parallel groups of one node exchange an MoE layer's tokens as TensorRT-LLM, vLLM and SGLang
do there (the fused MoE path, AIConfigurator's ``MoEDispatch`` on Hopper and 8-GPU
Blackwell nodes): an all-gather of every group's hidden rows before the experts (each GPU
then routes all tokens to its own experts) and a reduce-scatter of the expert outputs after
them, both in half precision and timed from the measured NCCL table. Otherwise, and across
nodes, dispatch and combine are all-to-alls priced from the links."""

from __future__ import annotations

import math

from simulator.costmodel.comm import (
    allgather_s,
    allreduce_s,
    alltoall_across_nodes_s,
    alltoall_s,
    expected_remote_nodes,
    p2p_s,
)
from simulator.costmodel.costs import OpCost
from simulator.costmodel.layers import LayerPlan
from simulator.costmodel.loggrid import LogGrid
from simulator.costmodel.params import CostParams
from simulator.specs.model import ModelSpec
from simulator.specs.topology import ReplicaPlacement

#: Bytes per element of the activations an attention-data-parallel all-gather moves (the
#: engines gather bf16/fp16 rows on Hopper; AIConfigurator's ``CommQuantMode.half``).
HALF_BYTES = 2.0


class ReplicaComm:
    """Prices the collectives of one replica's step (all attributes set on every path)."""

    def __init__(
        self,
        model: ModelSpec,
        plan: LayerPlan,
        placement: ReplicaPlacement,
        params: CostParams,
        dispatch_bytes: float,
        allreduce: LogGrid | None = None,
        nccl: dict[str, LogGrid] | None = None,
    ) -> None:
        self.model, self.plan, self.params = model, plan, params
        self.placement = placement
        self.tp = placement.tensor_parallel
        self.ep = placement.expert_parallel
        self.tp_link = placement.tp_link()
        self.ep_link = placement.ep_link()
        self.pp_link = placement.pp_link()
        # The engine's measured all-reduce by (bytes, GPUs) applies inside one node.
        self.allreduce_grid = None if placement.crosses_nodes("tp") else allreduce
        # The measured NCCL all-gather and reduce-scatter of the node (None: all-to-alls).
        gather = (nccl or {}).get("all_gather"), (nccl or {}).get("reduce_scatter")
        inside = not placement.crosses_nodes("ep")
        self.gather_grids = gather if inside and None not in gather else None
        self.moe_layers = sum(op.layers for op in plan.gemms if op.name == "router")
        #: Bytes per element of the dispatch all-to-all (fp8 when the experts run in fp8).
        self.dispatch_bytes = dispatch_bytes
        # Expert groups spread over nodes: expected remote nodes per token, and the copies
        # then forwarded inside a node (all top-k, a share of them local); 1 node: none.
        self.ep_nodes = 1
        self.ep_remote_nodes = 0.0
        self.ep_local_copies = 0.0
        if self.ep > 1 and model.is_moe and placement.crosses_nodes("ep"):
            per_node = placement.gpus_per_node
            self.ep_nodes = math.ceil(placement.gpus_per_stage / per_node)
            self.ep_remote_nodes = expected_remote_nodes(
                self.ep_nodes,
                model.experts_per_token,
                model.expert_groups,
                model.expert_groups_per_token,
            )
            self.ep_local_copies = model.experts_per_token * (per_node - 1) / per_node

    def token_ops(self, local: int) -> list[OpCost]:
        """Collectives whose size follows the ``local`` tokens of the busiest group."""
        ops = []
        plan = self.plan
        if plan.allreduces_per_layer:
            msg = plan.allreduce_bytes_per_token * local
            n = plan.num_layers * plan.allreduces_per_layer
            grid = self.allreduce_grid
            per = (
                grid(msg, self.tp) if grid else allreduce_s(msg, self.tp, self.tp_link, self.params)
            )
            ops.append(OpCost("tp_allreduce", 0.0, n * msg, n * per, "communication"))
        if self.ep > 1 and self.moe_layers:
            ops.append(self._alltoall(local))
        return ops

    def _alltoall(self, local: int) -> OpCost:
        """Dispatch and combine of every MoE layer: measured all-gather and reduce-scatter
        where the calibration has them (module docstring), else all-to-alls."""
        if self.gather_grids is not None:
            return self._gather_scatter(local)
        return self._all_to_all(local)

    def _gather_scatter(self, local: int) -> OpCost:
        """All-gather of every group's hidden rows and reduce-scatter of the expert outputs:
        ``local`` tokens per group, half precision, over the stage's GPUs."""
        gpus = self.placement.gpus_per_stage
        gathered = local * self.ep * self.model.hidden_size * HALF_BYTES
        gather, scatter = self.gather_grids
        per = gather(gathered, gpus) + scatter(gathered, gpus)
        n = self.moe_layers
        return OpCost("ep_allgather", 0.0, n * 2.0 * gathered, n * per, "communication")

    def _all_to_all(self, local: int) -> OpCost:
        """Dispatch and combine: each token's hidden row to its top-k experts and back.
        Dispatch goes in the experts' GEMM format when it is fp8 (DeepSeek: "dispatch in
        FP8, combine in BF16"); combine returns activations."""
        p, model, act = self.params, self.model, self.plan.activation_bytes
        rows = local * model.experts_per_token * model.hidden_size
        rows *= p.expert_load_imbalance / self.tp
        dispatch, combine = rows * self.dispatch_bytes, rows * act
        if self.ep_nodes > 1:
            # Across nodes, a row crosses the network once per remote node and is forwarded
            # inside the node (DeepEP; DeepSeek-V3 limits a token to 4 nodes).
            node = self.placement.node
            per_copy = local * model.hidden_size * p.expert_load_imbalance / self.tp
            per = sum(
                alltoall_across_nodes_s(
                    per_copy * width,
                    self.ep_remote_nodes,
                    self.ep_local_copies,
                    node.inter_link,
                    node.intra_link,
                    p,
                )
                for width in (self.dispatch_bytes, act)
            )
        else:
            gpus = self.placement.gpus_per_stage
            per = alltoall_s(dispatch, gpus, self.ep_link, p)
            per += alltoall_s(combine, gpus, self.ep_link, p)
        n = self.moe_layers
        return OpCost("ep_alltoall", 0.0, n * (dispatch + combine), n * per, "communication")

    def logits_gather(self, rows: int) -> list[OpCost]:
        """The all-gather of ``rows`` logits rows over the tensor-parallel ranks."""
        if self.tp <= 1:
            return []
        gathered = rows * self.model.vocab_size * self.plan.activation_bytes
        t = allgather_s(gathered, self.tp, self.tp_link, self.params)
        return [OpCost("logits_gather", 0.0, gathered, t, "communication")]

    def p2p_s(self, tokens: int) -> float:
        """One hand-off of ``tokens`` hidden rows between pipeline stages (seconds)."""
        msg = tokens * self.model.hidden_size * self.plan.activation_bytes
        return p2p_s(msg / self.tp, self.pp_link, self.params)
