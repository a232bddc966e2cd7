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
    """Sequences decoding on a replica. Only the first ``size`` rows are live.

    ``blocks_held`` counts KV blocks the sequences own: all blocks of their contexts minus
    the ``shared`` ones they read from the prefix cache (which the cache accounts for)."""

    #: Rows allocated at first; the arrays double as sequences join, up to ``capacity``
    #: (memory follows the sequences actually running, not ``max_num_seqs``).
    INITIAL_ROWS = 64

    def __init__(self, capacity: int, block_size: int):
        self.size = 0
        self.capacity = capacity
        self.block_size = block_size
        rows = min(capacity, self.INITIAL_ROWS)
        self.ordinal = np.zeros(rows, dtype=np.int64)  # request ordinal in the run
        self.context = np.zeros(rows, dtype=np.int64)  # tokens held in the KV cache
        self.remaining = np.zeros(rows, dtype=np.int64)  # output tokens still to produce
        self.shared = np.zeros(rows, dtype=np.int64)  # blocks read from the prefix cache
        self.klass = np.zeros(rows, dtype=np.int64)  # request class index
        self.context_sum = 0  # sum of live contexts (tokens)
        self.shared_sum = 0  # sum of live shared blocks
        self.blocks_held = 0  # KV blocks owned by live sequences
        #: [last_token_s, count] per cohort, oldest first; counts sum to ``size``.
        self.cohorts: list[list] = []

    def append(
        self,
        ordinal: int,
        context: int,
        remaining: int,
        last_token_s: float,
        shared: int = 0,
        klass: int = 0,
    ) -> None:
        i = self.size
        if i == len(self.ordinal):
            self._grow()
        self.ordinal[i] = ordinal
        self.klass[i] = klass
        self.context[i] = context
        self.remaining[i] = remaining
        self.shared[i] = shared
        self.size = i + 1
        self.context_sum += context
        self.shared_sum += shared
        self.blocks_held += -(-context // self.block_size) - shared
        cohorts = self.cohorts
        if cohorts and cohorts[-1][0] == last_token_s:
            cohorts[-1][1] += 1
        else:
            cohorts.append([last_token_s, 1])

    def _grow(self) -> None:
        rows = min(self.capacity, 2 * len(self.ordinal))
        if rows <= len(self.ordinal):
            raise IndexError(f"the batch holds at most {self.capacity} sequences")
        for name in ("ordinal", "context", "remaining", "shared", "klass"):
            old = getattr(self, name)
            grown = np.zeros(rows, dtype=np.int64)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def _own_blocks(self, steps: int = 0) -> int:
        n = self.size
        block = self.block_size
        total = int(((self.context[:n] + (steps + block - 1)) // block).sum())
        return total - self.shared_sum

    def advance(self, steps: int, end_s: float) -> int:
        """Every live sequence produced ``steps`` tokens, the last at ``end_s``.

        Returns the number of KV blocks newly taken by the grown contexts."""
        n = self.size
        self.context[:n] += steps
        self.remaining[:n] -= steps
        self.context_sum += n * steps
        held = self._own_blocks()
        grown = held - self.blocks_held
        self.blocks_held = held
        self.cohorts = [[end_s, n]]
        return grown

    def advance_rows(self, rows: np.ndarray, steps: int, end_s: float) -> int:
        """Like ``advance`` for the sequences selected by the bool mask ``rows`` only (the
        others keep their context); all rows now share one cohort ending at ``end_s``."""
        n = self.size
        self.context[:n][rows] += steps
        self.remaining[:n][rows] -= steps
        self.context_sum += int(rows.sum()) * steps
        held = self._own_blocks()
        grown = held - self.blocks_held
        self.blocks_held = held
        self.cohorts = [[end_s, n]]
        return grown

    def blocks_needed(self, steps: int) -> int:
        """KV blocks the live sequences would newly take over ``steps`` more tokens each."""
        return self._own_blocks(steps) - self.blocks_held

    def take_finished(self) -> tuple[list[int], list[int], list[int]]:
        """Remove the sequences with nothing left to produce (right after ``advance``, when
        the batch is one cohort). Returns their ordinals, contexts and shared blocks."""
        n = self.size
        done = self.remaining[:n] <= 0
        if not done.any():
            return [], [], []
        keep = ~done
        ordinals = self.ordinal[:n][done].tolist()
        contexts = self.context[:n][done].tolist()
        shared = self.shared[:n][done].tolist()
        block = self.block_size
        self.context_sum -= sum(contexts)
        self.shared_sum -= sum(shared)
        self.blocks_held -= sum(-(-c // block) for c in contexts) - sum(shared)
        m = n - len(ordinals)
        for arr in (self.ordinal, self.context, self.remaining, self.shared, self.klass):
            arr[:m] = arr[:n][keep]
        self.size = m
        if m:
            self.cohorts[-1][1] = m
        else:
            self.cohorts = []
        return ordinals, contexts, shared

    def pop_last(self) -> tuple[int, int, int, float, int]:
        """Remove the most recently admitted sequence.

        Returns (ordinal, context, remaining, last_token_s, shared blocks)."""
        self.size -= 1
        i = self.size
        context = int(self.context[i])
        shared = int(self.shared[i])
        self.context_sum -= context
        self.shared_sum -= shared
        self.blocks_held -= -(-context // self.block_size) - shared
        cohort = self.cohorts[-1]
        last_token_s = cohort[0]
        cohort[1] -= 1
        if cohort[1] == 0:
            self.cohorts.pop()
        return int(self.ordinal[i]), context, int(self.remaining[i]), last_token_s, shared
