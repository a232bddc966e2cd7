"""Request sources: the lazy stream of requests the engine pulls from.

The engine asks ``peek_time()`` for the next arrival, ``pop()``s it when simulated time
gets there, and reports every completion with ``on_finish`` (rejected requests included,
at the time of rejection), which closed-loop users and multi-turn sessions need to
schedule their next request. Nothing is generated before it is needed: memory stays flat
however many requests a workload has.

Request ids are numbered 0, 1, 2, ... in ``pop`` order, which is arrival order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simulator.workload.config import WorkloadConfig
from simulator.workload.distributions import build_sampler
from simulator.workload.request import Request
from simulator.workload.shapes import (
    ClassProfile,
    OpenSession,
    SessionTracker,
    ShapeStream,
    build_profiles,
)
from simulator.workload.streams import ChunkBuffer, named_rng

#: Requests generated when a synthetic workload sets neither ``num_requests`` nor ``duration_s``.
DEFAULT_NUM_REQUESTS = 1000


@runtime_checkable
class RequestSource(Protocol):
    """What the engine pulls requests from."""

    def peek_time(self) -> float:
        """Arrival time (s) of the next request; ``math.inf`` if none is scheduled now."""
        ...

    def pop(self) -> Request:
        """Remove and return the next request (the one ``peek_time`` announced)."""
        ...

    def on_finish(self, request: Request, finish_s: float) -> None:
        """Completion feedback: ``request`` finished (or was rejected) at ``finish_s``."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when no request will ever come again."""
        ...

    @property
    def completion_feedback(self) -> bool:
        """True when a completion may schedule a request (closed loops, sessions)."""
        ...


class _Limits:
    """Stop after ``num_requests`` requests or at simulated time ``duration_s``."""

    def __init__(self, spec: Mapping[str, Any], default_count: int | None):
        count = spec.get("num_requests")
        duration = spec.get("duration_s")
        if count is None and duration is None:
            count = default_count
        self.max_requests = math.inf if count is None else int(count)
        self.end_s = math.inf if duration is None else float(duration)


class OpenLoopSource:
    """Arrivals from an open-loop process; optional multi-turn sessions add later turns
    when earlier ones finish."""

    def __init__(
        self,
        arrivals,
        shapes: ShapeStream,
        profiles: list[ClassProfile],
        limits: _Limits,
        sessions: SessionTracker | None,
    ):
        self._arrivals = arrivals
        self._shapes = shapes
        self._profiles = profiles
        self._limits = limits
        self._sessions = sessions
        self._followups: list[tuple[float, int, Request, OpenSession]] = []
        self._followup_seq = 0
        self._issued = 0
        self._next_arrival_s = self._draw_arrival()

    def _draw_arrival(self) -> float:
        arrival_s = self._arrivals.next()
        return arrival_s if arrival_s < self._limits.end_s else math.inf

    def peek_time(self) -> float:
        if self._issued >= self._limits.max_requests:
            return math.inf
        if self._followups and self._followups[0][0] < self._next_arrival_s:
            return self._followups[0][0]
        return self._next_arrival_s

    def pop(self) -> Request:
        if self._issued >= self._limits.max_requests:
            raise IndexError("the workload has no more requests")
        request_id = self._issued
        if self._followups and self._followups[0][0] < self._next_arrival_s:
            _, _, request, session = heapq.heappop(self._followups)
            request.request_id = request_id
            self._issued += 1
            self._sessions.issued(request, session)
            return request
        arrival_s = self._next_arrival_s
        if arrival_s == math.inf:
            raise IndexError("the workload has no more requests")
        class_index, prompt_tokens, output_tokens = self._shapes.next()
        profile = self._profiles[class_index]
        request = Request(
            request_id, arrival_s, prompt_tokens, output_tokens, profile.name, profile.priority
        )
        profile.tag(request)
        self._issued += 1
        self._next_arrival_s = self._draw_arrival()
        if self._sessions is not None:
            self._sessions.start(request, class_index)
        return request

    def on_finish(self, request: Request, finish_s: float) -> None:
        if self._sessions is None:
            return
        followup = self._sessions.follow_up(request, finish_s)
        if followup is None:
            return
        turn, session = followup
        if turn.arrival_s < self._limits.end_s:
            heapq.heappush(self._followups, (turn.arrival_s, self._followup_seq, turn, session))
            self._followup_seq += 1

    @property
    def completion_feedback(self) -> bool:
        return self._sessions is not None

    @property
    def exhausted(self) -> bool:
        if self._issued >= self._limits.max_requests:
            return True
        waiting_on_turns = self._sessions is not None and self._sessions.awaiting > 0
        return self._next_arrival_s == math.inf and not self._followups and not waiting_on_turns


