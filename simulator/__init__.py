"""servesim: a capacity-planning simulator for serving large language models.

The Python API for scripts and notebooks::

    import simulator
    scenario = simulator.load_scenario("workloads/quickstart.yaml")
    result = simulator.run(scenario)          # .summary, .requests, .timeseries
    table = simulator.sweep(scenario, {"workload.arrival.rate_per_s": [5, 10, 20]})
    answer = simulator.plan(scenario)         # max rate, fewest replicas, costs
"""

from simulator.api import Result, build_simulation, load_scenario, run, scenario_from_dict
from simulator.planning import (
    PlanResult,
    fewest_replicas,
    load_plan_file,
    max_sustainable_rate,
    plan,
    search_configurations,
    sweep,
)

__version__ = "0.1.0"

__all__ = [
    "PlanResult",
    "Result",
    "__version__",
    "build_simulation",
    "fewest_replicas",
    "load_plan_file",
    "load_scenario",
    "max_sustainable_rate",
    "plan",
    "run",
    "scenario_from_dict",
    "search_configurations",
    "sweep",
]
