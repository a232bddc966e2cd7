"""Open-loop arrival processes: absolute arrival times in seconds, produced in chunks.

Each process starts at time 0 with no arrival at exactly 0 (the first arrival comes one
gap later), produces non-decreasing times, and signals its end (a schedule that stays at
rate zero forever) with ``math.inf``. Specs are dumped ``ArrivalConfig`` mappings.

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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from simulator.errors import UserError
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
    rng: np.random.Generator, rate: RateFunction, peak_rate: float, end_s: float
) -> Callable[[int], np.ndarray]:
    """Non-homogeneous Poisson arrivals by thinning (Lewis & Shedler): candidates at the
    peak rate are kept with probability rate(t) / peak_rate. No arrivals after ``end_s``."""
    clock = [0.0]

    def next_chunk(count: int) -> np.ndarray:
        kept: list[np.ndarray] = []
        total = 0
        while total == 0 and clock[0] < end_s:
            candidates = clock[0] + np.cumsum(rng.exponential(1.0 / peak_rate, count))
            clock[0] = float(candidates[-1])
            accept = rng.random(count) * peak_rate < rate(candidates)
            chosen = candidates[accept & (candidates < end_s)]
            kept.append(chosen)
            total += len(chosen)
        return np.concatenate(kept) if kept else np.empty(0)

    return next_chunk


def piecewise_rate(spec: Mapping[str, Any]) -> tuple[RateFunction, float, float]:
    """Rate function, peak rate and end time (inf unless the rate stays 0 forever) of a
    ``time_varying`` spec."""
    points = sorted((float(t), float(r)) for t, r in _point_pairs(spec["points"]))
    times = np.array([t for t, _ in points])
    rates = np.array([r for _, r in points])
    period = spec.get("period_s")
    linear = spec.get("interpolation", "step") == "linear"

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
    return rate, float(rates.max()), end_s


def _point_pairs(points: list[Any]) -> list[tuple[float, float]]:
    pairs = []
    for point in points:
        if isinstance(point, Mapping):
            pairs.append((point["time_s"], point["rate_per_s"]))
        else:
            pairs.append((point[0], point[1]))
    return pairs


def diurnal_rate(spec: Mapping[str, Any]) -> tuple[RateFunction, float]:
    """Sinusoidal rate with mean ``mean_rate_per_s`` and peak/trough = ``peak_to_trough``."""
    mean = float(spec["mean_rate_per_s"])
    ratio = float(spec["peak_to_trough"])
    amplitude = (ratio - 1.0) / (ratio + 1.0)  # (1 + a) / (1 - a) == ratio
    period = float(spec.get("period_s", 86400.0))
    peak_time = float(spec.get("peak_time_s", 0.0))
    omega = 2.0 * math.pi / period
    return (lambda t: mean * (1.0 + amplitude * np.cos(omega * (t - peak_time)))), mean * (
        1.0 + amplitude
    )


def _on_off_random(rng: np.random.Generator, spec: Mapping[str, Any]):
    on_rate = float(spec["on_rate_per_s"])
    off_rate = float(spec.get("off_rate_per_s") or 0.0)
    on_mean, off_mean = float(spec["on_duration_s"]), float(spec["off_duration_s"])
    state = {"clock": 0.0, "on": True}

    def next_chunk(count: int) -> np.ndarray:
        pieces: list[np.ndarray] = []
        total = 0
        while total < count:
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
        return np.concatenate(pieces)

    return next_chunk


def build_arrivals(spec: Mapping[str, Any], rng: np.random.Generator) -> ArrivalStream:
    """An arrival stream for a dumped open-loop ``ArrivalConfig``."""
    process = spec["process"]
    if process == "offline":
        return ArrivalStream(np.zeros)
    if process == "poisson":
        mean_gap = 1.0 / float(spec["rate_per_s"])
        return ArrivalStream(_renewal(rng, lambda n: rng.exponential(mean_gap, n)))
    if process == "gamma":
        cv = float(spec["cv"])
        shape = 1.0 / (cv * cv)
        scale = 1.0 / (float(spec["rate_per_s"]) * shape)  # mean gap = shape * scale
        return ArrivalStream(_renewal(rng, lambda n: rng.gamma(shape, scale, n)))
    if process == "constant":
        interval = spec.get("interval_s") or 1.0 / float(spec["rate_per_s"])
        return ArrivalStream(_renewal(rng, lambda n: np.full(n, float(interval))))
    if process == "time_varying":
        rate, peak, end_s = piecewise_rate(spec)
        return ArrivalStream(_thinned(rng, rate, peak, end_s))
    if process == "diurnal":
        rate, peak = diurnal_rate(spec)
        return ArrivalStream(_thinned(rng, rate, peak, math.inf))
    if process == "on_off":
        if spec.get("random_durations"):
            return ArrivalStream(_on_off_random(rng, spec))
        on_s, off_s = float(spec["on_duration_s"]), float(spec["off_duration_s"])
        schedule = {
            "points": [
                [0.0, float(spec["on_rate_per_s"])],
                [on_s, float(spec.get("off_rate_per_s") or 0.0)],
            ],
            "period_s": on_s + off_s,
        }
        rate, peak, end_s = piecewise_rate(schedule)
        return ArrivalStream(_thinned(rng, rate, peak, end_s))
    raise UserError(
        f"workload.arrival.process: {process!r} is not an open-loop process "
        "(poisson, offline, gamma, constant, time_varying, diurnal, on_off)"
    )
