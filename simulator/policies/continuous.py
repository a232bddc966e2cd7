"""Continuous batching that prioritises prefill (Orca / vLLM v0 scheduler).

Every step, waiting requests are admitted in arrival order while the sequence limit, the
per-step token budget and free KV blocks (above a watermark) allow; admitted prompts are
prefilled in a step of their own, during which running sequences do not decode. When
nothing can be admitted, the running sequences decode.
"""

from __future__ import annotations

from simulator.policies.base import BatchPlan, ReplicaView, register_policy


@register_policy("continuous")
class ContinuousBatching:
    name = "continuous"

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        admit: list[int] = []
        seqs = view.running_seqs
        tokens = 0
        free = view.free_blocks
        for item in view.waiting:
            if seqs + 1 > view.max_num_seqs:
                break
            if tokens + item.prompt_tokens > view.max_num_batched_tokens and admit:
                break
            if free - item.blocks_needed < view.watermark_blocks:
                break  # first-come first-served: a blocked head blocks the queue
            admit.append(item.index)
            seqs += 1
            tokens += item.prompt_tokens
            free -= item.blocks_needed
        if admit:
            return BatchPlan(admit=tuple(admit), decode=False)
        return BatchPlan(decode=view.running_seqs > 0)
