"""Read-only views of a replica: its scheduler state as a batching policy sees it (the
waiting queue, the prompts being prefilled), and the load that routers and the autoscaler
read. The views read the replica when asked (nothing is copied per step)."""

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


class PrefillingView(Sequence):
    """Prompt tokens each admitted, partly prefilled sequence can prefill in the next step
    (in order): what it still has to prefill, at most its rank's share of the token budget
    under attention data parallelism (``ReplicaConfig.max_chunk_tokens``)."""

    __slots__ = ("_cap", "_replica")

    def __init__(self, replica: Replica):
        self._replica = replica
        self._cap = replica.cfg.max_chunk_tokens

    def __len__(self) -> int:
        return len(self._replica.prefilling)

    def __getitem__(self, i):  # type: ignore[override]
        todo = self._replica.prefilling[i].todo
        return todo if self._cap is None else min(todo, self._cap)

    def __iter__(self) -> Iterator[int]:
        cap = self._cap
        for p in self._replica.prefilling:
            yield p.todo if cap is None or p.todo <= cap else cap


class SchedulerView:
    """What a batching policy reads of one replica (the attributes of
    ``policies.ReplicaView``), read from the replica when asked."""

    __slots__ = (
        "_replica",
        "max_num_batched_tokens",
        "max_num_seqs",
        "prefilling",
        "ranks",
        "waiting",
    )

    def __init__(self, replica: Replica):
        self._replica = replica
        self.waiting = WaitingView(replica)
        self.prefilling = PrefillingView(replica)
        self.max_num_seqs = replica.cfg.max_num_seqs
        self.max_num_batched_tokens = replica.cfg.max_num_batched_tokens
        self.ranks = replica.cfg.data_parallel_ranks

    @property
    def running_seqs(self) -> int:
        """Sequences decoding (holding KV blocks)."""
        return self._replica.batch.size

    @property
    def free_blocks(self) -> int:
        """Free KV blocks, counting cached prefixes that may be evicted (less the growth due
        to admitted sequences when admission reserves whole sequences)."""
        replica = self._replica
        if replica.cfg.reserve_whole_sequence:
            return replica.kv.free - replica.blocks_promised()
        return replica.kv.free

    @property
    def total_blocks(self) -> int:
        return self._replica.kv.total

    @property
    def watermark_blocks(self) -> int:
        return self._replica.kv.watermark

    @property
    def seqs(self) -> int:
        """Sequences holding a slot: decoding plus partly prefilled."""
        replica = self._replica
        return replica.batch.size + len(replica.prefilling)


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
        self._replica.catch_up()
        return self._replica.outstanding

    @property
    def waiting(self) -> int:
        """Requests queued, not yet admitted."""
        self._replica.catch_up()
        return len(self._replica.waiting)

    @property
    def used_blocks(self) -> int:
        return self._replica.kv.used

    @property
    def total_blocks(self) -> int:
        return self._replica.kv.total

    @property
    def has_work(self) -> bool:
        self._replica.catch_up()
        return self._replica.has_work
