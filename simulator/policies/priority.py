"""Priority scheduling: continuous batching that admits the most urgent class first.

Waiting requests are considered in order of ``priority`` (larger values are more urgent,
as the workload's request classes define it), then arrival; otherwise it behaves like
``continuous`` (whole-prompt prefill steps).
"""

from __future__ import annotations

from typing import Literal

from simulator.policies.base import (
    ALL_TOKENS,
    BatchPlan,
    PolicyParams,
    ReplicaView,
    admit_in_order,
    register_policy,
)


class PriorityParams(PolicyParams):
    """Continuous batching admitting the most urgent request class first."""

    policy: Literal["priority"] = "priority"


@register_policy(PriorityParams)
class PriorityBatching:
    name = "priority"

    def __init__(self, params: PriorityParams):
        pass

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        if view.waiting:
            order = sorted(view.waiting, key=lambda w: (-w.priority, w.arrival_s, w.index))
            admit, _ = admit_in_order(view, order, view.max_num_batched_tokens, False)
            if admit:
                return BatchPlan(admit=tuple(sorted(admit)), prefill_budget=ALL_TOKENS)
        if view.prefilling:
            return BatchPlan(prefill_budget=ALL_TOKENS)
        return BatchPlan(decode=view.running_seqs > 0)
