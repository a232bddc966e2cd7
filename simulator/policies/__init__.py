"""Batching, routing and preemption planners (pure; no SimPy)."""

from simulator.policies import (  # noqa: F401  (importing registers the policies)
    chunked,
    continuous,
    decode_priority,
    priority,
    static,
)
from simulator.policies.base import (
    ALL_TOKENS,
    BatchingPolicy,
    BatchPlan,
    ReplicaView,
    WaitingItem,
    known_policies,
    make_policy,
    register_policy,
)

__all__ = [
    "ALL_TOKENS",
    "BatchPlan",
    "BatchingPolicy",
    "ReplicaView",
    "WaitingItem",
    "known_policies",
    "make_policy",
    "register_policy",
]
