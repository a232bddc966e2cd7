"""Batching, routing and preemption planners (pure; no SimPy)."""

from simulator.policies import continuous as _continuous  # noqa: F401  (registers "continuous")
from simulator.policies.base import (
    BatchingPolicy,
    BatchPlan,
    ReplicaView,
    WaitingItem,
    known_policies,
    make_policy,
    register_policy,
)

__all__ = [
    "BatchPlan",
    "BatchingPolicy",
    "ReplicaView",
    "WaitingItem",
    "known_policies",
    "make_policy",
    "register_policy",
]
