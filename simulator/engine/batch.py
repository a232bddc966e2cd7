"""The running batch of one replica: its sequences in admission order, and their KV blocks.

Every live sequence of a batch produces one token per decode step, so the batch keeps one
clock, ``clock``: the tokens each live sequence has produced since the batch was created.
A sequence is stored by when it joined: its context is ``base + clock`` and it produces its
last token when the clock reaches ``end``. A run of decode steps then advances the whole
batch in O(1) (the clock moves), the shortest request is the smallest ``end``, and the KV
blocks the contexts newly take are counted from how many sequences sit at each offset
within a block (``block_size`` counters), not sequence by sequence. A static batch keeps
its finished sequences as padding: their context stops at ``base + end``.

Sequences that produced their last token at the same instant form a *cohort* (the whole
batch after a decode run; the newcomers after a prefill step). Cohorts are contiguous in
admission order, so the time of each sequence's last token is kept per cohort, which makes
recording inter-token gaps one scalar per cohort instead of one per sequence.
"""

from __future__ import annotations

import math
from itertools import compress

import numpy as np


class RunningBatch:
    """Sequences decoding on a replica (``size`` of them; at most ``capacity``).

    ``blocks_held`` counts KV blocks the sequences own: all blocks of their contexts minus
    the ``shared`` ones they read from the prefix cache (which the cache accounts for)."""

    def __init__(self, capacity: int, block_size: int):
        self.size = 0
        self.capacity = capacity
        self.block_size = block_size
        self.clock = 0  # tokens produced by every live sequence since the batch began
        self.ordinal: list[int] = []  # request ordinal in the run
        self.base: list[int] = []  # context minus the clock when it joined (tokens)
        self.end: list[int] = []  # clock value of its last token
        self.shared: list[int] = []  # blocks read from the prefix cache
        self.klass: list[int] = []  # request class index
        self.live = 0  # sequences still producing tokens (the rest: a static batch's padding)
        self.context_sum = 0  # sum of contexts (tokens)
        self.shared_sum = 0  # sum of shared blocks
        self.blocks_held = 0  # KV blocks owned by the sequences
        #: Blocks the sequences' contexts fill once every output is produced (shared included).
        self.final_blocks = 0
        #: Live sequences per ``base mod block_size``: which of them need a new block next.
        self._offsets = [0] * block_size
        self._min_end: float | None = math.inf  # smallest ``end`` of a live sequence
        self._retired: list[int] = []  # rows whose last token came in the last advance
        self._padding = 0  # sequences past their last token (until taken out)
        #: [last_token_s, count] per cohort, oldest first; counts sum to ``size``.
        self.cohorts: list[list] = []

    # ----------------------------------------------------------------- reading
    @property
    def shortest(self) -> int:
        """Tokens the live sequence closest to its end still produces."""
        if self._min_end is None:
            self._min_end = self._live_min_end()
        return self._min_end - self.clock

    def context(self, row: int) -> int:
        """Tokens in the KV cache of the sequence at ``row``."""
        end = self.end[row]
        return self.base[row] + (self.clock if self.clock < end else end)

    def remaining(self, row: int) -> int:
        """Output tokens the sequence at ``row`` still produces."""
        left = self.end[row] - self.clock
        return left if left > 0 else 0

    @property
    def blocks_to_grow(self) -> int:
        """KV blocks the sequences still take before their last token."""
        return self.final_blocks - self.shared_sum - self.blocks_held

    def live_rows(self) -> np.ndarray:
        """Bool mask of the sequences still producing tokens (a static batch's padding not)."""
        clock = self.clock
        return np.array([e > clock for e in self.end], dtype=bool)

    # ---------------------------------------------------------------- changing
    def append(
        self,
        ordinal: int,
        context: int,
        remaining: int,
        last_token_s: float,
        shared: int = 0,
        klass: int = 0,
    ) -> None:
        if self.size >= self.capacity:
            raise IndexError(f"the batch holds at most {self.capacity} sequences")
        base = context - self.clock
        end = self.clock + remaining
        self.ordinal.append(ordinal)
        self.base.append(base)
        self.end.append(end)
        self.shared.append(shared)
        self.klass.append(klass)
        self.size += 1
        self.context_sum += context
        self.shared_sum += shared
        self.blocks_held += -(-context // self.block_size) - shared
        self.final_blocks += -(-(context + max(remaining, 0)) // self.block_size)
        if remaining > 0:
            self.live += 1
            self._offsets[base % self.block_size] += 1
            if self._min_end is not None and end < self._min_end:
                self._min_end = end
        else:
            self._padding += 1
        cohorts = self.cohorts
        if cohorts and cohorts[-1][0] == last_token_s:
            cohorts[-1][1] += 1
        else:
            cohorts.append([last_token_s, 1])

    def blocks_needed(self, steps: int) -> int:
        """KV blocks the live sequences would newly take over ``steps`` more tokens each."""
        block = self.block_size
        whole, part = divmod(steps, block)
        grown = self.live * whole
        if part:
            # a sequence takes a block on the token after its context fills one: at the
            # j-th next token (j from 0 to part - 1) those with base % block equal to
            # (-clock - j) % block, a window of offsets ending at (-clock) % block
            offsets = self._offsets
            last = -self.clock % block
            first = last - part + 1
            if first >= 0:
                grown += sum(offsets[first : last + 1])
            else:
                grown += sum(offsets[: last + 1]) + sum(offsets[first + block :])
        return grown

    def advance(self, steps: int, end_s: float) -> int:
        """Every live sequence produced ``steps`` tokens (no more than the shortest needs),
        the last at ``end_s``; all sequences now share one cohort ending at ``end_s``.

        Returns the number of KV blocks newly taken by the grown contexts."""
        last = steps >= self.shortest  # the shortest request produces its last token
        grown = self.blocks_needed(steps)
        self.blocks_held += grown
        self.context_sum += self.live * steps
        self.clock += steps
        cohorts = self.cohorts
        if len(cohorts) == 1:
            cohorts[0][0] = end_s
        elif self.size:
            self.cohorts = [[end_s, self.size]]
        if last:
            self._retire()
        return grown

    def _retire(self) -> None:
        """Sequences whose last token has come stop growing (leave the live counts)."""
        clock, block = self.clock, self.block_size
        ends, offsets = self.end, self._offsets
        row = -1
        count = ends.count(clock)
        for _ in range(count):
            row = ends.index(clock, row + 1)
            offsets[self.base[row] % block] -= 1
            self._retired.append(row)
        self.live -= count
        self._padding = self.size - self.live
        self._min_end = None  # found when asked (``take_finished`` usually comes first)

    def _live_min_end(self) -> float:
        """Smallest ``end`` of a live sequence (``math.inf`` if none)."""
        if not self.live:
            return math.inf
        if not self._padding:
            return min(self.end)
        clock = self.clock
        return min(e for e in self.end if e > clock)

    def take_finished(self) -> tuple[list[int], list[int], list[int]]:
        """Remove the sequences with nothing left to produce (right after ``advance``, when
        the batch is one cohort). Returns their ordinals, contexts and shared blocks."""
        if not self._padding:
            return [], [], []
        clock = self.clock
        ends = self.end
        if len(self._retired) == self._padding:  # all retired by the last advance
            done = self._retired
            if len(done) == 1:
                return self._take_row(done[0])
        else:
            done = [i for i, e in enumerate(ends) if e <= clock]
        self._retired = []
        ordinals = [self.ordinal[i] for i in done]
        contexts = [self.base[i] + ends[i] for i in done]
        shared = [self.shared[i] for i in done]
        block = self.block_size
        self.context_sum -= sum(contexts)
        self.shared_sum -= sum(shared)
        finished_blocks = sum(-(-c // block) for c in contexts)
        self.blocks_held -= finished_blocks - sum(shared)
        self.final_blocks -= finished_blocks
        if len(done) == self.size:
            for column in (self.ordinal, self.base, self.end, self.shared, self.klass):
                column.clear()
        elif len(done) <= 8:  # a few: delete them, last first
            for column in (self.ordinal, self.base, self.end, self.shared, self.klass):
                for row in reversed(done):
                    del column[row]
        else:
            keep = [e > clock for e in ends]
            for name in ("ordinal", "base", "end", "shared", "klass"):
                setattr(self, name, list(compress(getattr(self, name), keep)))
        self.size -= len(done)
        self._after_finished()
        return ordinals, contexts, shared

    def _take_row(self, row: int) -> tuple[list[int], list[int], list[int]]:
        """``take_finished`` of the one finished sequence at ``row``."""
        self._retired = []
        ordinal = self.ordinal.pop(row)
        context = self.base.pop(row) + self.end.pop(row)
        shared = self.shared.pop(row)
        del self.klass[row]
        self.context_sum -= context
        self.shared_sum -= shared
        self.blocks_held -= -(-context // self.block_size) - shared
        self.final_blocks -= -(-context // self.block_size)
        self.size -= 1
        self._after_finished()
        return [ordinal], [context], [shared]

    def _after_finished(self) -> None:
        """After finished rows left: no padding, the rows left in one cohort, the earliest
        end among them."""
        self._padding = 0
        if self.size:
            self.cohorts[-1][1] = self.size
            self._min_end = min(self.end)
        else:
            self.cohorts = []
            self._min_end = math.inf

    def pop_last(self) -> tuple[int, int, int, float, int]:
        """Remove the most recently admitted sequence.

        Returns (ordinal, context, remaining, last_token_s, shared blocks)."""
        context = self.context(self.size - 1)
        remaining = self.remaining(self.size - 1)
        ordinal = self.ordinal.pop()
        base = self.base.pop()
        end = self.end.pop()
        shared = self.shared.pop()
        self.klass.pop()
        self.size -= 1
        self.context_sum -= context
        self.shared_sum -= shared
        self.blocks_held -= -(-context // self.block_size) - shared
        self.final_blocks -= -(-(base + end) // self.block_size)
        if end > self.clock:
            self.live -= 1
            self._offsets[base % self.block_size] -= 1
            if end == self._min_end:
                self._min_end = self._live_min_end()
        else:
            self._padding -= 1
        cohort = self.cohorts[-1]
        last_token_s = cohort[0]
        cohort[1] -= 1
        if cohort[1] == 0:
            self.cohorts.pop()
        return ordinal, context, remaining, last_token_s, shared
