"""Chunked prefill with a per-step token budget (Sarathi-Serve "stall-free" batching,
DeepSpeed-FastGen "Dynamic SplitFuse", vLLM's chunked prefill).

Every step carries all running decodes first; the rest of the token budget goes to prompts,
continuing partly prefilled ones before admitting new ones, and the last prompt is cut into
a chunk that fills the budget. Decodes therefore never stall behind a long prompt.
"""

from __future__ import annotations

from simulator.policies.base import BatchPlan, ReplicaView, admit_in_order, register_policy


@register_policy("chunked")
class ChunkedPrefill:
    name = "chunked"
    PARAMS = ("chunk_size",)

    def __init__(self, chunk_size: int | None = None):
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        #: Token budget per step (decodes + prompt chunks); default: max_num_batched_tokens.
        self.chunk_size = chunk_size

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        budget = self.chunk_size or view.max_num_batched_tokens
        left = budget - view.running_seqs
        pending = sum(view.prefilling)
        admit: list[int] = []
        if left > pending and view.waiting:
            admit, _ = admit_in_order(view, view.waiting, left - pending, True)
        prefill = left if (pending or admit) and left > 0 else 0
        return BatchPlan(
            admit=tuple(admit), prefill_budget=max(prefill, 0), decode=view.running_seqs > 0
        )
