"""A link whose bandwidth is shared by the transfers crossing it at the same time.

Concurrent transfers progress at an equal share of the bandwidth (processor sharing, how
a NIC or PCIe link behaves under many streams); each also pays the link's latency once.
"""

from __future__ import annotations

import itertools

import simpy


class SharedLink:
    """Bandwidth ``bytes_per_s`` (one direction) shared equally by active transfers."""

    def __init__(self, env: simpy.Environment, bytes_per_s: float, latency_s: float):
        self.env = env
        self.bytes_per_s = bytes_per_s
        self.latency_s = latency_s
        self._active: dict[int, list] = {}  # id -> [remaining bytes, done event]
        self._ids = itertools.count()
        self._last_s = 0.0
        self._generation = 0
        self.bytes_moved = 0.0
        self.busy_s = 0.0

    def transfer(self, num_bytes: float):
        """SimPy process: returns when ``num_bytes`` have crossed the link."""
        yield self.env.timeout(self.latency_s)
        done = self.env.event()
        self._progress()
        self._active[next(self._ids)] = [float(num_bytes), done]
        self.bytes_moved += num_bytes
        self._reschedule()
        yield done

    def _progress(self) -> None:
        now = self.env.now
        if self._active:
            share = self.bytes_per_s * (now - self._last_s) / len(self._active)
            for item in self._active.values():
                item[0] -= share
            self.busy_s += now - self._last_s
        self._last_s = now

    def _reschedule(self) -> None:
        self._generation += 1
        if self._active:
            least = min(item[0] for item in self._active.values())
            delay = max(least, 0.0) * len(self._active) / self.bytes_per_s
            self.env.process(self._complete(self._generation, delay))

    def _complete(self, generation: int, delay: float):
        yield self.env.timeout(delay)
        if generation != self._generation:
            return  # the set of transfers changed meanwhile; a newer timer is pending
        self._progress()
        for key, (remaining, done) in list(self._active.items()):
            if remaining <= 1.0:  # within a byte: rounding of the shares
                del self._active[key]
                done.succeed()
        self._reschedule()
