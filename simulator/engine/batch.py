"""The running batch of one replica, as parallel numpy arrays (struct of arrays).

Per-sequence bookkeeping is vectorised because it is touched on every step; the
arrays keep admission order, so the last sequence is the most recently admitted one.

Sequences that produced their last token at the same instant form a *cohort* (the whole
batch after a decode run; the newcomers after a prefill step). Cohorts are contiguous in
admission order, so the time of each sequence's last token is kept per cohort, which
makes recording inter-token gaps one scalar per cohort instead of one per sequence.
"""

from __future__ import annotations

import numpy as np


class RunningBatch:
    """Sequences holding KV blocks on a replica. Only the first ``size`` rows are live."""

    def __init__(self, capacity: int, block_size: int):
        self.size = 0
        self.block_size = block_size
        self.ordinal = np.zeros(capacity, dtype=np.int64)  # request ordinal in the run
        self.context = np.zeros(capacity, dtype=np.int64)  # tokens held in the KV cache
        self.remaining = np.zeros(capacity, dtype=np.int64)  # output tokens still to produce
        self.context_sum = 0  # sum of live contexts (tokens)
        self.blocks_held = 0  # KV blocks held by live sequences
        #: [last_token_s, count] per cohort, oldest first; counts sum to ``size``.
        self.cohorts: list[list] = []

    def append(self, ordinal: int, context: int, remaining: int, last_token_s: float) -> None:
        i = self.size
        self.ordinal[i] = ordinal
        self.context[i] = context
        self.remaining[i] = remaining
        self.size = i + 1
        self.context_sum += context
        self.blocks_held += -(-context // self.block_size)
        cohorts = self.cohorts
        if cohorts and cohorts[-1][0] == last_token_s:
            cohorts[-1][1] += 1
        else:
            cohorts.append([last_token_s, 1])

    def advance(self, steps: int, end_s: float) -> int:
        """Every live sequence produced ``steps`` tokens, the last at ``end_s``.

        Returns the number of KV blocks newly taken by the grown contexts."""
        n = self.size
        ctx = self.context[:n]
        ctx += steps
        self.remaining[:n] -= steps
        self.context_sum += n * steps
        block = self.block_size
        held = int(((ctx + (block - 1)) // block).sum())
        grown = held - self.blocks_held
        self.blocks_held = held
        self.cohorts = [[end_s, n]]
        return grown

    def blocks_needed(self, steps: int) -> int:
        """KV blocks the live sequences would newly take over ``steps`` more tokens each."""
        n = self.size
        block = self.block_size
        ctx = self.context[:n]
        return int(((ctx + (steps + block - 1)) // block).sum()) - self.blocks_held

    def remove(self, keep: np.ndarray) -> None:
        """Keep only rows where ``keep`` (a bool mask over the live rows) is True.

        Only called right after ``advance`` (one cohort), so cohorts stay exact."""
        n = int(keep.sum())
        block = self.block_size
        gone = self.context[: self.size][~keep]
        self.context_sum -= int(gone.sum())
        self.blocks_held -= int(((gone + (block - 1)) // block).sum())
        for arr in (self.ordinal, self.context, self.remaining):
            arr[:n] = arr[: self.size][keep]
        self.size = n
        self.cohorts[-1][1] = n
        if n == 0:
            self.cohorts = []

    def pop_last(self) -> tuple[int, int, int, float, int]:
        """Remove the most recently admitted sequence.

        Returns (ordinal, context, remaining, last_token_s, blocks it held)."""
        self.size -= 1
        i = self.size
        context = int(self.context[i])
        blocks = -(-context // self.block_size)
        self.context_sum -= context
        self.blocks_held -= blocks
        cohort = self.cohorts[-1]
        last_token_s = cohort[0]
        cohort[1] -= 1
        if cohort[1] == 0:
            self.cohorts.pop()
        return int(self.ordinal[i]), context, int(self.remaining[i]), last_token_s, blocks
