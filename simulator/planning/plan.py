"""``plan``: everything ``servesim plan`` reports for one planning file.

1. the maximum sustainable rate of the scenario's own deployment (``rate``);
2. with ``plan.target_rate_per_s``: the fewest replicas that serve it;
3. with a ``search:`` section: the ranked configuration search (``search``);
4. the monthly cost of the planned deployment rented, owned, or replaced by an API, and the
   rates where the cheapest option changes (``costs``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.config.compile import reused_builds
from simulator.config.loader import refuse, validation_messages
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.bounds import gpus_per_replica
from simulator.planning.config import PlanConfig, PlanFile, SearchConfig, load_plan_file
from simulator.planning.costs import PlannedCosts, planned_costs
from simulator.planning.peak import TrafficShape, peak_equivalent, traffic_shape
from simulator.planning.points import check_replications
from simulator.planning.rate import RateSearch, max_sustainable_rate, require_one_replica_kind
from simulator.planning.replicas import ReplicaSearch, fewest_replicas
from simulator.planning.search import SearchResult, search_configurations


@dataclass
class PlanResult:
    """What the planner found (see the module docstring)."""

    scenario: Scenario
    plan: PlanConfig
    rate: RateSearch
    replicas: ReplicaSearch | None = None
    search: SearchResult | None = None
    costs: PlannedCosts | None = None
    notes: list[str] = field(default_factory=list)
    #: Headroom applied for the cost model's error (fraction of capacity).
    safety_margin: float = 0.0
    #: The validated error band of the scenario's GPU and engine (``metrics.error_band``).
    error_band: dict[str, Any] | None = None
    #: Changing traffic: its mean and peak-window rates (the fleet is sized for the peak).
    traffic: TrafficShape | None = None

    @property
    def max_rate_per_s(self) -> float | None:
        return self.rate.max_rate_per_s

    def to_dict(self) -> dict[str, Any]:
        hw = self.scenario.hardware
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "model": self.scenario.model,
            "deployment": {
                "gpu": hw.gpu,
                "tensor_parallel": hw.tensor_parallel,
                "gpus_per_replica": gpus_per_replica(self.scenario),
                "replicas": hw.replicas,
                "batching": self.scenario.engine.batching.policy,
            },
            "max_rate_per_s": self.rate.max_rate_per_s,
            "safety_margin": self.safety_margin,
            "max_rate_with_margin_per_s": (
                self.rate.max_rate_per_s / (1 + self.safety_margin)
                if self.rate.max_rate_per_s is not None
                else None
            ),
            "traffic": self.traffic.to_dict() if self.traffic else None,
            "rate_search": self.rate.to_dict(),
            "error_band": self.error_band,
            "fewest_replicas": self.replicas.to_dict() if self.replicas else None,
            "costs": self.costs.to_dict() if self.costs is not None else None,
            "notes": self.notes,
        }
        if self.search is not None:
            found = self.search.to_dict()
            out["candidates"] = found.pop("candidates")
            out["search"] = found
        return out


def _progress(enabled: bool):
    """A tqdm counter of simulations on stderr, and the callback that advances it."""
    if not enabled:
        return None, None
    import sys

    from tqdm import tqdm

    bar = tqdm(unit="sim", desc="rate search", file=sys.stderr, leave=False)

    def advance(rate_per_s: float, replicas: int, verdict) -> None:
        bar.update(1)
        bar.set_postfix(rate=f"{rate_per_s:.4g}/s", replicas=replicas, verdict=verdict.state)

    return bar, advance


def _per_replica_knee(rate: RateSearch, scenario: Scenario) -> float | None:
    """One replica's knee (or its certified maximum rate), where the replica search starts."""
    found = rate.knee_per_s or rate.max_rate_per_s
    return found / scenario.hardware.replicas if found else None


def resolve_safety_margin(plan_config: PlanConfig, scenario: Scenario | None = None) -> float:
    """The plan's headroom: as configured, else the median of the validated error band of
    the scenario's GPU and engine (``metrics.error_band``)."""
    if plan_config.safety_margin is not None:
        return plan_config.safety_margin
    from simulator.api import error_band_for, validated_error_band

    band = error_band_for(scenario) if scenario is not None else validated_error_band()
    return band["median_pct"] / 100 if band else 0.0


def _fleet(
    scenario: Scenario,
    plan_config: PlanConfig,
    rate: RateSearch,
    target_per_s: float,
    on_simulated,
) -> ReplicaSearch:
    """The fewest-replicas search for ``target_per_s`` (already with its headroom and, for
    changing traffic, at its peak window), skipped when no rate meets the SLO at all."""
    if rate.max_rate_per_s is None:
        # no rate meets the SLO on the scenario's deployment (or none could be measured):
        # a larger fleet is no better
        return ReplicaSearch(
            target_per_s,
            None,
            None,
            rate.reason,
            rate.rate_bound_per_s,
            0,
            reason=f"no sustainable rate on one deployment: {rate.reason}",
        )
    return fewest_replicas(
        scenario,
        target_per_s,
        plan_config,
        on_simulated=on_simulated,
        per_replica_rate_per_s=_per_replica_knee(rate, scenario),
    )


