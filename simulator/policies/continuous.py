"""Continuous batching that prioritises prefill (Orca / vLLM v0 scheduler).

Every step, waiting requests are admitted in arrival order while the sequence limit, the
per-step token budget and free KV blocks (above a watermark) allow; admitted prompts are
prefilled whole in a step of their own, during which running sequences do not decode.
A prompt longer than the whole budget is admitted alone and prefilled in a step of its own
(SGLang prefills such a prompt in budget-sized chunks, also apart from decodes: the same
work, split over several steps). When nothing can be admitted, the running sequences decode.
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


class ContinuousParams(PolicyParams):
    """Continuous batching, prompts prefilled whole in steps of their own."""

    policy: Literal["continuous"] = "continuous"


#: The plans that carry no admission (plans are immutable: one of each serves every step).
_PREFILL = BatchPlan(prefill_budget=ALL_TOKENS)
_DECODE = BatchPlan(decode=True)
_IDLE = BatchPlan()


@register_policy(ContinuousParams)
class ContinuousBatching:
    name = "continuous"

    def __init__(self, params: ContinuousParams):
        pass

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        if view.waiting:
            admit, _ = admit_in_order(view, view.waiting, view.max_num_batched_tokens, False)
            if admit:
                return BatchPlan(admit=tuple(admit), prefill_budget=ALL_TOKENS)
        if view.prefilling:
            return _PREFILL
        return _DECODE if view.running_seqs > 0 else _IDLE
