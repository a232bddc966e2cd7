"""Open-loop arrival processes: absolute arrival times in seconds, produced in chunks.

Each process starts at time 0 with no arrival at exactly 0 (the first arrival comes one
gap later), produces non-decreasing times, and signals its end (a schedule that stays at
rate zero forever) with ``math.inf``. Each arrival model of ``workload.config`` builds its
stream with one of the functions below (``ArrivalConfig.stream``).

- ``poisson``: exponential gaps with mean ``1 / rate_per_s``.
- ``offline``: every request at exactly 0 (the one process that arrives at 0): an offline
  batch, ended by the workload's ``num_requests``.
- ``gamma``: gamma-distributed gaps with mean ``1 / rate_per_s`` and coefficient of
  variation ``cv`` (cv > 1 is burstier than Poisson, cv < 1 more regular).
- ``constant``: one request every ``interval_s`` (or ``1 / rate_per_s``).
- ``time_varying``: non-homogeneous Poisson process whose rate follows ``points``
  (``[time_s, rate_per_s]`` pairs, step or linear interpolation, optionally repeating
  every ``period_s``), sampled by thinning a Poisson process at the peak rate.
- ``diurnal``: non-homogeneous Poisson process with a sinusoidal daily curve around
  ``mean_rate_per_s`` with the given ``peak_to_trough`` ratio, peaking at ``peak_time_s``.
- ``on_off``: bursts at ``on_rate_per_s`` for ``on_duration_s`` alternating with
  ``off_rate_per_s`` (default 0) for ``off_duration_s``; fixed durations, or exponential
  ones with those means when ``random_durations`` is set (a Markov-modulated Poisson process).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from simulator.workload.streams import CHUNK_SIZE

RateFunction = Callable[[np.ndarray], np.ndarray]


class ArrivalStream:
    """Arrival times one at a time (``math.inf`` once the process has ended)."""

    def __init__(self, next_chunk: Callable[[int], np.ndarray]):
        self._next_chunk = next_chunk
        self._times: list[float] = []
        self._index = 0
        self._ended = False

    def next(self) -> float:
        """The next arrival time in seconds, or ``math.inf`` when none will come."""
        while self._index >= len(self._times):
            if self._ended:
                return math.inf
            chunk = self._next_chunk(CHUNK_SIZE)
            if len(chunk) == 0:
                self._ended = True
                return math.inf
            self._times = chunk.tolist()
            self._index = 0
        value = self._times[self._index]
        self._index += 1
        return value


def _renewal(rng: np.random.Generator, draw_gaps: Callable[[int], np.ndarray]):
    clock = [0.0]

    def next_chunk(count: int) -> np.ndarray:
        times = clock[0] + np.cumsum(draw_gaps(count))
        clock[0] = float(times[-1])
        return times

    return next_chunk


def _thinned(
    rng: np.random.Generator,
    rate: RateFunction,
    peak_rate: float,
    end_s: float,
    skip: Callable[[float], float] | None = None,
) -> Callable[[int], np.ndarray]:
    """Non-homogeneous Poisson arrivals by thinning (Lewis & Shedler): candidates at the
    peak rate are kept with probability rate(t) / peak_rate. No arrivals after ``end_s``.
    ``skip(t)``, when given, is the first time from ``t`` on where the rate may be
    positive: stretches at rate 0 are jumped over (exact, as the process is memoryless)
    instead of being filled with candidates that are all rejected."""
    clock = [0.0]

    def next_chunk(count: int) -> np.ndarray:
        kept: list[np.ndarray] = []
        total = 0
        while total == 0 and clock[0] < end_s:
            if skip is not None:
                clock[0] = skip(clock[0])
                if clock[0] >= end_s:
                    break
            candidates = clock[0] + np.cumsum(rng.exponential(1.0 / peak_rate, count))
            clock[0] = float(candidates[-1])
            accept = rng.random(count) * peak_rate < rate(candidates)
            chosen = candidates[accept & (candidates < end_s)]
            kept.append(chosen)
            total += len(chosen)
        return np.concatenate(kept) if kept else np.empty(0)

    return next_chunk


def piecewise_rate(
    points: Iterable[tuple[float, float]], linear: bool = False, period_s: float | None = None
) -> tuple[RateFunction, float, float, Callable[[float], float]]:
    """Rate function, peak rate, end time (inf unless the rate stays 0 forever) and
    ``skip`` (the first time from t on where the rate may be positive) of a schedule of
    ``(time_s, rate_per_s)`` points, held (step) or ramped (``linear``) between them and
    repeated every ``period_s`` if given."""
    points = sorted((float(t), float(r)) for t, r in points)
    times = np.array([t for t, _ in points])
    rates = np.array([r for _, r in points])
    period = period_s

    def rate(t: np.ndarray) -> np.ndarray:
        if period:
            t = np.mod(t, period)
        if linear:
            return (
                np.interp(t, times, rates, period=period) if period else np.interp(t, times, rates)
            )
        index = np.searchsorted(times, t, side="right") - 1
        # Before the first point (only possible when it is not at 0) the first rate holds.
        return rates[np.maximum(index, 0)]

    # Without repetition the last rate holds forever; if it is 0, no arrival ever follows.
    end_s = float(times[-1]) if not period and rates[-1] == 0.0 else math.inf
    return rate, float(rates.max()), end_s, _zero_rate_skip(times, rates, linear, period)


def _zero_rate_skip(
    times: np.ndarray, rates: np.ndarray, linear: bool, period: float | None
) -> Callable[[float], float]:
    """For a schedule's points: the first time from t on where the rate may be positive.
    Segment i runs from point i to point i + 1 (to the period's end, or forever, for the
    last); it is idle when its rate is 0 throughout."""
    following = np.append(rates[1:], rates[0] if period else rates[-1])
    idle = (rates == 0.0) & ((following == 0.0) | (not linear))
    starts = times.tolist()

    def skip(t: float) -> float:
        base = 0.0
        if period:
            base = math.floor(t / period) * period
            t -= base
        i = max(0, int(np.searchsorted(times, t, side="right")) - 1)
        if not idle[i]:
            return base + t
        for j in range(i + 1, len(starts)):
            if not idle[j]:
                return base + starts[j]
        if period:  # the next period's first busy segment
            return base + period + starts[int(np.argmin(idle))]
        return math.inf

    return skip


def diurnal_rate(
    mean_rate_per_s: float, peak_to_trough: float, period_s: float, peak_time_s: float
) -> tuple[RateFunction, float]:
    """Sinusoidal rate with mean ``mean_rate_per_s`` and peak/trough = ``peak_to_trough``."""
    mean = float(mean_rate_per_s)
    ratio = float(peak_to_trough)
    amplitude = (ratio - 1.0) / (ratio + 1.0)  # (1 + a) / (1 - a) == ratio
    period = float(period_s)
    peak_time = float(peak_time_s)
    omega = 2.0 * math.pi / period
    return (lambda t: mean * (1.0 + amplitude * np.cos(omega * (t - peak_time)))), mean * (
        1.0 + amplitude
    )


def _on_off_random(
    rng: np.random.Generator,
    on_rate: float,
    off_rate: float,
    on_mean: float,
    off_mean: float,
    horizon_s: float = math.inf,
):
    state = {"clock": 0.0, "on": True}

    def next_chunk(count: int) -> np.ndarray:
        pieces: list[np.ndarray] = []
        total = 0
        while total < count and state["clock"] < horizon_s:
            is_on = state["on"]
            length = rng.exponential(on_mean if is_on else off_mean)
            rate = on_rate if is_on else off_rate
            arrivals = rng.poisson(rate * length) if rate > 0 else 0
            if arrivals:
                # Given their count, Poisson arrivals in a period are uniform over it.
                pieces.append(state["clock"] + np.sort(rng.random(arrivals)) * length)
                total += arrivals
            state["clock"] += length
            state["on"] = not is_on
        return np.concatenate(pieces) if pieces else np.empty(0)

    return next_chunk


# ---------------------------------------------------------------- the processes


def offline() -> ArrivalStream:
    """Every request at time 0."""
    return ArrivalStream(np.zeros)


def poisson(rate_per_s: float, rng: np.random.Generator) -> ArrivalStream:
    mean_gap = 1.0 / float(rate_per_s)
    return ArrivalStream(_renewal(rng, lambda n: rng.exponential(mean_gap, n)))


def gamma(rate_per_s: float, cv: float, rng: np.random.Generator) -> ArrivalStream:
    cv = float(cv)
    shape = 1.0 / (cv * cv)
    scale = 1.0 / (float(rate_per_s) * shape)  # mean gap = shape * scale
    return ArrivalStream(_renewal(rng, lambda n: rng.gamma(shape, scale, n)))


def constant(interval_s: float, rng: np.random.Generator) -> ArrivalStream:
    return ArrivalStream(_renewal(rng, lambda n: np.full(n, float(interval_s))))


def time_varying(
    points: Iterable[tuple[float, float]],
    linear: bool,
    period_s: float | None,
    rng: np.random.Generator,
    horizon_s: float = math.inf,
) -> ArrivalStream:
    rate, peak, end_s, skip = piecewise_rate(points, linear, period_s)
    return ArrivalStream(_thinned(rng, rate, peak, min(end_s, horizon_s), skip))


def diurnal(
    mean_rate_per_s: float,
    peak_to_trough: float,
    period_s: float,
    peak_time_s: float,
    rng: np.random.Generator,
    horizon_s: float = math.inf,
) -> ArrivalStream:
    rate, peak = diurnal_rate(mean_rate_per_s, peak_to_trough, period_s, peak_time_s)
    return ArrivalStream(_thinned(rng, rate, peak, horizon_s))


def on_off(
    on_rate_per_s: float,
    off_rate_per_s: float,
    on_duration_s: float,
    off_duration_s: float,
    random_durations: bool,
    rng: np.random.Generator,
    horizon_s: float = math.inf,
) -> ArrivalStream:
    on_rate, off_rate = float(on_rate_per_s), float(off_rate_per_s or 0.0)
    on_s, off_s = float(on_duration_s), float(off_duration_s)
    if random_durations:
        return ArrivalStream(_on_off_random(rng, on_rate, off_rate, on_s, off_s, horizon_s))
    schedule = [(0.0, on_rate), (on_s, off_rate)]
    rate, peak, end_s, skip = piecewise_rate(schedule, False, on_s + off_s)
    return ArrivalStream(_thinned(rng, rate, peak, min(end_s, horizon_s), skip))
