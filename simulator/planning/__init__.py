"""Capacity planning: maximum sustainable rate, fewest replicas, configuration search,
sweeps on local processes or Dask, and cost of ownership (cloud, owned, API).

Notebook use::

    from simulator.planning import plan, sweep, max_sustainable_rate, fewest_replicas
    result = plan("workloads/plan_chat.yaml")
    result.max_rate_per_s, result.to_dict()["candidates"]
    frame = sweep(scenario, {"hardware.gpu": ["h100-sxm", "h200"]}, workers=2)
"""

from simulator.planning.config import (
    PlanConfig,
    PlanFile,
    SearchConfig,
    TcoConfig,
    load_plan_file,
)
from simulator.planning.costs import PlannedCosts, planned_costs
from simulator.planning.plan import PlanResult, plan
from simulator.planning.rate import RateSearch, max_sustainable_rate
from simulator.planning.replicas import ReplicaSearch, fewest_replicas
from simulator.planning.search import Candidate, SearchResult, pareto_flags, search_configurations
from simulator.planning.sweep import parse_grid, scenario_hash, sweep, write_table

__all__ = [
    "Candidate",
    "PlanConfig",
    "PlanFile",
    "PlanResult",
    "PlannedCosts",
    "RateSearch",
    "ReplicaSearch",
    "SearchConfig",
    "SearchResult",
    "TcoConfig",
    "fewest_replicas",
    "load_plan_file",
    "max_sustainable_rate",
    "pareto_flags",
    "parse_grid",
    "plan",
    "planned_costs",
    "scenario_hash",
    "search_configurations",
    "sweep",
    "write_table",
]
