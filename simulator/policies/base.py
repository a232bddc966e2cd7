"""The planner interface: a policy looks at a read-only view of a replica and plans one step.

Policies are pure: no SimPy, no clock of their own. The engine asks ``plan(view, now_s)``
whenever the batch may change (an arrival, a completion, the end of a prefill) and then
executes the plan, advancing pure-decode stretches in one event when the plan allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simulator.errors import UnknownNameError, UserError

#: A prefill budget without limit: every admitted prompt is prefilled whole in this step.
ALL_TOKENS = 1 << 62


@dataclass(frozen=True, slots=True)
class WaitingItem:
    """A request waiting for admission, as a policy sees it."""

    index: int  # position in the replica's waiting queue
    prompt_tokens: int  # tokens to prefill on admission (after any prefix-cache hit)
    blocks_needed: int  # KV blocks its admission takes
    arrival_s: float
    priority: int = 0  # larger values are more urgent


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """Read-only snapshot of one replica's scheduler state."""

    waiting: Sequence[WaitingItem]
    #: Prompt tokens still to prefill of each admitted, partly prefilled sequence (in order).
    prefilling: Sequence[int]
    running_seqs: int  # sequences decoding (holding KV blocks)
    free_blocks: int  # free KV blocks, counting cached prefixes that may be evicted
    total_blocks: int
    watermark_blocks: int
    max_num_seqs: int
    max_num_batched_tokens: int

    @property
    def seqs(self) -> int:
        """Sequences holding a slot: decoding plus partly prefilled."""
        return self.running_seqs + len(self.prefilling)


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What the next step does.

    ``admit``: waiting-queue positions admitted now (their KV blocks are taken); they join
    the partly prefilled sequences, after those. ``prefill_budget``: prompt tokens this step
    prefills, handed to the partly prefilled sequences in order (the last may get a chunk).
    ``decode``: the running sequences take a decode step (fused with any prefill).
    ``max_steps``: how many identical pure-decode steps the engine may run back to back
    before asking again. ``pad``: static batching: prompts are padded to the longest and
    finished sequences keep computing until the whole batch finishes. An idle plan waits for
    an arrival, or until ``wake_at_s``.
    """

    admit: tuple[int, ...] = ()
    prefill_budget: int = 0
    decode: bool = False
    max_steps: int = ALL_TOKENS
    pad: bool = False
    wake_at_s: float = math.inf

    @property
    def idle(self) -> bool:
        return not self.admit and not self.decode and self.prefill_budget == 0


IDLE = BatchPlan()


class BatchingPolicy(Protocol):
    """One method: plan the next step."""

    name: str

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan: ...


def admit_in_order(
    view: ReplicaView, order: Sequence[WaitingItem], token_budget: int, chunking: bool
) -> tuple[list[int], int]:
    """Admit waiting items in ``order`` while slots, free blocks (above the watermark) and the
    token budget allow; a blocked item stops admission (no overtaking).

    Without ``chunking`` a prompt must fit the budget whole (except the first one of an empty
    step); with it, the last admitted prompt may be cut. Returns the positions admitted and the
    prompt tokens they bring into this step."""
    admitted: list[int] = []
    seqs = view.seqs
    free = view.free_blocks
    tokens = 0
    for item in order:
        if seqs >= view.max_num_seqs or tokens >= token_budget:
            break
        if not chunking and tokens + item.prompt_tokens > token_budget and admitted:
            break
        if free - item.blocks_needed < view.watermark_blocks:
            break
        admitted.append(item.index)
        seqs += 1
        free -= item.blocks_needed
        tokens += item.prompt_tokens
    return admitted, tokens


_REGISTRY: dict[str, Callable[..., BatchingPolicy]] = {}


def register_policy(name: str) -> Callable:
    """Class decorator registering a batching policy under ``name``."""

    def wrap(cls: Callable[..., BatchingPolicy]) -> Callable[..., BatchingPolicy]:
        _REGISTRY[name] = cls
        return cls

    return wrap


def known_policies() -> list[str]:
    return sorted(_REGISTRY)


def make_policy(name: str, **params: object) -> BatchingPolicy:
    """Instantiate the policy registered as ``name``; unknown names and parameters list the
    known ones."""
    if name not in _REGISTRY:
        raise UnknownNameError("batching policy", name, known_policies())
    cls = _REGISTRY[name]
    allowed = tuple(getattr(cls, "PARAMS", ()))
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UserError(
            f"batching policy {name!r} has no parameter {unknown[0]!r}; "
            f"its parameters: {', '.join(allowed) or 'none'}"
        )
    return cls(**params)
