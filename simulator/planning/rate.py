"""The deployment's limits: its maximum sustainable rate, and the fewest replicas for a rate.

**Maximum sustainable rate.** A rate is *sustainable* when every replication (the scenario
with seeds ``seed, seed+1, ...``) meets the SLO there (``outcome.judge``). The search brackets
the knee (doubling or halving from a start rate, with the roofline rate bound as the first
upper guess) and bisects geometrically until the bracket [sustainable, not sustainable] is
narrower than ``rate_tolerance``. ``max_rate_per_s`` is the bracket's lower end: a rate
simulated and met by every replication. Each replication's own knee (the geometric middle
of its own bracket) gives the mean knee and its 95% Student-t confidence interval.

**Fewest replicas.** The roofline bound gives the fewest replicas that could possibly serve the
target rate; from there the count doubles until every replication meets the SLO at the
target rate, then bisects. The answer ``n`` was simulated to meet it and ``n - 1`` to miss it
(or ``n - 1`` is zero, or below the roofline bound, which is then the reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

from simulator.config.compile import reused_builds
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.bounds import (
    gpus_per_replica,
    replica_rate_bound_per_s,
    sample_lengths,
    scenario_memory_plan,
)
from simulator.planning.config import PlanConfig
from simulator.planning.outcome import Criteria, Outcome, simulate

#: Doublings (or halvings) tried while looking for a rate on the other side of the knee.
MAX_BRACKET_STEPS = 16


@dataclass
class RateSearch:
    """Outcome of a maximum-rate search (rates in requests/s for the whole deployment)."""

    #: Highest simulated rate at which every replication met the SLO (None: none found).
    max_rate_per_s: float | None
    #: Lowest simulated rate above it at which some replication missed (None: none found).
    failing_rate_per_s: float | None
    #: Why the failing rate fails (first failing replication).
    failing_reason: str
    #: Mean over replications of each one's own knee, and its 95% confidence interval.
    knee_per_s: float | None
    knee_ci95_per_s: tuple[float, float] | None
    knees_per_s: list[float]
    replications: int
    rate_bound_per_s: float
    simulations: int
    #: Summaries at ``max_rate_per_s``, one per replication.
    summaries: list[dict[str, Any]] = field(default_factory=list, repr=False)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_rate_per_s": self.max_rate_per_s,
            "failing_rate_per_s": self.failing_rate_per_s,
            "failing_reason": self.failing_reason,
            "knee_per_s": self.knee_per_s,
            "knee_ci95_per_s": list(self.knee_ci95_per_s) if self.knee_ci95_per_s else None,
            "knees_per_s": self.knees_per_s,
            "replications": self.replications,
            "rate_bound_per_s": self.rate_bound_per_s,
            "simulations": self.simulations,
            "reason": self.reason,
        }


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_rate_per_s": self.target_rate_per_s,
            "replicas": self.replicas,
            "gpus": self.gpus,
            "fewer_reason": self.fewer_reason,
            "rate_bound_per_replica_per_s": self.rate_bound_per_replica_per_s,
            "simulations": self.simulations,
            "reason": self.reason,
        }


class Evaluator:
    """Simulates (scenario, rate, replicas, replication) points once each, judged."""

    def __init__(
        self,
        scenario: Scenario,
        criteria: Criteria,
        on_simulated: Callable[[float, int, Outcome], None] | None = None,
        min_arrival_span_s: float | None = None,
    ):
        self.scenario = scenario
        self.criteria = criteria
        self.min_arrival_span_s = min_arrival_span_s
        self.on_simulated = on_simulated
        self._cache: dict[tuple[float, int, int], Outcome] = {}

    @property
    def simulations(self) -> int:
        return len(self._cache)

    def outcome(self, rate_per_s: float, replicas: int, replication: int) -> Outcome:
        key = (float(rate_per_s), int(replicas), int(replication))
        if key not in self._cache:
            point = self.scenario.with_replicas(replicas)
            count = self.scenario.workload.num_requests
            if self.min_arrival_span_s and count is not None:
                needed = math.ceil(rate_per_s * self.min_arrival_span_s)
                point = point.with_num_requests(max(count, needed))
            point = point.with_rate(rate_per_s).with_seed_offset(replication)
            self._cache[key] = simulate(point, self.criteria)
            if self.on_simulated is not None:
                self.on_simulated(rate_per_s, replicas, self._cache[key])
        return self._cache[key]

    def all_meet(self, rate_per_s: float, replicas: int, replications: int) -> Outcome:
        """The first failing replication's outcome, or the last one when all meet."""
        result = None
        for i in range(replications):
            result = self.outcome(rate_per_s, replicas, i)
            if not result.meets:
                return result
        return result


