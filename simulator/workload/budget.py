"""How much a workload asks of a simulation, estimated before it starts.

From a dumped ``WorkloadConfig``: the expected number of requests (``num_requests``, or
the arrival process's mean rate × ``duration_s``; closed-loop users at most one request per
think time plus one token step per output token, or per think time alone when every
request finishes the instant it arrives, as ``trace generate`` writes them), when the last
of them arrives, and the sequence-steps they need (a decode step per output token, a
prefill step per chunk of prompt). :func:`budget_problems` turns that into what is wrong
with a run before it starts:

- arrivals expected past ``MAX_SIMULATED_S`` (float seconds lose the resolution of a step);
- fewer than one request expected within ``duration_s`` (nothing to simulate);
- an estimated run time over the budget (``BUDGET_S``), which the caller may allow.

Traces are not estimated (their length is the file's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from simulator.workload.arrivals import piecewise_rate
from simulator.workload.shapes import build_profiles

#: Latest arrival time a run may reach (s), about 32 years.
MAX_SIMULATED_S = 1e9
#: Estimated run time above which a run needs to be allowed explicitly (s).
BUDGET_S = 600.0
#: Simulation cost per request and per sequence-step (one sequence through one step),
#: measured on a loaded 2-core machine (quickstart: 0.2 ms per request, 1 us per
#: sequence-step); deliberately rough: the estimate is for orders of magnitude.
SECONDS_PER_REQUEST = 2e-4
SECONDS_PER_SEQUENCE_STEP = 1e-6
#: Shortest time a closed-loop user spends per request besides thinking (s per output
#: token): no engine produces tokens faster than one per millisecond per sequence.
MIN_SECONDS_PER_OUTPUT_TOKEN = 1e-3


@dataclass(frozen=True)
class WorkEstimate:
    """Expected requests, the time of the last arrival (s) and sequence-steps."""

    requests: float
    arrival_span_s: float
    sequence_steps: float
    #: Requests asked for (``num_requests``) when the arrivals end before that many came.
    never_reached: float | None = None
    #: Cost of a request relative to simulating it (writing a trace is cheaper).
    request_cost: float = 1.0
    #: Closed loops: the requests expected when every request finishes the instant it
    #: arrives (``trace generate``), and what the count follows from (for messages).
    instant_requests: float | None = None
    basis: str | None = None
    #: What the run time is spent on (for messages).
    task: str = "simulation"

    @property
    def run_time_s(self) -> float:
        """Rough wall time of one simulation of this workload (s)."""
        per_request = SECONDS_PER_REQUEST * self.request_cost
        return self.requests * per_request + self.sequence_steps * SECONDS_PER_SEQUENCE_STEP


def _arrivals_until(arrival: Mapping[str, Any]) -> tuple[Any, Any]:
    """(expected arrivals by time t, time by which n arrivals are expected) of an
    open-loop process, as functions."""
    process = arrival["process"]
    if process in ("time_varying", "on_off") and not arrival.get("random_durations"):
        return _piecewise_counts(arrival)
    if process == "on_off":
        on, off = float(arrival["on_duration_s"]), float(arrival["off_duration_s"])
        rate = (
            float(arrival["on_rate_per_s"]) * on + float(arrival.get("off_rate_per_s") or 0) * off
        ) / (on + off)
    elif process == "diurnal":
        rate = float(arrival["mean_rate_per_s"])
    elif process == "constant" and arrival.get("interval_s"):
        rate = 1.0 / float(arrival["interval_s"])
    else:
        rate = float(arrival["rate_per_s"])
    return (lambda t: rate * t), (lambda n: n / rate)


def _piecewise_counts(arrival: Mapping[str, Any]) -> tuple[Any, Any]:
    if arrival["process"] == "on_off":
        on, off = float(arrival["on_duration_s"]), float(arrival["off_duration_s"])
        off_rate = float(arrival.get("off_rate_per_s") or 0)
        points = [(0.0, float(arrival["on_rate_per_s"])), (on, off_rate)]
        period, linear = on + off, False
    else:
        points = [(float(p["time_s"]), float(p["rate_per_s"])) for p in arrival["points"]]
        period = arrival.get("period_s")
        linear = arrival.get("interpolation", "step") == "linear"
    rate, _, _, _ = piecewise_rate(points, linear, period)
    times = sorted(t for t, _ in points)
    edges = np.array([*times, period if period else times[-1]], dtype=np.float64)
    # Step or linear: the trapezoid over each segment is exact for both at the segment's
    # ends (a step's rate is its start's; sample just inside the end for it).
    inner = np.nextafter(edges[1:], edges[:-1])
    ends = rate(edges[1:]) if linear else rate(inner)
    area = (rate(edges[:-1]) + ends) / 2 * np.diff(edges)
    cumulative = np.concatenate([[0.0], np.cumsum(area)])
    per_period = float(cumulative[-1])
    tail_rate = 0.0 if period else float(rate(np.array([edges[-1]]))[0])

    def count(t: float) -> float:
        if period:
            whole, part = divmod(t, period)
            return whole * per_period + float(np.interp(part, edges, cumulative))
        if t <= edges[-1]:
            return float(np.interp(t, edges, cumulative))
        return per_period + (t - edges[-1]) * tail_rate

    def time_for(n: float) -> float:
        if period:
            if per_period <= 0:
                return math.inf
            whole, part = divmod(n, per_period)
            return whole * period + float(np.interp(part, cumulative, edges))
        if n <= per_period:
            return float(np.interp(n, cumulative, edges))
        return edges[-1] + (n - per_period) / tail_rate if tail_rate > 0 else math.inf

    return count, time_for


def estimate_work(
    workload: Mapping[str, Any], *, max_batched_tokens: int, base_dir: Path | None = None
) -> WorkEstimate | None:
    """Expected work of one run of a dumped ``WorkloadConfig`` (None for a trace)."""
    if workload.get("trace"):
        return None
    profiles = build_profiles(workload, base_dir)
    weights = np.array([p.weight for p in profiles], dtype=np.float64)
    weights = weights / weights.sum()
    prompt = sum(
        w * min(p.prompt.nominal_mean, p.prompt.maximum)
        for w, p in zip(weights, profiles, strict=True)
    )
    output = sum(
        w * min(p.output.nominal_mean, p.output.maximum)
        for w, p in zip(weights, profiles, strict=True)
    )
    turns = _mean_turns(workload.get("sessions"))
    count = workload.get("num_requests")
    duration = workload.get("duration_s")
    arrival = workload["arrival"]
    if arrival["process"] == "offline":  # every request queued at t = 0
        requests, span = float(count), 0.0
    elif arrival["process"] == "closed_loop":
        loop = _ClosedLoop.of(workload, base_dir)
        requests, span = loop.requests(count, duration, output * MIN_SECONDS_PER_OUTPUT_TOKEN)
        instant, _ = loop.requests(count, duration, 0.0)
        steps = requests * (output + math.ceil(prompt / max_batched_tokens))
        return WorkEstimate(
            requests, span, steps, instant_requests=instant, basis=loop.basis(duration)
        )
    else:
        arrivals_by, time_for = _arrivals_until(arrival)
        if duration is not None:
            requests = arrivals_by(float(duration)) * turns
            span = float(duration)
            if count is not None and count < requests:
                requests, span = float(count), time_for(count / turns)
        else:
            requests = float(count)
            span = time_for(requests / turns)
        if math.isinf(span):  # the rate falls to 0 for good before num_requests arrive
            available = arrivals_by(MAX_SIMULATED_S) * turns
            steps = available * (output + math.ceil(prompt / max_batched_tokens))
            return WorkEstimate(available, span, steps, never_reached=float(count))
    steps_per_request = output + math.ceil(prompt / max_batched_tokens)
    return WorkEstimate(requests, span, requests * steps_per_request)


def _mean_turns(sessions: Mapping[str, Any] | None) -> float:
    if not sessions:
        return 1.0
    turns = sessions.get("turns", 1)
    if isinstance(turns, int | float):
        return float(turns)
    from simulator.workload.distributions import build_sampler

    sampler = build_sampler(turns)
    return max(1.0, min(sampler.nominal_mean, sampler.maximum))


def _mean_seconds(spec: Any, base_dir: Path | None) -> float:
    """Mean of a dumped ``DurationConfig`` (s): a number, or a distribution's clipped mean."""
    if isinstance(spec, int | float):
        return float(spec)
    from simulator.workload.distributions import build_sampler

    sampler = build_sampler(spec, integer=False, base_dir=base_dir)
    return max(sampler.minimum, min(sampler.nominal_mean, sampler.maximum))


