"""Typed scenario operations: a planner varies a validated scenario without dumping it."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.config.loader import load_scenario, scenario_from_dict, with_settings
from simulator.errors import UserError

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"

BASE = {
    "model": "llama-3.2-1b",
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 4},
        "prompt_tokens": {"distribution": "fixed", "value": 100},
        "output_tokens": {"distribution": "fixed", "value": 10},
        "num_requests": 50,
        "seed": 3,
    },
}


def _with_arrival(arrival: dict) -> dict:
    return {**BASE, "workload": {**BASE["workload"], "arrival": arrival}}


@pytest.mark.parametrize(
    ("arrival", "key"),
    [
        ({"process": "poisson", "rate_per_s": 4}, "rate_per_s"),
        ({"process": "gamma", "rate_per_s": 4, "cv": 2}, "rate_per_s"),
        ({"process": "constant", "interval_s": 0.25}, "rate_per_s"),
        ({"process": "diurnal", "mean_rate_per_s": 4, "peak_to_trough": 3}, "mean_rate_per_s"),
    ],
)
def test_with_rate_sets_the_rate_of_every_rated_process(arrival, key):
    scenario = scenario_from_dict(_with_arrival(arrival))
    assert scenario.workload.mean_rate() == pytest.approx(4.0)
    faster = scenario.with_rate(9.5)
    assert faster.workload.mean_rate() == 9.5
    assert getattr(faster.workload.arrival, key) == 9.5
    # what the user wrote stays written, and the copy validates back to itself
    data = faster.model_dump(mode="json", exclude_unset=True)
    assert data["workload"]["arrival"][key] == 9.5
    assert "interval_s" not in data["workload"]["arrival"]
    assert scenario_from_dict(data) == faster.replace()
    assert scenario.workload.mean_rate() == pytest.approx(4.0)  # the original is unchanged


def test_with_rate_of_a_process_without_one_rate_names_the_rated_ones():
    scenario = scenario_from_dict(
        _with_arrival(
            {"process": "on_off", "on_rate_per_s": 5, "on_duration_s": 1, "off_duration_s": 1}
        )
    )
    assert scenario.workload.mean_rate() is None
    with pytest.raises(UserError, match=r"poisson, gamma, constant, diurnal \(got on_off"):
        scenario.with_rate(3)


def test_replicas_seed_and_requests_keep_the_rest():
    scenario = load_scenario(WORKLOADS / "quickstart.yaml")
    point = scenario.with_replicas(3).with_seed_offset(2).with_num_requests(77)
    assert point.hardware.replicas == 3
    assert point.workload.seed == scenario.workload.seed + 2
    assert point.workload.num_requests == 77
    assert point.base_dir == scenario.base_dir == WORKLOADS.resolve()
    assert point.engine == scenario.engine
    assert point.engine.model_fields_set == scenario.engine.model_fields_set


def test_invalid_typed_values_are_rejected():
    scenario = scenario_from_dict(BASE)
    with pytest.raises(ValueError, match="replicas"):
        scenario.with_replicas(0)
    with pytest.raises(ValueError, match="rate_per_s"):
        scenario.with_rate(-1.0)


def test_with_settings_checks_keys_like_set():
    scenario = scenario_from_dict(BASE, base_dir=Path("/tmp"))
    changed = with_settings(scenario, {"engine.max_num_seqs": 8, "hardware.gpu": "h200"})
    assert (changed.engine.max_num_seqs, changed.hardware.gpu) == (8, "h200")
    assert changed.base_dir == Path("/tmp")
    with pytest.raises(UserError, match=r"engine\.max_num_seqz: unknown key"):
        with_settings(scenario, {"engine.max_num_seqz": 8})


def test_a_rule_across_sections_holds_for_variants():
    scenario = scenario_from_dict(BASE)
    with pytest.raises(ValueError, match="does not divide"):
        scenario.replace(hardware=scenario.hardware.replace(tensor_parallel=3))


def test_base_dir_is_not_a_key_of_the_file():
    with pytest.raises(UserError, match="base_dir: unknown key"):
        scenario_from_dict({**BASE, "base_dir": "/somewhere"})
