"""The running batch of one replica, as parallel numpy arrays (struct of arrays).

Per-sequence bookkeeping is vectorised because it is touched on every step; the
arrays keep admission order, so the last sequence is the most recently admitted one.
"""

from __future__ import annotations

import numpy as np


class RunningBatch:
    """Sequences holding KV blocks on a replica. Only the first ``size`` rows are live."""

    def __init__(self, capacity: int):
        self.size = 0
        self.ordinal = np.zeros(capacity, dtype=np.int64)  # request ordinal in the run
        self.context = np.zeros(capacity, dtype=np.int64)  # tokens held in the KV cache
        self.remaining = np.zeros(capacity, dtype=np.int64)  # output tokens still to produce
        self.last_token_s = np.zeros(capacity, dtype=np.float64)
        self.blocks = np.zeros(capacity, dtype=np.int64)  # KV blocks held

    def append(self, ordinal: int, context: int, remaining: int, last_token_s: float, blocks: int):
        i = self.size
        self.ordinal[i] = ordinal
        self.context[i] = context
        self.remaining[i] = remaining
        self.last_token_s[i] = last_token_s
        self.blocks[i] = blocks
        self.size = i + 1

    def remove(self, keep: np.ndarray) -> None:
        """Keep only rows where ``keep`` (a bool mask over the live rows) is True."""
        n = int(keep.sum())
        for arr in (self.ordinal, self.context, self.remaining, self.last_token_s, self.blocks):
            arr[:n] = arr[: self.size][keep]
        self.size = n

    def pop_last(self) -> tuple[int, int, int, float, int]:
        """Remove and return the most recently admitted sequence."""
        self.size -= 1
        i = self.size
        return (
            int(self.ordinal[i]),
            int(self.context[i]),
            int(self.remaining[i]),
            float(self.last_token_s[i]),
            int(self.blocks[i]),
        )
