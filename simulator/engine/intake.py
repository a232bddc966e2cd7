"""Arrivals taken by the replica loop itself, when one replica takes every arrival.

With a single replica taking arrivals, no autoscaler and a workload whose arrivals do not
depend on completions, nothing but that replica needs to know of an arrival when it
happens: the replica routes the arrivals due whenever its loop wakes (at the end of each
step, or at the next arrival when it is idle) instead of a separate arrival process
waking on every one. This changes no result: arrivals are routed in the same order, at
the same times (``route_s``: the times an arrival process would reach with SimPy's relative
timeouts, to the last bit) and before the same steps as an arrival process would route them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy


def timeout_at(env: simpy.Environment, when_s: float) -> simpy.Timeout:
    """A timeout firing at exactly ``when_s`` (``env.timeout(when_s - env.now)`` may land
    one unit in the last place away: the delay is nudged until the sum is exact)."""
    now = env.now
    delay = when_s - now
    while delay > 0 and now + delay > when_s:
        delay = math.nextafter(delay, -math.inf)
    while now + delay < when_s:
        delay = math.nextafter(delay, math.inf)
    return env.timeout(delay)


class InlineArrivals:
    """The arrivals of ``source``, routed by ``route(request, route_s)`` when the replica
    loop asks for those due (``take``)."""

    def __init__(self, source, route: Callable[[object, float], None]):
        self._source = source
        self._route = route
        #: When the arrival process would have last run, and when it scheduled that run.
        self._clock_s = 0.0
        self._scheduled_s = 0.0
        self._next: tuple[float, float] | None = None  # (route time, scheduled at) of the next
        #: When the next arrival would be routed (s; ``math.inf`` if none is scheduled): a
        #: replica need not call ``take`` before then.
        self.next_s = self._peek()[0]

    def next_route_s(self) -> float:
        """When the next arrival would be routed (s; ``math.inf`` if none is scheduled)."""
        return self._peek()[0]

    def _peek(self) -> tuple[float, float]:
        found = self._next
        if found is None:
            t = self._source.peek_time()
            clock, scheduled = self._clock_s, self._scheduled_s
            if t == math.inf:
                return math.inf, math.inf
            while t > clock:  # the arrival process sleeps env.timeout(t - now), maybe twice
                scheduled = clock
                clock = clock + (t - clock)
            found = self._next = (clock, scheduled)
        return found

    def take(self, now_s: float, step_start_s: float) -> None:
        """Route every arrival the arrival process would have routed before the replica
        resumed at ``now_s`` after a step started at ``step_start_s`` (``math.inf``: after
        sleeping, when an arrival woke it): those routed earlier, and those routed at
        ``now_s`` by an event scheduled before the step's."""
        while True:
            route_s, scheduled_s = self._peek()
            if route_s > now_s or (route_s == now_s and scheduled_s > step_start_s):
                return
            self._next = None
            self._clock_s, self._scheduled_s = route_s, scheduled_s
            self._route(self._source.pop(), route_s)
            self.next_s = self._peek()[0]