def _costs(
    sizing: Scenario,
    plan_config: PlanConfig,
    rate: RateSearch,
    replicas: ReplicaSearch | None,
    margin: float,
    peak_factor: float,
) -> PlannedCosts | None:
    """Costs of the planned fleet at the target (or at the maximum rate without one); rates
    here are the traffic's mean, the fleet sized for its peak window."""
    deployed = sizing.hardware.replicas
    if plan_config.target_rate_per_s:
        if replicas is None or not replicas.replicas:
            return None
        per_replica = (rate.max_rate_per_s or 0.0) / deployed / (1 + margin)
        target = plan_config.target_rate_per_s
        return planned_costs(
            sizing,
            target,
            replicas.replicas,
            per_replica or target * peak_factor / replicas.replicas,
            replicas.summaries,
            plan_config,
            peak_factor=peak_factor,
        )
    if not rate.max_rate_per_s:
        return None
    return planned_costs(
        sizing,
        rate.max_rate_per_s / peak_factor,
        deployed,
        rate.max_rate_per_s / deployed,
        rate.summaries,
        plan_config,
        peak_factor=peak_factor,
    )


@reused_builds()
def _require_rate(scenario: Scenario) -> None:
    """Before any simulation: the rate search varies the arrival rate, so the process must
    have one."""
    from simulator.workload.config import rate_error

    arrival = scenario.workload.arrival
    if arrival is None or arrival.rate_key is None:
        raise UserError(rate_error(arrival.process if arrival is not None else None))


#: What ``plan`` (and ``build_report``) take as the thing to plan.
PLAN_SOURCE = "a Scenario, a PlanFile or a planning file path (str or Path)"


def planning_source(source: Any, where: str) -> Scenario | PlanFile:
    """``source`` when it is a Scenario or a PlanFile, the planning file read when it is a
    path, else a UserError naming ``where``."""
    if isinstance(source, str | PathLike):
        return load_plan_file(source)
    if not isinstance(source, Scenario | PlanFile):
        refuse(where, "scenario", PLAN_SOURCE, source)
    return source


def _section(value: Any, model: type, argument: str) -> Any:
    """A ``plan:``/``search:`` section given to ``plan``: None, the model, or a mapping
    validated like the file's section; anything else a UserError."""
    if value is None or isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        refuse("plan", argument, f"a {model.__name__}, a mapping of its keys or None", value)
    try:
        return model.model_validate(dict(value))
    except ValidationError as exc:
        messages = validation_messages(exc, dict(value), argument)
        raise UserError([f"plan: {m}" for m in messages]) from None


def _check_workers(workers: Any) -> None:
    """Local worker processes: a whole number >= 1, worded like ``--workers``'s check."""
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral):
        raise UserError(f"plan: workers: {workers!r} must be a whole number >= 1")
    if workers < 1:
        raise UserError(f"plan: workers: {workers} must be >= 1")


def plan(
    scenario: Scenario | PlanFile | str | Path,
    plan_config: PlanConfig | Mapping[str, Any] | None = None,
    search: SearchConfig | Mapping[str, Any] | None = None,
    *,
    replications: int | None = None,
    workers: int = 1,
    dask_scheduler: Any = None,
    progress: bool = False,
) -> PlanResult:
    """Plan a scenario: its maximum rate, the fewest replicas for the target rate, the
    configuration search and the cost options. A path or ``PlanFile`` brings its own
    ``plan:``/``search:`` sections; arguments given here override them (``plan_config`` and
    ``search`` may be mappings, validated like those sections). ``replications``: a whole
    number >= 1, or None for the plan's own. Changing traffic (a daily cycle, a schedule)
    is planned for its busiest window (``planning.peak``)."""
    from simulator.api import error_band_for

    plan_config = _section(plan_config, PlanConfig, "plan_config")
    search = _section(search, SearchConfig, "search")
    replications = check_replications(replications, "plan")
    _check_workers(workers)
    scenario = planning_source(scenario, "plan")
    if isinstance(scenario, PlanFile):
        plan_config = plan_config or scenario.plan
        search = search or scenario.search
        scenario = scenario.scenario
    require_one_replica_kind(scenario)
    plan_config = plan_config or PlanConfig()
    if replications:
        plan_config = plan_config.model_copy(update={"replications": replications})
    margin = resolve_safety_margin(plan_config, scenario)
    shape = traffic_shape(scenario)
    sizing = peak_equivalent(scenario, shape) if shape else scenario
    factor = shape.peak_factor if shape else 1.0
    _require_rate(sizing)
    bar, on_simulated = _progress(progress)
    try:
        rate = max_sustainable_rate(sizing, plan_config, on_simulated=on_simulated)
        replicas = None
        if plan_config.target_rate_per_s:
            target = plan_config.target_rate_per_s * factor * (1 + margin)
            replicas = _fleet(sizing, plan_config, rate, target, on_simulated)
    finally:
        if bar is not None:
            bar.close()
    result = PlanResult(
        scenario,
        plan_config,
        rate,
        replicas=replicas,
        safety_margin=margin,
        error_band=error_band_for(scenario),
        traffic=shape,
    )
    result.costs = _costs(sizing, plan_config, rate, replicas, margin, factor)
    if search is not None:
        result.search = search_configurations(
            sizing,
            search,
            plan_config,
            workers=workers,
            dask_scheduler=dask_scheduler,
            progress=progress,
        )
        best = result.search.best
        if plan_config.target_rate_per_s and best is not None and best.scenario is not None:
            # The search's replica counts assume linear scaling; simulate the winner's.
            checked = fewest_replicas(
                best.scenario, plan_config.target_rate_per_s * factor, plan_config
            )
            result.search.extra["best_fewest_replicas"] = checked.to_dict()
    return result
