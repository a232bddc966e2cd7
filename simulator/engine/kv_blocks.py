"""The paged KV cache of one replica: who holds its blocks, and the prefix cache.

Blocks are held by the running batch (its sequences' contexts, less the blocks they read
from the prefix cache), by partly prefilled sequences, by a static batch's reservation for
its outputs, and by cached prefixes. Cached prefixes nobody reads count as free: they are
evicted, least recently used first, when blocks are taken.
"""

from __future__ import annotations

from simulator.engine.batch import RunningBatch
from simulator.engine.entities import Waiting
from simulator.engine.prefix_cache import PrefixCache
from simulator.workload.request import Request


class KvBlocks:
    """Block accounting of one replica's KV cache (``total`` blocks of ``block_size``)."""

    def __init__(
        self,
        total: int,
        block_size: int,
        watermark_fraction: float,
        prefix_caching: bool,
        batch: RunningBatch,
    ):
        self.total = total
        self.block_size = block_size
        #: Blocks kept free at admission so running sequences can grow.
        self.watermark = int(watermark_fraction * total)
        self.cache = PrefixCache(block_size) if prefix_caching else None
        self._batch = batch
        self.prefilling = 0  # blocks held by partly prefilled sequences
        self.reserved = 0  # blocks a static batch set aside for its outputs
        self.peak = 0  # most blocks in use at once

    # ------------------------------------------------------------------ state
    @property
    def used(self) -> int:
        cached = self.cache.blocks if self.cache is not None else 0
        return self._batch.blocks_held + self.prefilling + self.reserved + cached

    @property
    def free(self) -> int:
        """Free blocks, counting cached prefixes nobody uses as free (they are evicted)."""
        held = self._batch.blocks_held + self.prefilling + self.reserved
        cache = self.cache
        if cache is None:
            return self.total - held
        return self.total - held - cache.blocks + cache.evictable_blocks

    @property
    def admissible(self) -> int:
        """Most blocks one request may need and still be admitted to an empty replica."""
        return self.total - self.watermark

    def blocks_for(self, tokens: int) -> int:
        """Blocks holding ``tokens`` tokens."""
        return -(-tokens // self.block_size)

    def note_peak(self) -> None:
        used = self.used
        if used > self.peak:
            self.peak = used

    def take(self, blocks: int) -> None:
        """Make ``blocks`` physically free, evicting unused cached prefixes if needed."""
        short = blocks - (self.total - self.used)
        if short > 0 and self.cache is not None:
            self.cache.evict(short)

    # ------------------------------------------------------------ prefixes
    def hit_blocks(self, w: Waiting) -> int:
        """Blocks of a waiting request's prefix already cached (none once it has started)."""
        if self.cache is None or not w.prefix_tokens or w.started:
            return 0
        return self.cache.hit_blocks(w.prefix_id, w.prefix_tokens, w.context_tokens)

    def admit(self, w: Waiting) -> tuple[int, int]:
        """Take the blocks of an admitted request: returns (its own blocks, cached blocks it
        reads)."""
        shared = self.hit_blocks(w) if w.prefix_tokens else 0
        if shared:
            self.cache.acquire(w.prefix_id)
        own = -(-w.context_tokens // self.block_size) - shared
        self.take(own)
        self.prefilling += own
        return own, shared

    def release_prefix(self, prefix_id: int, shared: int) -> None:
        """A sequence stops reading its ``shared`` cached blocks of ``prefix_id``."""
        if shared:
            self.cache.release(prefix_id)

    def retain_or_free(self, request: Request, context: int, shared: int) -> None:
        """A finished sequence's KV: keep its prefix in the cache, free the rest."""
        cache = self.cache
        if cache is None:
            return
        if shared:
            cache.release(request.prefix_id)
        own = -(-context // self.block_size) - shared
        if request.session_id >= 0:
            # a conversation's next turn resends this whole context
            cache.retain(request.session_id, context, own)
        elif request.prefix_id >= 0:
            # a shared system prompt: only the declared prefix is common
            cache.retain(request.prefix_id, request.prefix_tokens, own)

    # --------------------------------------------------------------- growth
    def steps_within(self, steps: int) -> int:
        """Largest step count ≤ ``steps`` whose KV growth of the running batch fits in the
        free blocks (taking them: unused cached prefixes are evicted as needed)."""
        batch = self._batch
        free = self.free
        # Cheap bound first: each sequence crosses at most steps // block + 1 block boundaries.
        bound_fits = batch.size * (steps // self.block_size + 1) <= free
        if not bound_fits and batch.blocks_needed(steps) > free:
            lo, hi = 0, steps  # blocks_needed(lo) fits, blocks_needed(hi) does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if batch.blocks_needed(mid) <= free:
                    lo = mid
                else:
                    hi = mid
            steps = lo
        if steps and self.cache:  # evict cached prefixes to make the growth's room
            self.take(batch.blocks_needed(steps))
        return steps