def criteria_of(plan: PlanConfig) -> Criteria:
    return Criteria(plan.max_rejected_fraction, plan.min_attainment)


def deployment_rate_bound_per_s(scenario: Scenario) -> float:
    """Roofline upper bound on the requests/s of one replica of the scenario (0 if it does
    not fit in memory)."""
    from simulator.api import build_cost_model

    mem = scenario_memory_plan(scenario)
    if not mem.fits:
        return 0.0
    return replica_rate_bound_per_s(
        scenario, sample_lengths(scenario), build_cost_model(scenario), mem.max_kv_tokens
    )


def _bisect(
    passes: Callable[[float], bool], lo: float, hi: float, tolerance: float
) -> tuple[float, float]:
    """Narrow [lo passes, hi fails] geometrically until hi/lo - 1 <= tolerance."""
    while hi / lo - 1 > tolerance:
        mid = math.sqrt(lo * hi)
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _bracket(
    passes: Callable[[float], bool], start: float, upper_guess: float | None, floor: float
) -> tuple[float | None, float | None]:
    """(a rate that passes, a higher one that fails); None where none was found."""
    if passes(start):
        lo, hi = start, upper_guess if upper_guess and upper_guess > start else 2 * start
        for _ in range(MAX_BRACKET_STEPS):
            if not passes(hi):
                return lo, hi
            lo, hi = hi, 2 * hi
        return lo, None
    hi, lo = start, start / 2
    while lo >= floor:
        if passes(lo):
            return lo, hi
        hi, lo = lo, lo / 2
    return None, hi


@reused_builds()
def max_sustainable_rate(
    scenario: Scenario,
    plan: PlanConfig | None = None,
    *,
    replications: int | None = None,
    on_simulated: Callable[[float, int, Outcome], None] | None = None,
) -> RateSearch:
    """Highest request rate the scenario's deployment sustains within its SLO.
    ``on_simulated(rate, replicas, outcome)`` is called after each simulation."""
    plan = plan or PlanConfig()
    n = replications or plan.replications
    bound = deployment_rate_bound_per_s(scenario) * scenario.hardware.replicas
    if bound <= 0:
        mem = scenario_memory_plan(scenario)
        return RateSearch(
            None,
            None,
            mem.explain(),
            None,
            None,
            [],
            n,
            0.0,
            0,
            reason=f"does not fit: {mem.explain()}",
        )
    evaluator = Evaluator(scenario, criteria_of(plan), on_simulated, plan.min_arrival_span_s)
    replicas = scenario.hardware.replicas
    start = plan.start_rate_per_s or scenario.workload.mean_rate()
    if start is None:
        raise UserError("workload.arrival: the rate search needs an arrival process with a rate")
    start = min(start, bound)
    floor = bound * 1e-4  # below 1/10,000 of the roofline bound the SLO is out of reach

    def passes_all(rate: float) -> bool:
        return evaluator.all_meet(rate, replicas, n).meets

    lo, hi = _bracket(passes_all, start, bound, floor)
    if lo is None:
        failing = evaluator.all_meet(hi, replicas, n)
        return RateSearch(
            None,
            hi,
            failing.reason,
            None,
            None,
            [],
            n,
            bound,
            evaluator.simulations,
            reason=f"no rate down to {hi:.4g}/s meets the SLO: {failing.reason}",
        )
    if hi is None:
        return RateSearch(
            lo,
            None,
            "",
            None,
            None,
            [],
            n,
            bound,
            evaluator.simulations,
            reason=f"still meets the SLO at {lo:.4g}/s (the simulation never saturated)",
        )
    lo, hi = _bisect(passes_all, lo, hi, plan.rate_tolerance)
    failing_reason = evaluator.all_meet(hi, replicas, n).reason

    knees = []
    for i in range(n):

        def passes_one(rate: float, i: int = i) -> bool:
            return evaluator.outcome(rate, replicas, i).meets

        own_lo, own_hi = _bracket(passes_one, lo, hi, floor)
        if own_hi is None or own_lo is None:
            continue
        own_lo, own_hi = _bisect(passes_one, own_lo, own_hi, plan.rate_tolerance)
        knees.append(math.sqrt(own_lo * own_hi))
    knee = sum(knees) / len(knees) if knees else None
    ci = None
    if len(knees) >= 2:
        sem = stats.sem(knees)
        half = float(stats.t.ppf(0.975, len(knees) - 1) * sem)
        ci = (knee - half, knee + half)
    summaries = [evaluator.outcome(lo, replicas, i).summary for i in range(n)]
    return RateSearch(
        lo, hi, failing_reason, knee, ci, knees, n, bound, evaluator.simulations, summaries
    )


