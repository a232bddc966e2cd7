"""Static batching (FasterTransformer style): a batch is formed from the queue, then run to
the completion of its longest request before the next batch starts.

A batch starts when ``batch_size`` requests wait or the oldest has waited ``max_wait_s``.
Prompts are padded to the longest one in the batch, and sequences that finish early keep
occupying their slot (padding compute) until the whole batch is done.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from simulator.policies.base import (
    ALL_TOKENS,
    BatchPlan,
    PolicyCount,
    PolicyParams,
    ReplicaView,
    admit_in_order,
    register_policy,
)


class StaticParams(PolicyParams):
    """Static batches run to the end of their longest request."""

    policy: Literal["static"] = "static"
    #: Requests per batch, at most max_num_seqs; default: max_num_seqs.
    batch_size: PolicyCount | None = None
    #: Longest time the oldest request waits for a batch to fill (s).
    max_wait_s: Annotated[float, Field(ge=0.0, le=1e9, allow_inf_nan=False)] = 0.1


@register_policy(StaticParams)
class StaticBatching:
    name = "static"

    def __init__(self, params: StaticParams):
        self.batch_size = params.batch_size
        self.max_wait_s = params.max_wait_s

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        if view.running_seqs or view.prefilling:
            return BatchPlan(
                decode=view.running_seqs > 0,
                pad=True,
                prefill_budget=ALL_TOKENS if view.prefilling else 0,
            )
        if not view.waiting:
            return BatchPlan()
        size = min(self.batch_size or view.max_num_seqs, view.max_num_seqs)
        oldest = min(w.arrival_s for w in view.waiting)
        if len(view.waiting) < size and now_s < oldest + self.max_wait_s:
            return BatchPlan(wake_at_s=oldest + self.max_wait_s)
        capped = ReplicaView(
            view.waiting,
            view.prefilling,
            view.running_seqs,
            view.free_blocks,
            view.total_blocks,
            view.watermark_blocks,
            size,
            ALL_TOKENS,
        )
        admit, _ = admit_in_order(capped, view.waiting, ALL_TOKENS, False)
        return BatchPlan(admit=tuple(admit), prefill_budget=ALL_TOKENS, pad=True)
