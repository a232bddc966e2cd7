"""The planner interface: a policy looks at a read-only view of a replica and plans one step.

Policies are pure: no SimPy, no clock of their own. The engine asks ``plan(view, now_s)``
whenever the batch may change (an arrival, a completion, the end of a prefill) and then
executes the plan, advancing pure-decode stretches in one event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simulator.errors import UnknownNameError


@dataclass(frozen=True, slots=True)
class WaitingItem:
    """A request waiting for admission, as a policy sees it."""

    index: int  # position in the replica's waiting queue
    prompt_tokens: int  # tokens still to prefill (prompt, or prompt + generated after recompute)
    blocks_needed: int  # KV blocks its prefill needs
    arrival_s: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """Read-only snapshot of one replica's scheduler state."""

    waiting: Sequence[WaitingItem]
    running_seqs: int  # sequences holding KV blocks (decoding)
    free_blocks: int
    total_blocks: int
    watermark_blocks: int
    max_num_seqs: int
    max_num_batched_tokens: int


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What the next step does.

    ``admit`` lists waiting-queue positions whose whole prompts are prefilled in this step.
    ``decode`` says whether the running sequences take a decode step (alone or fused
    with the prefills). An empty plan (no admits, no decode) means: wait for work.
    """

    admit: tuple[int, ...] = ()
    decode: bool = False

    @property
    def idle(self) -> bool:
        return not self.admit and not self.decode


class BatchingPolicy(Protocol):
    """One method: plan the next step."""

    name: str

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan: ...


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
    """Instantiate the policy registered as ``name``; unknown names list the known ones."""
    if name not in _REGISTRY:
        raise UnknownNameError("batching policy", name, known_policies())
    return _REGISTRY[name](**params)
