"""Routing of arriving requests across replicas (pure planners: they read replica load).

Routers see a read-only ``ReplicaLoad`` of each replica and choose a position in the list
of replicas serving now (autoscaling changes that list). ``weights`` give each replica's
relative capacity (a heterogeneous fleet routes more to faster replicas); all 1 when alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from simulator.errors import UnknownNameError


class ReplicaLoad(Protocol):
    """What a router reads of a replica."""

    @property
    def replica_id(self) -> int: ...

    @property
    def outstanding(self) -> int:
        """Requests routed to it and not finished."""
        ...

    @property
    def used_blocks(self) -> int: ...

    @property
    def total_blocks(self) -> int: ...


class Router:
    name = "router"

    def __init__(self, weights: Sequence[float], seed: int = 0, **options: object):
        self.weights = np.asarray(weights, dtype=float)

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        raise NotImplementedError

    def _least_loaded(self, replicas: Sequence[ReplicaLoad], candidates: Sequence[int]) -> int:
        """Fewest outstanding requests per unit of capacity (ties: lowest index)."""
        w = self.weights
        return min(candidates, key=lambda i: (replicas[i].outstanding / w[i], i))


class RoundRobinRouter(Router):
    """Request i goes to replica i mod N, or in proportion to capacity (smooth weighted
    round robin, as nginx does)."""

    name = "round_robin"

    def __init__(self, weights: Sequence[float], seed: int = 0, **options: object):
        super().__init__(weights)
        self._current = np.zeros(len(self.weights))
        self._uniform = bool(np.all(self.weights == self.weights[0]))
        self._next = 0

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        if self._uniform:
            i = self._next % len(replicas)
            self._next = i + 1
            return i
        self._current += self.weights
        i = int(np.argmax(self._current))
        self._current[i] -= self.weights.sum()
        return i


class RandomRouter(Router):
    """Each request to a replica drawn at random, in proportion to capacity."""

    name = "random"

    def __init__(self, weights: Sequence[float], seed: int = 0, **options: object):
        super().__init__(weights)
        self._rng = np.random.default_rng([seed, 0x5EED])
        self._p = self.weights / self.weights.sum()

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        if len(replicas) != len(self._p):  # a changing fleet (autoscaling): uniform
            return int(self._rng.integers(len(replicas)))
        return int(self._rng.choice(len(replicas), p=self._p))


class LeastOutstandingRouter(Router):
    """To the replica with the fewest unfinished requests per unit of capacity."""

    name = "least_outstanding"

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        return self._least_loaded(replicas, range(len(replicas)))


class LeastKvLoadRouter(Router):
    """To the replica whose KV cache is least full (ties: fewest outstanding)."""

    name = "least_kv"

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        def load(i: int) -> tuple[float, float, int]:
            r = replicas[i]
            total = r.total_blocks or 1
            return (r.used_blocks / total, r.outstanding / self.weights[i], i)

        return min(range(len(replicas)), key=load)


class PrefixAffinityRouter(Router):
    """A request sharing a prefix (a conversation's later turn, a system prompt) goes to the
    replica that served that prefix last, where its KV blocks are cached; others go to the
    least loaded replica."""

    name = "prefix_affinity"

    def __init__(self, weights: Sequence[float], seed: int = 0, **options: object):
        super().__init__(weights)
        self._home: dict[int, int] = {}

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        prefix = request.prefix_id
        home = self._home.get(prefix) if prefix >= 0 else None
        for i, replica in enumerate(replicas):
            if replica.replica_id == home:
                return i
        i = self._least_loaded(replicas, range(len(replicas)))
        if prefix >= 0:
            self._home[prefix] = replicas[i].replica_id
        return i


class LengthAwareRouter(Router):
    """Short and long prompts to separate replica groups, so long prefills do not stall
    short requests; least loaded within the group."""

    name = "length_aware"

    def __init__(
        self,
        weights: Sequence[float],
        seed: int = 0,
        *,
        long_prompt_tokens: int = 2048,
        long_replica_fraction: float = 0.5,
        **options: object,
    ):
        super().__init__(weights)
        n = len(self.weights)
        n_long = min(n - 1, max(1, round(n * long_replica_fraction))) if n > 1 else 0
        self._short = list(range(n - n_long)) or [0]
        self._long = list(range(n - n_long, n)) or [0]
        self._threshold = long_prompt_tokens

    def choose(self, replicas: Sequence[ReplicaLoad], request) -> int:
        group = self._long if request.prompt_tokens >= self._threshold else self._short
        return self._least_loaded(replicas, group)


ROUTERS: dict[str, Callable[..., Router]] = {
    cls.name: cls
    for cls in (
        RoundRobinRouter,
        RandomRouter,
        LeastOutstandingRouter,
        LeastKvLoadRouter,
        PrefixAffinityRouter,
        LengthAwareRouter,
    )
}


def known_routers() -> list[str]:
    return sorted(ROUTERS)


def make_router(name: str, weights: Sequence[float], seed: int = 0, **options: object) -> Router:
    """The router registered as ``name`` over replicas of the given relative capacities."""
    if name not in ROUTERS:
        raise UnknownNameError("routing policy", name, known_routers())
    return ROUTERS[name](weights, seed, **options)
