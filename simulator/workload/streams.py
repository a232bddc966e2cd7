"""Named random streams and chunked buffers.

Every random quantity of a workload (arrival gaps, class choice, prompt lengths, ...)
draws from its own numpy ``Generator``, spawned from the workload seed under a fixed
name, so adding a feature that draws from one stream never shifts the numbers of another.
Draws are made in chunks (vectorised) and handed out one at a time from Python lists,
because indexing a list is several times cheaper than indexing a numpy array.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Hashable, Iterator

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


#: Chunks already drawn, by stream and chunk number, while ``shared_draws`` is active.
_SHARED: dict[tuple, list] | None = None


@contextlib.contextmanager
def shared_draws() -> Iterator[None]:
    """Within this block, a stream that names itself (``shared_chunk``) draws each chunk
    once: a search simulates one workload at many rates, whose requests' shapes come from
    the same seeded streams. A chunk is the same list of values however often it is asked
    for, so no result moves."""
    global _SHARED
    outer = _SHARED
    if outer is None:
        _SHARED = {}
    try:
        yield
    finally:
        _SHARED = outer


def shared_chunk(key: Hashable | None, number: int, draw: Callable[[], list]) -> list:
    """Chunk ``number`` of the stream ``key`` (None: not shared): ``draw()`` when not drawn
    before within ``shared_draws``. ``draw`` draws the stream's next chunk, so a stream asks
    for its chunks in order, drawing any it skipped (see ``ShapeStream``)."""
    if key is None or _SHARED is None:
        return draw()
    found = _SHARED.get((key, number))
    if found is None:
        found = _SHARED[(key, number)] = draw()
    return found
