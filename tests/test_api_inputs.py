"""Wrong arguments to the public Python API are user errors naming the argument, the value
given and what is allowed, never an internal AttributeError, TypeError or pydantic dump."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simulator import api
from simulator.config.loader import load_scenario, scenario_from_dict, with_settings
from simulator.errors import UserError
from simulator.planning import PlanConfig, fewest_replicas, max_sustainable_rate, plan
from simulator.reports.report import build_report

QUICKSTART = Path(__file__).resolve().parent.parent / "workloads" / "quickstart.yaml"
SMALL = ["workload.num_requests=50"]
#: Planning settings that keep a run short where a wrong argument was once accepted.
QUICK_PLAN = PlanConfig(
    min_requests_per_replica=20, max_requests_per_replica=40, rate_tolerance=0.5
)
NOT_A_SCENARIO = [None, {}, {"model": "llama-3.1-8b"}, 3]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(QUICKSTART, SMALL)


# ------------------------------------------------------------- 1: not a scenario
@pytest.mark.parametrize("value", NOT_A_SCENARIO)
@pytest.mark.parametrize(
    "call",
    [
        plan,
        build_report,
        max_sustainable_rate,
        lambda s: fewest_replicas(s, 5.0),
        api.build_simulation,
        api.build_cost_model,
        api.build_memory_plan,
        api.resolve_calibration,
        api.resolve_pricing,
    ],
    ids=[
        "plan",
        "build_report",
        "max_sustainable_rate",
        "fewest_replicas",
        "build_simulation",
        "build_cost_model",
        "build_memory_plan",
        "resolve_calibration",
        "resolve_pricing",
    ],
)
def test_what_is_not_a_scenario_is_refused(call, value):
    with pytest.raises(UserError, match=r"(scenario|source): expected a Scenario") as info:
        call(value)
    assert f"got {'None' if value is None else type(value).__name__}" in str(info.value)


def test_build_simulation_reads_a_scenario_path_like_run():
    simulation = api.build_simulation(str(QUICKSTART))
    assert type(simulation).__name__ == "Simulation"
    with pytest.raises(UserError, match=r"x\.yaml.*does not exist"):
        api.build_simulation("x.yaml")


@pytest.mark.parametrize("search", [3, "gpus"])
def test_plan_refuses_a_search_that_is_not_one(scenario, search):
    with pytest.raises(UserError, match=r"plan: search: expected a SearchConfig"):
        plan(scenario, QUICK_PLAN, search)


def test_plan_validates_mappings_like_the_file_sections(scenario):
    with pytest.raises(UserError, match=r"plan: search\.gpus: .*valid list \(got 3\)"):
        plan(scenario, QUICK_PLAN, {"gpus": 3})
    with pytest.raises(UserError, match=r"plan: plan_config\.target_rate_per_s: .*\(got -1\)"):
        plan(scenario, {"target_rate_per_s": -1})
    with pytest.raises(UserError, match=r"plan: plan_config: expected a PlanConfig"):
        plan(scenario, 3)


# ------------------------------------------------------------- 2: not a path
@pytest.mark.parametrize("value", [None, 3, {"model": "llama-3.1-8b"}])
@pytest.mark.parametrize("call", [load_scenario, api.run], ids=["load_scenario", "run"])
def test_what_is_not_a_path_is_refused(call, value):
    with pytest.raises(UserError, match=r"expected .*a scenario file path \(str or Path\)"):
        call(value)


def test_a_mapping_given_for_a_path_points_to_scenario_from_dict():
    with pytest.raises(UserError, match=r"scenario_from_dict"):
        load_scenario({"model": "llama-3.1-8b"})


def test_scenario_from_dict_refuses_a_base_dir_that_is_not_a_path():
    with pytest.raises(UserError, match=r"scenario_from_dict: base_dir: expected a folder path"):
        scenario_from_dict({"model": "llama-3.1-8b"}, base_dir=3)


# ------------------------------------------------------------- 3: overrides
@pytest.mark.parametrize(
    "overrides",
    [
        "engine.max_num_seqs=4",
        ["engine.max_num_seqs=4"],
        ("engine.max_num_seqs=4",),
        {"engine.max_num_seqs": 4},
    ],
)
def test_overrides_take_a_string_a_list_or_a_mapping(overrides):
    assert load_scenario(QUICKSTART, overrides).engine.max_num_seqs == 4


def test_mapping_overrides_take_values_as_given_and_are_not_changed():
    given = {"workload.arrival": {"process": "poisson", "rate_per_s": 3}, "workload.seed": 7}
    loaded = load_scenario(QUICKSTART, given)
    assert (loaded.workload.arrival.rate_per_s, loaded.workload.seed) == (3, 7)
    assert given["workload.arrival"] == {"process": "poisson", "rate_per_s": 3}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([1, 2], r"overrides item: expected a 'dotted\.key=value' string, got int 1"),
        (3, r"overrides: expected a 'dotted\.key=value' string, a list of them or a"),
        ({3: 4}, r"overrides key: expected a 'dotted\.key' string, got int 3"),
        ("engine.max_num_seqs", r"--set 'engine\.max_num_seqs': expected dotted\.key=value"),
    ],
)
def test_malformed_overrides_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        load_scenario(QUICKSTART, overrides)


def test_with_settings_takes_the_same_forms(scenario):
    assert with_settings(scenario, "engine.max_num_seqs=8").engine.max_num_seqs == 8


# ------------------------------------------------------------- 4: scenario variants
@pytest.mark.parametrize(
    ("vary", "message"),
    [
        (
            lambda s: s.with_rate(-5),
            r"with_rate\(rate_per_s=-5\): workload\.arrival\.rate_per_s: .*allowed: a number "
            r"of requests/s from 1e-06 to 1e\+06",
        ),
        (lambda s: s.with_rate(math.nan), r"with_rate\(rate_per_s=nan\): .*finite"),
        (lambda s: s.with_rate("fast"), r"with_rate\(rate_per_s='fast'\): expected a number"),
        (lambda s: s.with_rate(True), r"with_rate\(rate_per_s=True\): expected a number"),
        (
            lambda s: s.with_replicas(2.5),
            r"with_replicas\(replicas=2\.5\): hardware\.replicas: must be a whole number "
            r"\(got 2\.5\); allowed: a whole number from 1 to 10000",
        ),
        (lambda s: s.with_replicas(0), r"with_replicas\(replicas=0\): .*from 1 to 10000"),
        (
            lambda s: s.with_num_requests(-1),
            r"with_num_requests\(num_requests=-1\): workload\.num_requests: .*allowed: a whole",
        ),
        (lambda s: s.with_seed_offset("a"), r"with_seed_offset\(offset='a'\): expected a whole"),
    ],
)
def test_scenario_variants_raise_readable_user_errors(scenario, vary, message):
    with pytest.raises(UserError, match=message) as info:
        vary(scenario)
    assert isinstance(info.value, ValueError)  # what pydantic raised before, still caught
    assert "h100-sxm" not in str(info.value)  # no dump of the section
    assert "\n" not in str(info.value)


# ------------------------------------------------------------- 5: target rates
@pytest.mark.parametrize("target", [math.nan, math.inf, -1.0, 0, "5", True])
def test_fewest_replicas_refuses_a_target_that_is_not_a_positive_rate(scenario, target):
    with pytest.raises(
        UserError, match=r"fewest_replicas: target_rate_per_s: expected a finite number"
    ):
        fewest_replicas(scenario, target, QUICK_PLAN)


# ------------------------------------------------------------- 6: replications
@pytest.mark.parametrize(
    ("replications", "message"),
    [
        (-3, r"replications: -3 must be >= 1"),
        (0, r"replications: 0 must be >= 1"),
        (1.5, r"replications: 1\.5 must be a whole number >= 1"),
        (True, r"replications: True must be a whole number >= 1"),
        (101, r"replications: 101 must be <= 100"),
    ],
)
def test_replications_are_refused_as_the_command_line_refuses_them(scenario, replications, message):
    with pytest.raises(UserError, match=f"plan: {message}"):
        plan(scenario, QUICK_PLAN, replications=replications)
    with pytest.raises(UserError, match=message):
        max_sustainable_rate(scenario, QUICK_PLAN, replications=replications)
    with pytest.raises(UserError, match=f"fewest_replicas: {message}"):
        fewest_replicas(scenario, 5.0, QUICK_PLAN, replications=replications)


@pytest.mark.parametrize("replications", [0, -1, 2.0])
def test_build_report_refuses_replications_before_simulating(replications):
    with pytest.raises(UserError, match=r"build_report: replications: "):
        build_report(QUICKSTART, SMALL, replications=replications)


@pytest.mark.parametrize("workers", [0, "2"])
def test_plan_refuses_workers_below_one(scenario, workers):
    with pytest.raises(UserError, match=r"plan: workers: .* >= 1"):
        plan(scenario, QUICK_PLAN, workers=workers)


def test_assignments_to_scenario_sections_are_checked():
    """A notebook that assigns a bad value hears of it then, naming the field, not from a
    numpy error deep in a run."""
    from pydantic import ValidationError

    scenario = load_scenario(QUICKSTART)
    with pytest.raises(ValidationError, match="num_requests"):
        scenario.workload.num_requests = -1
    with pytest.raises(ValidationError, match="rate_per_s"):
        scenario.workload.arrival.rate_per_s = -5
    with pytest.raises(ValidationError, match="replications"):
        PlanConfig().replications = -3
