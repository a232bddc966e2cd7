"""Prefix caching: KV blocks of a finished request kept for later requests sharing its prefix.

A later turn of a conversation resends the earlier turns, and requests of one application
often share a system prompt. Their common prefix is tagged with a ``prefix_id`` by the
workload. The cache keeps, per prefix, the full KV blocks of the longest context seen, shared
by every running sequence that reuses it (reference counted) and evicted least recently
used first once nobody uses it. Only whole blocks are shared, as in vLLM and SGLang.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    blocks: int  # full KV blocks held for this prefix
    refs: int = 0  # running sequences reading these blocks


class PrefixCache:
    """Cached prefixes of one replica, in least-recently-used order."""

    def __init__(self, block_size: int):
        self.block_size = block_size
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self.blocks = 0  # blocks held by all entries
        self.evictable_blocks = 0  # blocks of entries no running sequence uses

    def __len__(self) -> int:
        """Prefixes cached."""
        return len(self._entries)

    def hit_blocks(self, prefix_id: int, prefix_tokens: int, prompt_tokens: int) -> int:
        """Blocks of this prompt's prefix already cached (at least one token stays to prefill,
        since the last prompt token must be computed to produce the first output)."""
        entry = self._entries.get(prefix_id) if prefix_id >= 0 else None
        if entry is None:
            return 0
        usable = min(prefix_tokens, prompt_tokens - 1) // self.block_size
        return min(entry.blocks, usable)

    def acquire(self, prefix_id: int) -> None:
        """A sequence starts reading the cached blocks of ``prefix_id``."""
        entry = self._entries[prefix_id]
        if entry.refs == 0:
            self.evictable_blocks -= entry.blocks
        entry.refs += 1
        self._entries.move_to_end(prefix_id)

    def release(self, prefix_id: int) -> None:
        entry = self._entries[prefix_id]
        entry.refs -= 1
        if entry.refs == 0:
            self.evictable_blocks += entry.blocks

    def retain(self, prefix_id: int, tokens: int, own_blocks: int) -> int:
        """Keep the first ``tokens`` of a finished sequence cached under ``prefix_id``.

        The sequence held ``own_blocks`` blocks of its own beyond what it read from the
        cache; returns how many of them the cache takes over (the rest are freed)."""
        want = tokens // self.block_size
        entry = self._entries.get(prefix_id)
        have = entry.blocks if entry is not None else 0
        taken = max(0, min(want - have, own_blocks))
        if entry is None:
            if taken == 0:
                return 0
            entry = _Entry(0)
            self._entries[prefix_id] = entry
        entry.blocks += taken
        self.blocks += taken
        if entry.refs == 0:
            self.evictable_blocks += taken
        self._entries.move_to_end(prefix_id)
        return taken

    def evict(self, needed: int) -> int:
        """Free at least ``needed`` blocks from unused entries, oldest first; returns freed."""
        freed = 0
        for prefix_id in list(self._entries):
            if freed >= needed:
                break
            entry = self._entries[prefix_id]
            if entry.refs:
                continue
            freed += entry.blocks
            del self._entries[prefix_id]
        self.blocks -= freed
        self.evictable_blocks -= freed
        return freed