@reused_builds()
def fewest_replicas(
    scenario: Scenario,
    target_rate_per_s: float | None = None,
    plan: PlanConfig | None = None,
    *,
    replications: int | None = None,
    on_simulated: Callable[[float, int, Outcome], None] | None = None,
) -> ReplicaSearch:
    """Fewest replicas of the scenario's replica that serve ``target_rate_per_s`` in the SLO."""
    plan = plan or PlanConfig()
    target = target_rate_per_s or plan.target_rate_per_s
    if target is None:
        raise UserError("plan.target_rate_per_s: give the rate the deployment must serve")
    n = replications or plan.replications
    per_replica = deployment_rate_bound_per_s(scenario)
    tp = gpus_per_replica(scenario)
    if per_replica <= 0:
        reason = f"does not fit: {scenario_memory_plan(scenario).explain()}"
        return ReplicaSearch(target, None, None, reason, 0.0, 0, reason=reason)
    evaluator = Evaluator(scenario, criteria_of(plan), on_simulated, plan.min_arrival_span_s)

    def passes(count: int) -> bool:
        return evaluator.all_meet(target, count, n).meets

    least = max(1, math.ceil(target / per_replica))
    if least > plan.max_replicas:
        reason = (
            f"the roofline bound ({per_replica:.4g}/s per replica) needs {least} replicas "
            f"> plan.max_replicas {plan.max_replicas}"
        )
        return ReplicaSearch(target, None, None, reason, per_replica, 0, reason=reason)
    failing, count = least - 1, least
    while not passes(count):
        failing = count
        if count >= plan.max_replicas:
            reason = (
                f"{count} replicas still miss the SLO at {target:g}/s: "
                f"{evaluator.all_meet(target, count, n).reason}"
            )
            return ReplicaSearch(
                target, None, None, reason, per_replica, evaluator.simulations, reason=reason
            )
        count = min(2 * count, plan.max_replicas)
    while count - failing > 1:
        mid = (count + failing) // 2
        if passes(mid):
            count = mid
        else:
            failing = mid
    if count - 1 < 1:
        fewer = "no fewer replicas are possible"
    elif count - 1 < least:
        fewer = (
            f"{count - 1} replicas are below the roofline bound ({per_replica:.4g}/s per replica)"
        )
    else:
        fewer = f"{count - 1} replicas: {evaluator.all_meet(target, count - 1, n).reason}"
    summaries = [evaluator.outcome(target, count, i).summary for i in range(n)]
    return ReplicaSearch(
        target, count, count * tp, fewer, per_replica, evaluator.simulations, summaries
    )