@dataclass(frozen=True)
class _ClosedLoop:
    """What paces a closed loop: ``users``, their ``ramp_up_s``, and the mean time (s) a
    user waits between requests besides service (think times, sessions' included)."""

    users: int
    ramp_s: float
    think_s: float
    wait_s: float

    @classmethod
    def of(cls, workload: Mapping[str, Any], base_dir: Path | None) -> _ClosedLoop:
        arrival = workload["arrival"]
        think_s = _mean_seconds(arrival.get("think_time_s", 0.0), base_dir)
        # A conversation of k turns: k - 1 session think times, then the loop's think time.
        sessions = workload.get("sessions")
        turns = _mean_turns(sessions)
        session_think_s = (
            _mean_seconds(sessions.get("think_time_s", 0.0), base_dir) if sessions else 0.0
        )
        wait_s = (think_s + (turns - 1) * session_think_s) / turns
        ramp_s = float(arrival.get("ramp_up_s") or 0.0)
        return cls(int(arrival["users"]), ramp_s, think_s, wait_s)

    def requests(
        self, count: int | None, duration: float | None, service_s: float
    ) -> tuple[float, float]:
        """(expected requests, time of the last arrival in s) when each request is served
        in ``service_s``; infinite requests when nothing separates a user's requests."""
        per_request_s = self.wait_s + service_s
        if duration is not None:
            span = max(0.0, float(duration) - self.ramp_s / 2)
            requests = math.inf if per_request_s <= 0 else self.users * span / per_request_s
            requests += self.users
            if count is not None:
                requests = min(requests, float(count))
            return requests, float(duration)
        return float(count), self.ramp_s + count / self.users * per_request_s

    def basis(self, duration: float | None) -> str:
        """The settings the request count follows from."""
        limit = "" if duration is None else f", duration_s {float(duration):g}"
        return f"closed loop: users {self.users}, think_time_s {self.think_s:g}{limit}"


