"""Autoscaling: the fleet follows the load within its bounds; replica-hours are what it held."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.api import run
from simulator.engine.autoscaler import time_weighted_mean
from tests.conftest import make_scenario

STEP_LOAD = {
    "arrival": {
        "process": "time_varying",
        "interpolation": "step",
        "points": [
            {"time_s": 0, "rate_per_s": 5},
            {"time_s": 300, "rate_per_s": 50},
            {"time_s": 600, "rate_per_s": 5},
        ],
    },
    "prompt_tokens": {"distribution": "lognormal", "mean": 1000, "sigma": 0.8},
    "output_tokens": {"distribution": "fixed", "value": 200},
    "duration_s": 1200,
    "num_requests": None,
}
AUTOSCALE = {
    "min_replicas": 1,
    "max_replicas": 5,
    "metric": "queue",
    "target": 4,
    "scale_up_delay_s": 60,
    "scale_down_after_s": 60,
    "evaluate_every_s": 10,
}


@pytest.fixture(scope="module")
def step_run():
    scenario = make_scenario(
        model="llama-3.1-8b", hardware={"autoscale": AUTOSCALE}, workload=STEP_LOAD
    )
    return run(scenario)


def test_fleet_grows_after_the_delay_and_the_queue_drains(step_run):
    fleet = step_run.records.fleet
    t, serving, held = (np.array(x) for x in (fleet.times_s, fleet.serving, fleet.held))
    first_start = t[np.argmax(held > 1)]
    first_serving = t[np.argmax(serving > 1)]
    assert 300 <= first_start < 400  # reacts to the step at 300 s
    assert first_serving - first_start == pytest.approx(60)  # serves after its start-up delay
    assert serving.max() > 1
    ts = step_run.records.timeseries
    late_high = (ts.time_s > 550) & (ts.time_s < 600)
    early_high = (ts.time_s > 300) & (ts.time_s < 360)
    assert ts.waiting[late_high].mean() < ts.waiting[early_high].max()
    assert serving[-2] == 1 or held[-1] == 0  # back to the minimum once the load falls


def test_replica_hours_equal_the_time_weighted_replica_count(step_run):
    fleet = step_run.records.fleet
    mean_held = time_weighted_mean(fleet.times_s, fleet.held, step_run.records.end_s)
    assert fleet.mean_held == pytest.approx(mean_held)
    assert fleet.replica_seconds_held == pytest.approx(mean_held * step_run.records.end_s)
    # the window's cost: replicas held at each moment of the window, at $2/GPU-hour
    summary = step_run.summary
    start, end = summary["window_start_s"], summary["window_end_s"]
    times = np.append(fleet.times_s, step_run.records.end_s)
    held_s = np.dot(fleet.held, np.clip(times[1:], start, end) - np.clip(times[:-1], start, end))
    gpus_per_replica = fleet.gpu_seconds_held / fleet.replica_seconds_held
    assert summary["gpu_cost_usd"] == pytest.approx(2.0 * held_s * gpus_per_replica / 3600)


def test_fleet_never_leaves_its_bounds(step_run):
    fleet = step_run.records.fleet
    held = np.array(fleet.held[:-1])  # the last entry is the release at the end
    serving = np.array(fleet.serving[:-1])
    assert held.max() <= AUTOSCALE["max_replicas"]
    assert serving.min() >= AUTOSCALE["min_replicas"]


def test_a_fleet_that_never_scales_reports_the_one_replica_it_held():
    """KV use never reaches a target of 5, so the fleet holds its one replica throughout:
    the GPU count, the price line and GPU busy are that replica's, not the 4 it may run."""
    from simulator.metrics import format_summary_table

    never = {"max_replicas": 4, "metric": "kv", "target": 5}
    closed_loop = {"arrival": {"process": "closed_loop", "users": 20}, "num_requests": 100}
    result = run(make_scenario(hardware={"autoscale": never}, workload=closed_loop))
    records, summary = result.records, result.summary_obj
    assert records.num_gpus == 4 and max(records.fleet.held) == 1
    assert summary.num_gpus == 1
    held_s = records.end_s - records.requests.arrival_s.min()  # one GPU, held throughout
    busy_s = sum(r.busy_s for r in records.replicas)
    assert summary.gpu_busy_fraction == pytest.approx(busy_s / held_s)
    assert summary.gpu_cost_usd == pytest.approx(2.0 * summary.duration_s / 3600)
    text = format_summary_table(summary)
    assert "$2/GPU-hour × 1 GPU\n" in text


def test_a_sketched_fleet_is_priced_and_kept_busy_on_the_replicas_held():
    """A run too long to keep its rows (summarised through sketches) counts the same held
    GPUs: GPU busy over those held, the cost over those held in its window."""
    from simulator.api import build_simulation, summarize_run

    never = {"max_replicas": 4, "metric": "kv", "target": 5}
    scenario = make_scenario(hardware={"autoscale": never})
    records = build_simulation(scenario, exact_requests=100).run()
    summary = summarize_run(scenario, records)
    assert records.request_sketch is not None and records.num_gpus == 4
    assert set(records.fleet.held[:-1]) == {1}  # one replica of one GPU until the release
    assert summary.num_gpus == 1
    held_s = records.end_s - records.request_sketch.first_arrival_s
    busy_s = sum(r.busy_s for r in records.replicas)
    assert summary.gpu_busy_fraction == pytest.approx(busy_s / held_s)
    assert summary.gpu_cost_usd == pytest.approx(2.0 * summary.duration_s / 3600)
