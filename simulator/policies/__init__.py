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
    PolicyParams,
    ReplicaView,
    WaitingItem,
    batching_params_type,
    known_policies,
    make_policy,
    policy_params,
    register_policy,
)

#: A batching setting: the parameters of one registered policy, chosen by ``policy``.
BatchingParams = batching_params_type()

__all__ = [
    "ALL_TOKENS",
    "BatchPlan",
    "BatchingParams",
    "BatchingPolicy",
    "PolicyParams",
    "ReplicaView",
    "WaitingItem",
    "known_policies",
    "make_policy",
    "policy_params",
    "register_policy",
]
