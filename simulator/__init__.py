"""servesim: a capacity-planning simulator for serving large language models.

The Python API for scripts and notebooks::

    import simulator
    scenario = simulator.load_scenario("workloads/quickstart.yaml")
    result = simulator.run(scenario)          # .summary, .requests, .timeseries
    table = simulator.sweep(scenario, {"workload.arrival.rate_per_s": [5, 10, 20]})
    answer = simulator.plan(scenario)         # max rate, fewest replicas, costs
"""

import importlib

#: Public names and the module that defines each (imported on first use, so that the
#: command line starts without loading the whole package).
_EXPORTS = {
    "Result": "simulator.api",
    "build_simulation": "simulator.api",
    "load_scenario": "simulator.api",
    "run": "simulator.api",
    "scenario_from_dict": "simulator.api",
    "PlanConfig": "simulator.planning",
    "PlanResult": "simulator.planning",
    "fewest_replicas": "simulator.planning",
    "load_plan_file": "simulator.planning",
    "max_sustainable_rate": "simulator.planning",
    "plan": "simulator.planning",
    "search_configurations": "simulator.planning",
    "sweep": "simulator.planning",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "PlanConfig",
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
