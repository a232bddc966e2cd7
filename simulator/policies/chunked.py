"""Chunked prefill with a per-step token budget (Sarathi-Serve "stall-free" batching,
DeepSpeed-FastGen "Dynamic SplitFuse", vLLM's chunked prefill).

Every step carries all running decodes first; the rest of the token budget goes to prompts,
continuing partly prefilled ones before admitting new ones, and the last prompt is cut into
a chunk that fills the budget. Decodes therefore never stall behind a long prompt.

With ``split_prompts: false`` prompts join a step only whole (in-flight batching without
chunked context: TensorRT-LLM's default), each on an attention-data-parallel rank with room
for it under its own share of the budget; a prompt that fits nowhere waits for the next step.
"""

from __future__ import annotations

from typing import Literal

from simulator.policies.base import (
    BatchPlan,
    PolicyParams,
    ReplicaView,
    StepTokens,
    admit_in_order,
    pack_whole_prompts,
    rank_rooms,
    rank_share,
    register_policy,
)


class ChunkedParams(PolicyParams):
    """Chunked prefill: decodes and prompt chunks share a per-step token budget."""

    policy: Literal["chunked"] = "chunked"
    #: Token budget per step (decodes + prompt chunks), at most max_num_batched_tokens;
    #: default: max_num_batched_tokens.
    chunk_size: StepTokens | None = None
    #: Cut the last prompt to fill the budget (false: prompts join a step only whole, each
    #: on one attention-data-parallel rank with room for it).
    split_prompts: bool = True


@register_policy(ChunkedParams)
class ChunkedPrefill:
    name = "chunked"

    def __init__(self, params: ChunkedParams):
        self.chunk_size = params.chunk_size
        self.split_prompts = params.split_prompts

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        budget = self.chunk_size or view.max_num_batched_tokens
        if not self.split_prompts:
            rooms = rank_rooms(budget, view.ranks, view.running_seqs)
            share = rank_share(budget, view.ranks)
            admit, placed = pack_whole_prompts(view, view.waiting, rooms, share)
            return BatchPlan(
                admit=tuple(admit), prefill_budget=placed, decode=view.running_seqs > 0
            )
        left = budget - view.running_seqs
        pending = sum(view.prefilling)
        admit: list[int] = []
        if left > pending and view.waiting:
            admit, _ = admit_in_order(view, view.waiting, left - pending, True)
        prefill = left if (pending or admit) and left > 0 else 0
        return BatchPlan(
            admit=tuple(admit), prefill_budget=max(prefill, 0), decode=view.running_seqs > 0
        )
