"""Host memory that preempted sequences' KV caches are swapped to, over the GPUs' host links.

Swapping out or in copies a sequence's whole KV cache; the copy time is charged to the
replica's next step (vLLM's swap preemption). When the swap space is full, preemption
recomputes instead.
"""

from __future__ import annotations

from collections import deque

from simulator.engine.entities import ReplicaConfig, Swapped


class SwapSpace:
    """Swapped-out sequences of one replica (oldest first) and the traffic they cause."""

    def __init__(self, config: ReplicaConfig):
        self._cfg = config
        #: Swapping is possible (the replica preempts by swapping and has a host link).
        self.enabled = config.preemption == "swap"
        self.sequences: deque[Swapped] = deque()
        self.used_bytes = 0.0  # KV bytes held in host memory now
        self.moved_bytes = 0.0  # KV bytes copied out and in over the run
        self._pending_s = 0.0  # copy time not yet charged to a step

    def __len__(self) -> int:
        return len(self.sequences)

    def transfer_s(self, size_bytes: float) -> float:
        """Copy time of a replica's KV over its GPUs' host links, in parallel per GPU."""
        cfg = self._cfg
        return cfg.host_link_latency_s + size_bytes / (cfg.gpus * cfg.host_link_bytes_per_s)

    def swap_out(self, sequence: Swapped) -> bool:
        """Keep ``sequence``'s KV in host memory if it fits (False: it must be recomputed)."""
        size = sequence.context * self._cfg.kv_bytes_per_token
        if not self.enabled or self.used_bytes + size > self._cfg.swap_space_bytes:
            return False
        self.used_bytes += size
        self.moved_bytes += size
        self._pending_s += self.transfer_s(size)
        self.sequences.append(sequence)
        return True

    def swap_in(self) -> Swapped:
        """Bring the oldest swapped sequence back (its blocks must be free)."""
        s = self.sequences.popleft()
        size = s.context * self._cfg.kv_bytes_per_token
        self.used_bytes -= size
        self.moved_bytes += size
        self._pending_s += self.transfer_s(size)
        return s

    def take_pending_s(self) -> float:
        """Copy time to charge to the step about to run (and forget)."""
        pending, self._pending_s = self._pending_s, 0.0
        return pending
