"""Traffic whose rate changes is planned for its busiest window.

A daily cycle (``diurnal``) or a schedule (``time_varying``) has a mean rate, which sets the
monthly token volume and so the bill, and a peak, which sets the fleet. The planner cuts the
cycle into the windows of the run's summary (an hour of a day: ``metrics.per_window``), takes
the window with the highest mean rate, and sizes the fleet for steady Poisson traffic at that
rate (``peak_equivalent``): the rate changes slowly against the seconds a request takes, so
the busiest hour behaves like steady traffic at its own rate. The scenario's rate axis
(``with_rate``) stays its mean rate; ``peak_factor`` = peak window rate / mean rate converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.config.scenario import Scenario
from simulator.metrics.per_window import default_window_s

#: Points per window when the rate curve is averaged over windows.
POINTS_PER_WINDOW = 60


@dataclass(frozen=True)
class TrafficShape:
    """The mean and peak-window rates of changing traffic (requests/s)."""

    process: str
    window_s: float
    mean_rate_per_s: float
    peak_rate_per_s: float

    @property
    def peak_factor(self) -> float:
        return self.peak_rate_per_s / self.mean_rate_per_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "window_s": self.window_s,
            "mean_rate_per_s": self.mean_rate_per_s,
            "peak_window_rate_per_s": self.peak_rate_per_s,
            "peak_factor": self.peak_factor,
            "sized_for": "the peak window: steady Poisson traffic at its mean rate",
        }


def _rate_curve(arrival) -> tuple[Any, float, float | None]:
    """(rate function, span to average over, period) of a changing arrival process."""
    from simulator.workload.arrivals import diurnal_rate, piecewise_rate

    if arrival.process == "diurnal":
        rate, _ = diurnal_rate(
            arrival.mean_rate_per_s, arrival.peak_to_trough, arrival.period_s, arrival.peak_time_s
        )
        return rate, float(arrival.period_s), float(arrival.period_s)
    points = [(p.time_s, p.rate_per_s) for p in arrival.points]
    rate, _, _, _ = piecewise_rate(points, arrival.interpolation == "linear", arrival.period_s)
    period = arrival.period_s
    span = period or max(p.time_s for p in arrival.points) * 2 or 3600.0
    return rate, float(span), period


def traffic_shape(scenario: Scenario) -> TrafficShape | None:
    """The traffic's mean and busiest-window rates; None for steady traffic (or processes
    without a rate curve: on/off bursts, traces)."""
    arrival = scenario.workload.arrival
    if arrival is None or arrival.process not in ("diurnal", "time_varying"):
        return None
    rate, span, period = _rate_curve(arrival)
    window = default_window_s(period, span)
    step = window / POINTS_PER_WINDOW
    times = np.arange(0.0, span + window, step)
    values = rate(times)
    area = np.concatenate([[0.0], np.cumsum(values) * step])
    per_window = (area[POINTS_PER_WINDOW:] - area[:-POINTS_PER_WINDOW]) / window
    mean = float(np.mean(values[: int(span / step)]))
    peak = float(per_window[: int(span / step)].max())
    return TrafficShape(arrival.process, window, mean, max(peak, mean))


def peak_equivalent(scenario: Scenario, shape: TrafficShape) -> Scenario:
    """The scenario with steady Poisson arrivals at the peak window's rate (its requests
    counted, not timed: ``num_requests`` is the planner's minimum)."""
    from simulator.workload.config import PoissonArrival

    arrival = PoissonArrival(process="poisson", rate_per_s=shape.peak_rate_per_s)
    workload = scenario.workload.replace(
        arrival=arrival, duration_s=None, num_requests=scenario.workload.num_requests or 1000
    )
    return scenario.replace(workload=workload)
