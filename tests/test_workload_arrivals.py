"""Arrival processes: rates, burstiness and time-varying intensity against theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from simulator.workload.arrivals import diurnal_rate
from simulator.workload.config import ArrivalConfig

ARRIVAL = TypeAdapter(ArrivalConfig)


def arrival_times(
    spec: dict, *, until_s: float | None = None, count: int | None = None, seed: int = 3
) -> np.ndarray:
    stream = ARRIVAL.validate_python(spec).stream(np.random.default_rng(seed))
    times = []
    while True:
        t = stream.next()
        if (until_s is not None and t >= until_s) or t == math.inf:
            break
        times.append(t)
        if count is not None and len(times) >= count:
            break
    return np.array(times)


def cv_of_gaps(times: np.ndarray) -> float:
    gaps = np.diff(np.concatenate([[0.0], times]))
    return gaps.std() / gaps.mean()


def assert_count_close(count: int, expected: float) -> None:
    """A Poisson count is within 5 standard deviations (sqrt of its mean) of its mean."""
    assert abs(count - expected) < 5 * math.sqrt(expected), (count, expected)


def test_poisson_rate_and_unit_cv():
    times = arrival_times({"process": "poisson", "rate_per_s": 50}, count=100_000)
    assert (np.diff(times) >= 0).all() and times[0] > 0
    assert_count_close(int((times < 1000).sum()), 50 * 1000)
    assert cv_of_gaps(times) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_has_requested_rate_and_cv(cv):
    times = arrival_times({"process": "gamma", "rate_per_s": 20, "cv": cv}, count=200_000)
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert gaps.mean() == pytest.approx(1 / 20, rel=5 * cv / math.sqrt(len(gaps)))
    assert cv_of_gaps(times) == pytest.approx(cv, rel=0.05)


def test_constant_interval():
    times = arrival_times({"process": "constant", "interval_s": 0.25}, count=8)
    assert times == pytest.approx([0.25 * k for k in range(1, 9)])
    by_rate = arrival_times({"process": "constant", "rate_per_s": 4}, count=8)
    assert by_rate == pytest.approx(times)


def test_step_schedule_integrates_to_expected_count():
    spec = {
        "process": "time_varying",
        "points": [
            {"time_s": 0, "rate_per_s": 10},
            {"time_s": 100, "rate_per_s": 50},
            {"time_s": 300, "rate_per_s": 5},
        ],
    }
    times = arrival_times(spec, until_s=1000)
    assert_count_close(int((times < 100).sum()), 10 * 100)
    assert_count_close(int(((times >= 100) & (times < 300)).sum()), 50 * 200)
    assert_count_close(int((times >= 300).sum()), 5 * 700)


def test_linear_periodic_schedule_integrates_to_expected_count():
    # A triangle repeating every 200 s: 0 -> 40/s at 100 s -> back to 0 at 200 s.
    spec = {
        "process": "time_varying",
        "interpolation": "linear",
        "period_s": 200,
        "points": [{"time_s": 0, "rate_per_s": 0}, {"time_s": 100, "rate_per_s": 40}],
    }
    times = arrival_times(spec, until_s=2000)
    assert_count_close(len(times), 10 * (0.5 * 200 * 40))
    phase = np.mod(times, 200)
    # Within a period, the first 50 s hold 1/8 of the triangle's area.
    assert_count_close(int((phase < 50).sum()), len(times) / 8)


def test_schedule_ending_at_zero_rate_ends_the_stream():
    spec = {
        "process": "time_varying",
        "points": [{"time_s": 0, "rate_per_s": 20}, {"time_s": 50, "rate_per_s": 0}],
    }
    times = arrival_times(spec)  # no limit: must stop by itself
    assert times.max() < 50
    assert_count_close(len(times), 20 * 50)


def test_diurnal_curve_mean_and_peak_to_trough():
    spec = {
        "process": "diurnal",
        "mean_rate_per_s": 5,
        "peak_to_trough": 4,
        "period_s": 1000,
        "peak_time_s": 250,
    }
    a = ARRIVAL.validate_python(spec)
    rate, peak = diurnal_rate(a.mean_rate_per_s, a.peak_to_trough, a.period_s, a.peak_time_s)
    grid = np.linspace(0, 1000, 100_001)
    assert rate(grid).max() / rate(grid).min() == pytest.approx(4)
    assert rate(np.array([250.0]))[0] == pytest.approx(peak)
    times = arrival_times(spec, until_s=20_000)
    assert_count_close(len(times), 5 * 20_000)
    # Arrivals near the peak outnumber those near the trough by about the ratio.
    phase = np.mod(times, 1000)
    near_peak = int((np.abs(phase - 250) < 25).sum())
    near_trough = int((np.abs(phase - 750) < 25).sum())
    assert near_peak / near_trough == pytest.approx(4, rel=0.15)


def test_on_off_fixed_bursts():
    spec = {"process": "on_off", "on_rate_per_s": 100, "on_duration_s": 2, "off_duration_s": 8}
    times = arrival_times(spec, until_s=1000)
    assert (np.mod(times, 10) < 2).all()
    assert_count_close(len(times), 100 * 2 * 100)
    assert cv_of_gaps(times) > 1.5  # bursty


def test_on_off_random_durations_mean_rate():
    spec = {
        "process": "on_off",
        "on_rate_per_s": 100,
        "off_rate_per_s": 10,
        "on_duration_s": 1,
        "off_duration_s": 4,
        "random_durations": True,
    }
    times = arrival_times(spec, until_s=5000)
    assert (np.diff(times) >= 0).all()
    mean_rate = (100 * 1 + 10 * 4) / 5
    # Random period lengths add variance beyond Poisson: allow 5 %.
    assert len(times) / 5000 == pytest.approx(mean_rate, rel=0.05)


def test_same_seed_same_times_different_seed_different_times():
    spec = {"process": "gamma", "rate_per_s": 10, "cv": 3}
    first = arrival_times(spec, count=5000, seed=7)
    assert np.array_equal(first, arrival_times(spec, count=5000, seed=7))
    assert not np.array_equal(first, arrival_times(spec, count=5000, seed=8))
