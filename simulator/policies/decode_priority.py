"""Decode-priority scheduling: running sequences never wait behind more than a bounded
amount of prefill work.

Prefill and decode run in separate steps. A prefill step processes at most ``chunk_size``
prompt tokens (long prompts are split), and after ``max_prefill_steps`` prefill steps in a
row the running sequences take a decode step, so no decode waits longer than that many
bounded prefill steps.
"""

from __future__ import annotations

from typing import Literal

from simulator.policies.base import (
    ALL_TOKENS,
    BatchPlan,
    PolicyCount,
    PolicyParams,
    ReplicaView,
    StepTokens,
    admit_in_order,
    register_policy,
)


class DecodePriorityParams(PolicyParams):
    """Prefill steps of bounded size; decodes wait behind at most a few."""

    policy: Literal["decode_priority"] = "decode_priority"
    #: Most prompt tokens of one prefill step (longer prompts are split), at most
    #: max_num_batched_tokens.
    chunk_size: StepTokens = 512
    #: Prefill steps in a row before the running sequences take a decode step.
    max_prefill_steps: PolicyCount = 1


@register_policy(DecodePriorityParams)
class DecodePriority:
    name = "decode_priority"

    def __init__(self, params: DecodePriorityParams):
        self.chunk_size = params.chunk_size
        self.max_prefill_steps = params.max_prefill_steps
        self._prefill_steps = 0  # prefill steps since the last decode step

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan:
        must_decode = view.running_seqs > 0 and self._prefill_steps >= self.max_prefill_steps
        if not must_decode:
            pending = sum(view.prefilling)
            admit: list[int] = []
            if pending < self.chunk_size and view.waiting:
                admit, _ = admit_in_order(view, view.waiting, self.chunk_size - pending, True)
            if pending or admit:
                self._prefill_steps += 1
                return BatchPlan(admit=tuple(admit), prefill_budget=self.chunk_size)
        if view.running_seqs == 0:
            return BatchPlan()
        self._prefill_steps = 0
        waiting_work = bool(view.prefilling) or bool(view.waiting)
        return BatchPlan(decode=True, max_steps=1 if waiting_work else ALL_TOKENS)
