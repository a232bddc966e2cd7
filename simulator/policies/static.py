"""Static batching (FasterTransformer style): a batch is formed from the queue, then run to
the completion of its longest request before the next batch starts.

A batch starts when ``batch_size`` requests wait or the oldest has waited ``max_wait_s``.
Prompts are padded to the longest one in the batch, and sequences that finish early keep
occupying their slot (padding compute) until the whole batch is done.
"""

from __future__ import annotations

from simulator.policies.base import (
    ALL_TOKENS,
    BatchPlan,
    ReplicaView,
    admit_in_order,
    register_policy,
)


@register_policy("static")
class StaticBatching:
    name = "static"
    PARAMS = ("batch_size", "max_wait_s")

    def __init__(self, batch_size: int | None = None, max_wait_s: float = 0.1):
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.batch_size = batch_size  # default: max_num_seqs
        self.max_wait_s = max_wait_s

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
