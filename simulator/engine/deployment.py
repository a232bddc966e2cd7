"""What the engine runs: a deployment of replica groups, compiled once from a scenario.

Everything here is resolved: each group carries its priced cost model, its memory plan, the
parameters of its batching policy, its scheduler limits and, for a prefill pool, the link
its KV caches leave by. The engine builds replicas, routers and the autoscaler from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from simulator.costmodel.memory import MemoryPlan
from simulator.costmodel.shape import StepShape
from simulator.engine.autoscaler import AutoscalePolicy
from simulator.engine.entities import ReplicaConfig
from simulator.policies.base import PolicyParams


class StepPricer(Protocol):
    """The cost model as a replica uses it: one step, or a run of identical decode steps."""

    def step_time_s(self, shape: StepShape) -> float: ...

    def decode_run_s(self, decode_seqs: int, context_tokens: int, n_steps: int) -> np.ndarray: ...


@dataclass(frozen=True)
class KvLink:
    """Where a prefill replica's KV caches go: bandwidth per direction (bytes/s) and latency."""

    bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class ReplicaGroup:
    """``count`` identical replicas."""

    name: str
    #: "serve" (whole requests), "prefill" or "decode" (disaggregated pools).
    role: str
    count: int
    cost_model: StepPricer
    memory: MemoryPlan
    #: Parameters of the batching policy; every replica builds its own policy from them.
    policy: PolicyParams
    config: ReplicaConfig
    #: Longest sequence (prompt + output tokens) the model accepts.
    max_model_len: int
    #: Relative capacity for routing (e.g. decode sequences per second at full batch).
    capacity: float = 1.0
    #: A prefill pool's link to the decode pool.
    kv_link: KvLink | None = None


@dataclass(frozen=True)
class Routing:
    """The router over the replicas that take arrivals, and its options."""

    policy: str = "round_robin"
    options: dict = field(default_factory=dict)
    #: Seed of a router that draws at random.
    seed: int = 0


@dataclass(frozen=True)
class Autoscaling:
    """Replicas serving at the start, and the policy growing and shrinking them."""

    initial_replicas: int
    policy: AutoscalePolicy


@dataclass(frozen=True)
class Deployment:
    """Replica groups behind one router (a disaggregated deployment: a prefill pool taking
    arrivals and a decode pool fed by it)."""

    groups: tuple[ReplicaGroup, ...]
    routing: Routing = Routing()
    autoscaling: Autoscaling | None = None

    @property
    def num_gpus(self) -> int:
        return sum(g.count * g.config.gpus for g in self.groups)