class ClosedLoopSource:
    """``users`` concurrent users: each sends a request, waits for its answer, thinks for
    ``think_time_s``, and sends the next. User *i* sends its first request at a uniform
    time in [0, ``ramp_up_s``]. With sessions, a user carries on its conversation (session
    think times) and starts a new one after the last turn (closed-loop think time)."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        shapes: ShapeStream,
        profiles: list[ClassProfile],
        limits: _Limits,
        sessions: SessionTracker | None,
        seed: int,
        base_dir: Path | None,
    ):
        self._shapes = shapes
        self._profiles = profiles
        self._limits = limits
        self._sessions = sessions
        think = build_sampler(spec.get("think_time_s", 0.0), integer=False, base_dir=base_dir)
        think_rng = named_rng(seed, "closed-loop-think")
        self._think = ChunkBuffer(lambda n: think.draw(think_rng, n))
        users = int(spec["users"])
        ramp_s = float(spec.get("ramp_up_s") or 0.0)
        starts = np.sort(named_rng(seed, "closed-loop-ramp").random(users) * ramp_s)
        # Heap of (time, tie-breaker, user, prepared session turn or None).
        self._scheduled: list[tuple[float, int, int, Any]] = [
            (float(t), user, user, None) for user, t in enumerate(starts) if t < limits.end_s
        ]
        heapq.heapify(self._scheduled)
        self._seq = users
        self._issued = 0
        self._user_of: dict[int, int] = {}

    def peek_time(self) -> float:
        if self._issued >= self._limits.max_requests or not self._scheduled:
            return math.inf
        return self._scheduled[0][0]

    def pop(self) -> Request:
        if self._issued >= self._limits.max_requests or not self._scheduled:
            raise IndexError("the workload has no request scheduled")
        time_s, _, user, prepared = heapq.heappop(self._scheduled)
        request_id = self._issued
        self._issued += 1
        self._user_of[request_id] = user
        if prepared is not None:
            request, session = prepared
            request.request_id = request_id
            self._sessions.issued(request, session)
            return request
        class_index, prompt_tokens, output_tokens = self._shapes.next()
        profile = self._profiles[class_index]
        request = Request(
            request_id, time_s, prompt_tokens, output_tokens, profile.name, profile.priority
        )
        profile.tag(request)
        if self._sessions is not None:
            self._sessions.start(request, class_index)
        return request

    def on_finish(self, request: Request, finish_s: float) -> None:
        user = self._user_of.pop(request.request_id, None)
        if user is None:
            return
        prepared = self._sessions.follow_up(request, finish_s) if self._sessions else None
        time_s = prepared[0].arrival_s if prepared else finish_s + self._think.next()
        if time_s < self._limits.end_s and self._issued < self._limits.max_requests:
            heapq.heappush(self._scheduled, (time_s, self._seq, user, prepared))
            self._seq += 1

    @property
    def completion_feedback(self) -> bool:
        return True

    @property
    def exhausted(self) -> bool:
        if self._issued >= self._limits.max_requests:
            return True
        return not self._scheduled and not self._user_of


def _shape_key(spec: Mapping[str, Any], base_dir: Path | None) -> str:
    """What the shapes of a workload's requests depend on besides the seed."""
    import json

    parts = {k: spec.get(k) for k in SHAPE_KEYS}
    return json.dumps([parts, str(base_dir)], sort_keys=True, default=str)


#: The workload fields the requests' classes and lengths are drawn from.
SHAPE_KEYS = (
    "classes",
    "prompt_tokens",
    "output_tokens",
    "length_correlation",
    "system_prompt_tokens",
)


def build_source(
    workload: WorkloadConfig | Mapping[str, Any], *, base_dir: Path | None = None
) -> RequestSource:
    """The request source of a workload (its schema, or a mapping validated as one).

    ``base_dir`` resolves relative trace and sample-file paths (the scenario file's folder).
    """
    if not isinstance(workload, WorkloadConfig):
        workload = WorkloadConfig.model_validate(workload)
    spec = workload.model_dump()  # lengths, sessions and traces read plain mappings
    seed = workload.seed
    if spec.get("trace"):
        from simulator.workload.replay import TraceSource

        return TraceSource(spec, base_dir=base_dir)
    limits = _Limits(spec, DEFAULT_NUM_REQUESTS)
    profiles = build_profiles(spec, base_dir)
    shapes = ShapeStream(profiles, seed, key=_shape_key(spec, base_dir))
    session_spec = spec.get("sessions")
    sessions = SessionTracker(session_spec, profiles, seed, base_dir) if session_spec else None
    if workload.arrival.process == "closed_loop":
        arrival = spec["arrival"]
        return ClosedLoopSource(arrival, shapes, profiles, limits, sessions, seed, base_dir)
    arrivals = workload.arrival.stream(named_rng(seed, "arrivals"), limits.end_s)
    return OpenLoopSource(arrivals, shapes, profiles, limits, sessions)


def iterate_requests(source: RequestSource, *, finish_instantly: bool = True):
    """Yield every request of ``source`` in arrival order, outside a simulation.

    Closed-loop users and sessions need completions; with ``finish_instantly`` each request
    is reported finished at its own arrival time (zero service time), which is how
    ``servesim trace generate`` writes such workloads.
    """
    while not source.exhausted:
        if source.peek_time() == math.inf:
            break  # waiting on completions that will never come
        request = source.pop()
        yield request
        if finish_instantly:
            source.on_finish(request, request.arrival_s)
