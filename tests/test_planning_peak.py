"""The busiest window of a changing traffic curve, which the planner sizes the fleet for."""

from __future__ import annotations

import math

import pytest

from simulator.planning.peak import peak_equivalent, traffic_shape
from tests.conftest import make_scenario


def test_diurnal_traffic_peaks_at_its_sinusoid_maximum():
    arrival = {
        "process": "diurnal",
        "mean_rate_per_s": 0.5,
        "peak_to_trough": 4,
        "period_s": 86400,
        "peak_time_s": 50400,
    }
    shape = traffic_shape(make_scenario(workload={"arrival": arrival, "num_requests": 100}))
    assert shape.mean_rate_per_s == pytest.approx(0.5, rel=1e-3)
    # peak / trough 4 -> amplitude 0.6; an hour's average sits just under the crest
    assert 0.79 < shape.peak_rate_per_s <= 0.8
    steady = peak_equivalent(make_scenario(workload={"arrival": arrival}), shape)
    assert steady.workload.arrival.rate_per_s == shape.peak_rate_per_s


@pytest.mark.parametrize("interpolation", ["step", "linear"])
def test_time_varying_traffic_peaks_in_its_busiest_window(interpolation):
    points = [
        {"time_s": 0, "rate_per_s": 1.0},
        {"time_s": 7200, "rate_per_s": 5.0},
        {"time_s": 14400, "rate_per_s": 1.0},
    ]
    arrival = {
        "process": "time_varying",
        "points": points,
        "interpolation": interpolation,
        "period_s": 21600,
    }
    shape = traffic_shape(make_scenario(workload={"arrival": arrival, "num_requests": 100}))
    if interpolation == "step":  # 5/s held for two hours, 1/s for four
        assert shape.peak_rate_per_s == pytest.approx(5.0)
        assert shape.mean_rate_per_s == pytest.approx((5 * 2 + 1 * 4) / 6, rel=1e-3)
    else:  # a triangle from 1 to 5 and back over four hours, then 1/s
        assert 4.5 < shape.peak_rate_per_s < 5.0
        assert shape.mean_rate_per_s == pytest.approx((3 * 4 + 1 * 2) / 6, rel=1e-3)
    assert math.isfinite(shape.window_s)


def test_steady_traffic_has_no_peak_window():
    arrival = {"process": "poisson", "rate_per_s": 2.0}
    assert traffic_shape(make_scenario(workload={"arrival": arrival})) is None


def test_planning_a_process_without_one_rate_is_refused_before_any_simulation():
    from simulator.errors import UserError
    from simulator.planning import plan

    arrival = {
        "process": "on_off",
        "on_rate_per_s": 8,
        "off_rate_per_s": 1,
        "on_duration_s": 10,
        "off_duration_s": 20,
    }
    with pytest.raises(UserError, match="on_off"):
        plan(make_scenario(workload={"arrival": arrival, "num_requests": 100}))
