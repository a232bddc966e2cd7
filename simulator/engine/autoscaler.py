"""Autoscaling: the serving fleet grows and shrinks on a load signal during a run.

Every ``evaluate_every_s`` the signal (waiting requests, KV-cache use or arrival rate per
serving replica) is compared with the target. Above it, one more replica is started; it
serves only after ``scale_up_delay_s`` (model load). Below ``scale_down_fraction`` × target
for ``scale_down_after_s``, the least busy replica stops taking requests, finishes what it
has, and is released. A replica is paid for from its start to its release.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import simpy

OFF, STARTING, ACTIVE, DRAINING = "off", "starting", "active", "draining"


@dataclass(frozen=True)
class AutoscalePolicy:
    min_replicas: int
    max_replicas: int
    metric: str
    target: float
    scale_up_delay_s: float
    scale_down_after_s: float
    scale_down_fraction: float
    evaluate_every_s: float


@dataclass
class FleetLog:
    """Replica counts over time: (time, serving, held) at every change."""

    times_s: list[float] = field(default_factory=list)
    serving: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)


class ScaledReplica(Protocol):
    """What the autoscaler reads of a replica (a read-only view)."""

    @property
    def replica_id(self) -> int: ...

    @property
    def outstanding(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def used_blocks(self) -> int: ...

    @property
    def total_blocks(self) -> int: ...

    @property
    def has_work(self) -> bool: ...


class Traffic(Protocol):
    """What the autoscaler reads of the traffic: requests arrived so far, and whether any
    will ever come again."""

    @property
    def arrived(self) -> int: ...

    @property
    def exhausted(self) -> bool: ...


class Autoscaler:
    """Drives the state of a pool of replicas; the simulation routes to ``serving`` only."""

    def __init__(
        self,
        env: simpy.Environment,
        replicas: Sequence[ScaledReplica],
        initial: int,
        policy: AutoscalePolicy,
        traffic: Traffic,
    ):
        self.env = env
        self.traffic = traffic
        self.replicas = list(replicas)
        self.policy = policy
        first = min(max(initial, policy.min_replicas), policy.max_replicas)
        self.state = {r.replica_id: ACTIVE if i < first else OFF for i, r in enumerate(replicas)}
        self._held_since = {r.replica_id: 0.0 for r in replicas[:first]}
        self.held_seconds = {r.replica_id: 0.0 for r in replicas}
        self.log = FleetLog()
        self._low_since: float | None = None
        self._arrivals_seen = 0
        self._note()
        self.process = self.env.process(self._run())

    @property
    def serving(self) -> list:
        return [r for r in self.replicas if self.state[r.replica_id] == ACTIVE]

    def _count(self, *states: str) -> int:
        return sum(1 for s in self.state.values() if s in states)

    def _note(self) -> None:
        log = self.log
        log.times_s.append(self.env.now)
        log.serving.append(self._count(ACTIVE))
        log.held.append(self._count(ACTIVE, STARTING, DRAINING))

    def signal(self) -> float:
        """The load signal per serving replica."""
        serving = self.serving or self.replicas[:1]
        p = self.policy
        if p.metric == "queue":
            return sum(r.waiting for r in serving) / len(serving)
        if p.metric == "kv":
            return sum(r.used_blocks / r.total_blocks for r in serving) / len(serving)
        arrived = self.traffic.arrived
        arrivals = arrived - self._arrivals_seen
        self._arrivals_seen = arrived
        return arrivals / p.evaluate_every_s / len(serving)

    def _run(self):
        p = self.policy
        env = self.env
        while not self._finished():
            yield env.timeout(p.evaluate_every_s)
            value = self.signal()
            now = env.now
            if value > p.target:
                self._low_since = None
                if self._count(ACTIVE, STARTING) < p.max_replicas:
                    self._start_one()
            elif value < p.scale_down_fraction * p.target:
                if self._low_since is None:
                    self._low_since = now
                elif (
                    now - self._low_since >= p.scale_down_after_s
                    and self._count(ACTIVE) > p.min_replicas
                    and not self._count(STARTING)
                ):
                    self._drain_one()
                    self._low_since = now
            else:
                self._low_since = None
            self._release_drained()
        self._release_drained(final=True)

    def _finished(self) -> bool:
        return self.traffic.exhausted and not any(r.has_work for r in self.replicas)

    def _start_one(self) -> None:
        replica = next(r for r in self.replicas if self.state[r.replica_id] == OFF)
        self.state[replica.replica_id] = STARTING
        self._held_since[replica.replica_id] = self.env.now
        self._note()
        self.env.process(self._come_up(replica))

    def _come_up(self, replica):
        yield self.env.timeout(self.policy.scale_up_delay_s)
        if self.state[replica.replica_id] == STARTING:
            self.state[replica.replica_id] = ACTIVE
            self._note()

    def _drain_one(self) -> None:
        replica = min(self.serving, key=lambda r: (r.outstanding, -r.replica_id))
        self.state[replica.replica_id] = DRAINING
        self._note()

    def _release_drained(self, final: bool = False) -> None:
        now = self.env.now
        for r in self.replicas:
            rid = r.replica_id
            done = self.state[rid] == DRAINING and not r.has_work
            if done or (final and self.state[rid] != OFF):
                self.held_seconds[rid] += now - self._held_since.pop(rid)
                self.state[rid] = OFF
                self._note()

    def replica_seconds(self) -> float:
        """Replica-seconds held (started, serving or draining) over the run."""
        return sum(self.held_seconds.values())


def time_weighted_mean(times_s: list[float], counts: list[int], end_s: float) -> float:
    """Time average of a step function given by its change points, up to ``end_s``."""
    if not times_s or end_s <= times_s[0]:
        return math.nan
    total = 0.0
    for i, t in enumerate(times_s):
        nxt = times_s[i + 1] if i + 1 < len(times_s) else end_s
        total += counts[i] * (nxt - t)
    return total / (end_s - times_s[0])
