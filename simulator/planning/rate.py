"""The deployment's maximum sustainable rate under its SLO.

Every point (rate, replicas) is simulated until its verdict is clear at 95% confidence or
its budget is spent (``planning.points``): it *meets* the SLO, *misses* it, or is
*uncertain*.

**Maximum sustainable rate.** The search brackets the knee (halving from a start rate, or
trying the roofline rate bound above it) and bisects geometrically until the bracket [meets,
does not meet] is narrower than ``rate_tolerance``, going on the side each point's verdict
says (an uncertain point by its point estimates). No rate above the roofline bound is
sustainable, so none is tried: when the bound itself passes, the runs are too short to show
a queue, and the search says so instead of giving a rate. ``max_rate_per_s`` is the
bracket's lower end, certified to meet the SLO or, where the budget could not tell, meeting it
on its point estimates (``max_rate_verdict`` says which). The knee, the rate at which the
SLO statistic reaches its threshold, lies between that rate and the lowest rate certified to
miss: that bracket is ``knee_ci95_per_s`` (both ends positive rates that were simulated), and
``knee_per_s`` is where the pooled point estimates cross their thresholds, interpolated
log-linearly between the simulated rates around it. Rates left uncertain are listed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.config.compile import reused_builds
from simulator.config.loader import require_scenario
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.bounds import (
    replica_rate_bound_per_s,
    sample_lengths,
    scenario_memory_plan,
)
from simulator.planning.config import PlanConfig
from simulator.planning.evidence import MEETS, MISSES, UNCERTAIN, margin
from simulator.planning.points import OnSimulated, PointEvaluator
from simulator.workload.config import rate_error

#: Doublings (or halvings) tried while looking for a rate on the other side of the knee.
MAX_BRACKET_STEPS = 16
#: Halvings tried below the maximum rate to find a rate certified to meet the SLO.
MEET_PROBE_STEPS = 4


@dataclass
class RateSearch:
    """Outcome of a maximum-rate search (rates in requests/s for the whole deployment)."""

    #: Highest simulated rate meeting the SLO (None: none found): certified at 95%, or,
    #: where the budget could not tell, by its point estimates (``max_rate_verdict``).
    max_rate_per_s: float | None
    #: Lowest simulated rate above it that does not meet it (None: none found).
    failing_rate_per_s: float | None
    #: Why that rate does not (missed, or uncertain with point estimates above the SLO).
    failing_reason: str
    #: Rate where the point estimates reach the SLO, and the bracket it lies in: the highest
    #: rate certified to meet and the lowest certified to miss (None: not found).
    knee_per_s: float | None
    knee_ci95_per_s: tuple[float, float | None] | None
    #: Rates whose verdict stayed uncertain within the budget.
    uncertain_rates_per_s: list[float]
    replications: int
    rate_bound_per_s: float
    simulations: int
    requests_simulated: int = 0
    #: Summaries at ``max_rate_per_s``, one per replication.
    summaries: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: SLO statistics pooled at ``max_rate_per_s``, with their 95% intervals.
    intervals: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    #: How the verdicts were reached (sequential 95% intervals, or screening).
    precision: str = ""
    #: "meets" (certified at 95%) or "uncertain" (point estimates) at ``max_rate_per_s``.
    max_rate_verdict: str = ""
    #: Highest simulated rate certified at 95% to meet the SLO.
    certified_max_rate_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_rate_per_s": self.max_rate_per_s,
            "max_rate_verdict": self.max_rate_verdict,
            "certified_max_rate_per_s": self.certified_max_rate_per_s,
            "failing_rate_per_s": self.failing_rate_per_s,
            "failing_reason": self.failing_reason,
            "knee_per_s": self.knee_per_s,
            "knee_ci95_per_s": list(self.knee_ci95_per_s) if self.knee_ci95_per_s else None,
            "uncertain_rates_per_s": self.uncertain_rates_per_s,
            "replications": self.replications,
            "rate_bound_per_s": self.rate_bound_per_s,
            "simulations": self.simulations,
            "requests_simulated": self.requests_simulated,
            "intervals_at_max_rate": self.intervals,
            "reason": self.reason,
            "precision": self.precision,
        }


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
    """(a rate that passes, a higher one that fails); None where none was found. The roofline
    bound (``upper_guess``, requests/s) caps the rates tried: no rate above it is sustainable,
    so a run that passes at it is too short to show its queue, and the search stops there
    (the higher end is None). Without a finite bound the rate doubles from ``start``."""
    bounded = upper_guess is not None and math.isfinite(upper_guess)
    if passes(start):
        if bounded:
            if start < upper_guess and not passes(upper_guess):
                return start, upper_guess
            return max(start, upper_guess), None
        lo, hi = start, 2 * start
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


def knee_estimate(evaluator: PointEvaluator, replicas: int) -> float | None:
    """Rate where the pooled point estimates reach the SLO: log-linear interpolation of the
    margin (log statistic / threshold) between the simulated rates on either side of zero."""
    slo = evaluator.scenario.slo or None
    rows = sorted(
        (p.rate_per_s, margin(p.runs, slo)) for p in evaluator.points if p.replicas == replicas
    )
    below = [(r, m) for r, m in rows if m <= 0]
    above = [(r, m) for r, m in rows if m > 0 and (not below or r > below[-1][0])]
    if not below or not above:
        return None
    (r0, m0), (r1, m1) = below[-1], above[0]
    if not math.isfinite(m1) or m1 == m0:
        return math.sqrt(r0 * r1)
    share = -m0 / (m1 - m0)
    return math.exp(math.log(r0) + share * (math.log(r1) - math.log(r0)))


def _knee_bracket(evaluator: PointEvaluator, replicas: int) -> tuple[float, float | None] | None:
    points = [p for p in evaluator.points if p.replicas == replicas]
    met = [p.rate_per_s for p in points if p.verdict.state == MEETS]
    if not met:
        return None
    lo = max(met)
    missed = [p.rate_per_s for p in points if p.verdict.state == MISSES and p.rate_per_s > lo]
    return lo, (min(missed) if missed else None)


def _precision(evaluator: PointEvaluator) -> str:
    if evaluator.screening:
        return (
            f"screening: {evaluator.first_replications} replication(s) per rate, verdicts on "
            "the point estimates where the 95% intervals could not tell"
        )
    plan = evaluator.plan
    return (
        "every verdict at 95% confidence (batch-means intervals, warm-up removed by MSER-5); "
        f"replications added while uncertain, up to {plan.max_requests_per_replica:,} "
        "requests per replica"
    )


#: Per deployment mode that planning refuses: what it is, why it has no one replica to
#: size, and the sweep that compares its sizes instead.
_NOT_PLANNED = {
    "fleet": (
        "a fleet of replica groups",
        "its rate bound and replica count belong to each group",
        "fleets with servesim sweep --grid 'fleet=[[{gpu: ..., replicas: ...}, ...], [...]]' "
        "(a YAML list of fleets)",
    ),
    "disaggregated": (
        "a disaggregated deployment",
        "its capacity comes from the prefill and decode pools together",
        "pool sizes with servesim sweep --grid disaggregated.prefill.replicas=1,2 "
        "--grid disaggregated.decode.replicas=1,2,4",
    ),
}


def require_one_replica_kind(scenario: Scenario, where: str = "plan") -> None:
    """Planning sizes identical replicas of the ``hardware`` section: its rate bound is one
    replica's times their number, and the fewest-replicas answer counts them. A fleet or a
    disaggregated deployment has no such replica, so it is refused before any run (a
    ``UserError`` saying what to run instead)."""
    mode = scenario.deployment_mode
    if mode is None:
        return
    what, why, sweep = _NOT_PLANNED[mode]
    raise UserError(
        f"{mode}: {where} sizes identical replicas of the hardware section and cannot plan "
        f"{what} ({why}); simulate it with servesim simulate, and compare {sweep} and "
        "--grid workload.arrival.rate_per_s=..."
    )


@reused_builds(draws=True)
def max_sustainable_rate(
    scenario: Scenario,
    plan: PlanConfig | None = None,
    *,
    replications: int | None = None,
    on_simulated: OnSimulated | None = None,
    screening: bool = False,
    evaluator: PointEvaluator | None = None,
) -> RateSearch:
    """Highest request rate the scenario's deployment sustains within its SLO.
    ``on_simulated(rate, replicas, verdict)`` is called after each simulation."""
    require_scenario(scenario, "max_sustainable_rate")
    require_one_replica_kind(scenario, "max_sustainable_rate")
    plan = plan or PlanConfig()
    evaluator = evaluator or PointEvaluator(
        scenario, plan, on_simulated, screening=screening, replications=replications
    )
    bound = deployment_rate_bound_per_s(scenario) * scenario.hardware.replicas
    if bound <= 0:
        return _does_not_fit(scenario, evaluator)
    replicas = scenario.hardware.replicas
    start = plan.start_rate_per_s or scenario.workload.mean_rate()
    if start is None:
        arrival = scenario.workload.arrival
        raise UserError(rate_error(arrival.process if arrival is not None else None))
    start = min(start, bound)
    floor = bound * 1e-4  # below 1/10,000 of the roofline bound the SLO is out of reach

    def passes(rate: float) -> bool:
        return evaluator.point(rate, replicas).passes

    lo, hi = _bracket(passes, start, bound, floor)
    if lo is None or hi is None:
        return _unbracketed(evaluator, replicas, bound, lo, hi)
    lo, hi = _bisect(passes, lo, hi, plan.rate_tolerance)
    if not evaluator.screening:
        _certify_a_miss_above(evaluator, replicas, hi)
        _certify_a_meet_below(evaluator, replicas, lo, floor)
    at_max = evaluator.point(lo, replicas)
    bracket = _knee_bracket(evaluator, replicas)
    return _rate_search(
        evaluator,
        bound,
        lo,
        hi,
        evaluator.point(hi, replicas).verdict.reason,
        knee_per_s=knee_estimate(evaluator, replicas),
        knee_ci95_per_s=bracket,
        summaries=at_max.summaries,
        intervals=at_max.verdict.intervals,
        max_rate_verdict=at_max.verdict.state,
        certified_max_rate_per_s=bracket[0] if bracket else None,
    )


def _does_not_fit(scenario: Scenario, evaluator: PointEvaluator) -> RateSearch:
    """The outcome when no rate is possible: the deployment cannot hold the model and a
    sequence (its roofline rate bound is zero), so nothing is simulated."""
    reason = scenario_memory_plan(scenario).explain()
    return RateSearch(
        None,
        None,
        reason,
        None,
        None,
        [],
        evaluator.first_replications,
        0.0,
        0,
        reason=f"does not fit: {reason}",
    )


def _unbracketed(
    evaluator: PointEvaluator,
    replicas: int,
    bound: float,
    lo: float | None,
    hi: float | None,
) -> RateSearch:
    """The outcome when the bracket has one end only: no rate down to the floor meets the
    SLO (``lo`` is None), or the roofline bound itself still meets it (``hi`` is None). The
    bound is an upper limit no replica reaches, so a run passing there is too short to show
    its queue: no rate is given, only the reason."""
    if lo is None:
        failing = evaluator.point(hi, replicas).verdict.reason
        return _rate_search(
            evaluator,
            bound,
            None,
            hi,
            failing,
            reason=f"no rate down to {hi:.4g}/s meets the SLO: {failing}",
        )
    return _rate_search(
        evaluator,
        bound,
        None,
        None,
        "",
        reason=(
            f"runs too short to measure: the SLO is still met at {lo:.4g}/s, the roofline "
            f"bound ({bound:.4g}/s) no replica reaches, so the runs end before their queue "
            "shows; raise workload.num_requests, plan.min_requests_per_replica or "
            "plan.min_arrival_span_s"
        ),
    )


def _rate_search(
    evaluator: PointEvaluator,
    bound: float,
    max_rate: float | None,
    failing_rate: float | None,
    failing_reason: str,
    knee_per_s: float | None = None,
    knee_ci95_per_s: tuple[float, float | None] | None = None,
    **found: Any,
) -> RateSearch:
    """The search's outcome, with what the evaluator has simulated so far."""
    return RateSearch(
        max_rate,
        failing_rate,
        failing_reason,
        knee_per_s,
        knee_ci95_per_s,
        uncertain_rates_per_s=sorted(
            p.rate_per_s for p in evaluator.points if p.verdict.state == UNCERTAIN
        ),
        replications=evaluator.first_replications,
        rate_bound_per_s=bound,
        simulations=evaluator.simulations,
        requests_simulated=evaluator.requests_simulated,
        precision=_precision(evaluator),
        **found,
    )


def _certify_a_miss_above(evaluator: PointEvaluator, replicas: int, rate: float) -> None:
    """Make sure a rate above ``rate`` is certified to miss (the knee bracket's upper end):
    when ``rate`` is only uncertain, double it until a simulated rate misses."""
    for _ in range(MAX_BRACKET_STEPS):
        if evaluator.point(rate, replicas).verdict.state == MISSES:
            return
        rate *= 2


def _certify_a_meet_below(
    evaluator: PointEvaluator, replicas: int, rate: float, floor: float
) -> None:
    """Try to certify a rate at or below ``rate`` to meet the SLO (the knee bracket's lower
    end): when none is, halve it a few times (``MEET_PROBE_STEPS``, never below ``floor``)
    until a simulated rate meets it; a budget too small to certify any rate leaves the
    bracket without a lower end."""
    for _ in range(MEET_PROBE_STEPS):
        if rate < floor:
            return
        if any(
            p.replicas == replicas and p.rate_per_s <= rate and p.verdict.state == MEETS
            for p in evaluator.points
        ):
            return
        if evaluator.point(rate, replicas).verdict.state == MEETS:
            return
        rate /= 2
