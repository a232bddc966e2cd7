"""Named random streams and chunked buffers.

Every random quantity of a workload (arrival gaps, class choice, prompt lengths, ...)
draws from its own numpy ``Generator``, spawned from the workload seed under a fixed
name, so adding a feature that draws from one stream never shifts the numbers of another.
Draws are made in chunks (vectorised) and handed out one at a time from Python lists,
because indexing a list is several times cheaper than indexing a numpy array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

#: Draws per vectorised chunk: large enough to amortise numpy call overhead, small enough
#: that buffers stay a few tens of kilobytes.
CHUNK_SIZE = 4096


def named_rng(seed: int, *names: str | int) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the stream's name path.

    The name is hashed into the seed sequence's entropy, so streams are independent and
    stable whatever order they are created in.
    """
    key = "/".join(str(name) for name in names).encode()
    digest = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), digest])))


class ChunkBuffer:
    """Hands out values one at a time from chunks produced by ``refill(CHUNK_SIZE)``."""

    __slots__ = ("_index", "_refill", "_values")

    def __init__(self, refill: Callable[[int], np.ndarray | list]):
        self._refill = refill
        self._values: list = []
        self._index = 0

    def next(self):
        """The next value (refilling the chunk when it runs out)."""
        if self._index >= len(self._values):
            chunk = self._refill(CHUNK_SIZE)
            self._values = chunk.tolist() if isinstance(chunk, np.ndarray) else list(chunk)
            self._index = 0
        value = self._values[self._index]
        self._index += 1
        return value
