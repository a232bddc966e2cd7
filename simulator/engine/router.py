"""Routing of arriving requests across replicas."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simulator.errors import UnknownNameError


class RoundRobinRouter:
    """Sends request i to replica i mod N."""

    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence, request) -> int:
        i = self._next % len(replicas)
        self._next = i + 1
        return i


class LeastOutstandingRouter:
    """Sends each request to the replica with the fewest unfinished requests (ties: lowest id)."""

    name = "least_outstanding"

    def choose(self, replicas: Sequence, request) -> int:
        best = 0
        for i in range(1, len(replicas)):
            if replicas[i].outstanding < replicas[best].outstanding:
                best = i
        return best


ROUTERS: dict[str, Callable[[], object]] = {
    "round_robin": RoundRobinRouter,
    "least_outstanding": LeastOutstandingRouter,
}


def make_router(name: str):
    if name not in ROUTERS:
        raise UnknownNameError("routing policy", name, list(ROUTERS))
    return ROUTERS[name]()
