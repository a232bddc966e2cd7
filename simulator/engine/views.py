"""Read-only views of a replica: the waiting queue as a batching policy sees it, and the
load that routers and the autoscaler read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from simulator.policies import WaitingItem

if TYPE_CHECKING:
    from simulator.engine.replica import Replica


class WaitingView(Sequence):
    """Lazy read-only view of a replica's waiting queue (items built on access)."""

    __slots__ = ("_replica",)

    def __init__(self, replica: Replica):
        self._replica = replica

    def __len__(self) -> int:
        return len(self._replica.waiting)

    def __getitem__(self, i):  # type: ignore[override]
        return self._replica.waiting_item(i, self._replica.waiting[i])

    def __iter__(self) -> Iterator[WaitingItem]:
        replica = self._replica
        for i, w in enumerate(replica.waiting):
            yield replica.waiting_item(i, w)


class ReplicaStatus:
    """A read-only view of one replica's load: what routers and the autoscaler see."""

    __slots__ = ("_replica",)

    def __init__(self, replica: Replica):
        self._replica = replica

    @property
    def replica_id(self) -> int:
        return self._replica.replica_id

    @property
    def outstanding(self) -> int:
        """Requests routed here and not finished."""
        return self._replica.outstanding

    @property
    def waiting(self) -> int:
        """Requests queued, not yet admitted."""
        return len(self._replica.waiting)

    @property
    def used_blocks(self) -> int:
        return self._replica.kv.used

    @property
    def total_blocks(self) -> int:
        return self._replica.kv.total

    @property
    def has_work(self) -> bool:
        return self._replica.has_work