#: Writing one request of a generated trace (s), for ``trace generate``'s estimate.
SECONDS_PER_GENERATED_REQUEST = 1e-5


def generation_budget(estimate: WorkEstimate | None) -> WorkEstimate | None:
    """The estimate of writing the workload as a trace (no steps are simulated): its
    requests are cheaper, its span and request counts the same."""
    if estimate is None:
        return None
    scale = SECONDS_PER_GENERATED_REQUEST / SECONDS_PER_REQUEST
    # A generated trace takes every request to finish on arrival (zero service time), so
    # closed-loop users send one request per think time.
    requests = estimate.requests
    if estimate.instant_requests is not None:
        requests = estimate.instant_requests
    return replace(
        estimate,
        requests=requests,
        sequence_steps=0.0,
        request_cost=scale,
        task="trace generation",
    )


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def budget_problems(
    estimate: WorkEstimate | None, *, runs: int = 1, allow_long_run: bool = False
) -> list[str]:
    """What makes a run impossible or longer than the budget, one line each (empty: go)."""
    if estimate is None:
        return []
    problems = []
    basis = f" ({estimate.basis})" if estimate.basis else ""
    if math.isinf(estimate.requests):
        problems.append(
            f"workload: endless requests{basis}: with every request finishing the instant it "
            "arrives, nothing separates a user's requests; give num_requests or a "
            "think_time_s above 0"
        )
    elif estimate.never_reached is not None:
        problems.append(
            f"workload: the arrival rate stays 0 after about {estimate.requests:,.3g} "
            f"requests; num_requests {estimate.never_reached:,.0f} would never be reached: "
            "lower num_requests or give duration_s"
        )
    elif estimate.arrival_span_s > MAX_SIMULATED_S:
        problems.append(
            f"workload: the last of {estimate.requests:,.0f} requests would arrive at about "
            f"{estimate.arrival_span_s:,.0f} s; the simulated span is at most "
            f"{MAX_SIMULATED_S:,.0f} s (about 32 years): raise the rate or lower num_requests"
        )
    elif estimate.requests < 1:
        problems.append(
            f"workload: about {estimate.requests:.2g} requests are expected within duration_s "
            f"{estimate.arrival_span_s:g} s; nothing to simulate: raise the rate or duration_s"
        )
    elif estimate.run_time_s * runs > BUDGET_S and not allow_long_run:
        times = f" × {runs} runs" if runs > 1 else ""
        steps = estimate.sequence_steps * runs
        think = ", raise think_time_s" if estimate.basis else ""
        problems.append(
            f"workload: about {estimate.requests:,.0f} requests{times}{basis}"
            + (f", {steps:.3g} sequence-steps" if steps else "")
            + ": an estimated "
            f"{_duration(estimate.run_time_s * runs)} of {estimate.task}, over the budget of "
            f"{_duration(BUDGET_S)}; lower num_requests or duration_s{think}, or pass "
            "--allow-long-run to run it anyway"
        )
    return problems
