"""The fewest replicas of a scenario's replica that serve a target rate within its SLO.

Every point (rate, replicas) is simulated until its verdict is clear at 95% confidence or
its budget is spent (``planning.points``): it *meets* the SLO, *misses* it, or is
*uncertain*.

**Fewest replicas.** The roofline bound gives the fewest replicas that could possibly serve
the target rate. The count starts at the target over the single-replica knee when that is
known (else at the bound) and moves one at a time, then by doubling, until it finds a count
certified to meet the SLO with one fewer not certified to. Every fleet simulates as many
requests per replica as one replica would (``planning.points``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.config.compile import reused_builds
from simulator.config.loader import refuse, require_scenario
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.bounds import gpus_per_replica, scenario_memory_plan
from simulator.planning.config import PlanConfig
from simulator.planning.evidence import MEETS, MISSES, UNCERTAIN
from simulator.planning.points import (
    OnSimulated,
    PointEvaluator,
    check_replications,
    require_plan,
)
from simulator.planning.rate import deployment_rate_bound_per_s, require_one_replica_kind


@dataclass
class ReplicaSearch:
    """Outcome of the fewest-replicas search for ``target_rate_per_s``."""

    target_rate_per_s: float
    replicas: int | None
    gpus: int | None
    #: Why ``replicas - 1`` does not do (simulated, or the roofline bound).
    fewer_reason: str
    rate_bound_per_replica_per_s: float
    simulations: int
    summaries: list[dict[str, Any]] = field(default_factory=list, repr=False)
    reason: str = ""
    requests_simulated: int = 0
    #: SLO statistics pooled at the answer, with their 95% intervals.
    intervals: dict[str, Any] = field(default_factory=dict)
    #: Fleet sizes whose verdict stayed uncertain within the budget.
    uncertain_replicas: list[int] = field(default_factory=list)
    #: "meets" (certified at 95%) or "uncertain" (point estimates) at ``replicas``.
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_rate_per_s": self.target_rate_per_s,
            "replicas": self.replicas,
            "gpus": self.gpus,
            "fewer_reason": self.fewer_reason,
            "rate_bound_per_replica_per_s": self.rate_bound_per_replica_per_s,
            "simulations": self.simulations,
            "requests_simulated": self.requests_simulated,
            "intervals": self.intervals,
            "uncertain_replicas": self.uncertain_replicas,
            "verdict": self.verdict,
            "reason": self.reason,
        }


def check_target_rate(rate: Any, where: str = "") -> float:
    """``rate`` as a float when it is a finite number of requests/s above 0, else a
    UserError naming ``where``."""
    number = isinstance(rate, numbers.Real) and not isinstance(rate, bool)
    if not number or not 0 < rate < math.inf:  # NaN fails the comparison too
        refuse(where, "target_rate_per_s", "a finite number of requests/s > 0", rate)
    return float(rate)


def _first_count(target: float, least: int, per_replica_rate_per_s: float | None) -> int:
    """Where the replica search starts: the target over one replica's knee, else the
    roofline bound."""
    if per_replica_rate_per_s and per_replica_rate_per_s > 0:
        return max(least, math.ceil(target / per_replica_rate_per_s - 1e-9))
    return least


@reused_builds(draws=True)
def fewest_replicas(
    scenario: Scenario,
    target_rate_per_s: float | None = None,
    plan: PlanConfig | None = None,
    *,
    replications: int | None = None,
    on_simulated: OnSimulated | None = None,
    per_replica_rate_per_s: float | None = None,
    screening: bool = False,
) -> ReplicaSearch:
    """Fewest replicas of the scenario's replica that serve ``target_rate_per_s`` in the SLO;
    ``per_replica_rate_per_s`` (one replica's knee, when known) gives the first count tried."""
    require_scenario(scenario, "fewest_replicas")
    require_one_replica_kind(scenario, "fewest_replicas")
    plan = PlanConfig() if plan is None else require_plan(plan, "fewest_replicas")
    check_replications(replications, "fewest_replicas")
    if target_rate_per_s is not None:
        target = check_target_rate(target_rate_per_s, "fewest_replicas")
    else:
        target = plan.target_rate_per_s
    if target is None:
        raise UserError("plan.target_rate_per_s: give the rate the deployment must serve")
    per_replica = deployment_rate_bound_per_s(scenario)
    tp = gpus_per_replica(scenario)
    if per_replica <= 0:
        reason = f"does not fit: {scenario_memory_plan(scenario).explain()}"
        return ReplicaSearch(target, None, None, reason, 0.0, 0, reason=reason)
    evaluator = PointEvaluator(
        scenario, plan, on_simulated, screening=screening, replications=replications
    )

    def state(count: int) -> str:
        return MEETS if evaluator.point(target, count).passes else MISSES

    least = max(1, math.ceil(target / per_replica))
    if least > plan.max_replicas:
        reason = (
            f"the roofline bound ({per_replica:.4g}/s per replica) needs {least} replicas "
            f"> plan.max_replicas {plan.max_replicas}"
        )
        return ReplicaSearch(target, None, None, reason, per_replica, 0, reason=reason)
    count = min(_first_count(target, least, per_replica_rate_per_s), plan.max_replicas)
    found = _search_counts(state, count, least, plan.max_replicas)
    uncertain = sorted(p.replicas for p in evaluator.points if p.verdict.state == UNCERTAIN)
    done = dict(
        simulations=evaluator.simulations,
        requests_simulated=evaluator.requests_simulated,
        uncertain_replicas=uncertain,
    )
    if found is None:
        last = evaluator.point(target, plan.max_replicas).verdict.reason
        reason = f"{plan.max_replicas} replicas still do not meet the SLO at {target:g}/s: {last}"
        return ReplicaSearch(target, None, None, reason, per_replica, reason=reason, **done)
    if found - 1 < 1:
        fewer = "no fewer replicas are possible"
    elif found - 1 < least:
        fewer = (
            f"{found - 1} replicas are below the roofline bound ({per_replica:.4g}/s per replica)"
        )
    else:
        fewer = f"{found - 1} replicas: {evaluator.point(target, found - 1).verdict.reason}"
    answer = evaluator.point(target, found)
    return ReplicaSearch(
        target,
        found,
        found * tp,
        fewer,
        per_replica,
        summaries=answer.summaries,
        intervals=answer.verdict.intervals,
        verdict=answer.verdict.state,
        **done,
    )


def _search_counts(state: Callable[[int], str], count: int, least: int, most: int) -> int | None:
    """Fewest count in [least, most] whose state is MEETS with count - 1 not MEETS (or
    below ``least``), searching from ``count``: down one at a time while it meets, up one
    at a time then by doubling while it does not, then bisecting."""
    if state(count) == MEETS:
        while count - 1 >= least and state(count - 1) == MEETS:
            count -= 1
        return count
    failing = count
    step = 1
    while True:
        if failing >= most:
            return None
        count = min(failing + step, most)
        if state(count) == MEETS:
            break
        failing, step = count, step * 2
    while count - failing > 1:
        mid = (count + failing) // 2
        if state(mid) == MEETS:
            count = mid
        else:
            failing = mid
    return count
