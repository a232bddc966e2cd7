"""Simulating points (a request rate on a number of replicas) until their verdict is clear.

**Run length.** Every replication of a point simulates at least the scenario's own
``num_requests`` (or its ``duration_s`` of traffic at the point's rate), at least
``plan.min_requests_per_replica`` requests per replica, and at least
``plan.min_arrival_span_s`` seconds of arrivals: a fleet of R replicas is judged on as much
traffic per replica as one replica, so the answer does not depend on the request count the
scenario happens to hold.

**Sequential stopping.** A point starts with ``plan.replications`` replications (seeds
``seed, seed+1, ...``); while its verdict (``planning.evidence``) is uncertain another one is
added, until the point has simulated ``plan.max_requests_per_replica`` requests per replica.
A point still uncertain then is reported so.

**Which side of the knee.** A search goes on the side a point's verdict says; an uncertain
point counts as meeting the SLO when every pooled point estimate does (``Point.passes``), and
an answer resting on one says it is uncertain.

**Screening.** A configuration search ranks many points with a fixed number of replications
and no sequential stopping, so most verdicts near the knee rest on point estimates. Its runs
are as long as the certified answer's (the run length above): a shorter run passes rates its
queue has no time to show, so the search would answer with the scenario's request count.

**Too short to measure.** A run none of whose requests completed inside its measured window
(the arrivals ended before the first request after the warm-up finished) shows neither a
throughput nor a queue: its point is *uncertain* and does not pass, and it gets no further
replications, which would be as short (``planning.evidence``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.config.loader import refuse, require_scenario
from simulator.config.planning import MAX_REPLICATIONS
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.metrics.slo import parse_slo
from simulator.planning.config import PlanConfig
from simulator.planning.evidence import (
    MEETS,
    MISSES,
    UNCERTAIN,
    Criteria,
    RunEvidence,
    Verdict,
    margin,
    point_verdict,
    run_evidence,
)

#: Callback after each simulation: (rate, replicas, the point's verdict so far).
OnSimulated = Callable[[float, int, Verdict], None]


@dataclass
class Point:
    """A simulated point: its replications and the verdict they support."""

    rate_per_s: float
    replicas: int
    runs: list[RunEvidence]
    verdict: Verdict

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def passes(self) -> bool:
        """Certified to meet the SLO, or uncertain with every point estimate meeting it: the
        side of the knee a search goes on (the answer then says it is uncertain)."""
        if self.verdict.state == MEETS:
            return True
        if self.verdict.state == MISSES or self.verdict.too_short:
            return False
        return margin(self.runs, self.verdict.slo) <= 0

    @property
    def summaries(self) -> list[dict]:
        return [r.summary for r in self.runs]


def criteria_of(plan: PlanConfig) -> Criteria:
    return Criteria(plan.max_rejected_fraction, plan.min_attainment)


def check_replications(replications: Any, where: str = "") -> int | None:
    """``replications`` when None (the plan's own) or a whole number from 1 to
    ``MAX_REPLICATIONS``, else a UserError worded like ``--replications``'s."""
    if replications is None:
        return None
    prefix = f"{where}: " if where else ""
    if isinstance(replications, bool) or not isinstance(replications, numbers.Integral):
        raise UserError(
            f"{prefix}replications: {replications!r} must be a whole number >= 1 "
            "(or None for the plan's replications)"
        )
    if replications < 1:
        raise UserError(f"{prefix}replications: {replications} must be >= 1")
    if replications > MAX_REPLICATIONS:
        raise UserError(f"{prefix}replications: {replications} must be <= {MAX_REPLICATIONS}")
    return int(replications)


def require_plan(plan: Any, where: str = "") -> PlanConfig:
    """``plan`` when it is a PlanConfig, else a UserError naming ``where``."""
    if not isinstance(plan, PlanConfig):
        refuse(where, "plan", "a PlanConfig (the plan: section of a planning file)", plan)
    return plan


class PointEvaluator:
    """Simulates points of ``scenario`` once each, sequentially (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        plan: PlanConfig,
        on_simulated: OnSimulated | None = None,
        *,
        screening: bool = False,
        replications: int | None = None,
    ):
        self.scenario = require_scenario(scenario)
        self.plan = require_plan(plan)
        self.criteria = criteria_of(plan)
        self.constraints = parse_slo(scenario.slo or None)
        self.on_simulated = on_simulated
        self.screening = screening
        self.first_replications = check_replications(replications) or plan.replications
        self._points: dict[tuple[float, int], Point] = {}

    @property
    def simulations(self) -> int:
        return sum(len(p.runs) for p in self._points.values())

    @property
    def requests_simulated(self) -> int:
        return sum(p.requests for p in self._points.values())

    @property
    def points(self) -> list[Point]:
        return sorted(self._points.values(), key=lambda p: (p.replicas, p.rate_per_s))

    def run_requests(self, rate_per_s: float, replicas: int) -> int:
        """Requests each replication of the point simulates (see the module docstring)."""
        workload = self.scenario.workload
        own = workload.num_requests or 0
        if workload.duration_s is not None:
            own = max(own, math.ceil(rate_per_s * workload.duration_s))
        span = self.plan.min_arrival_span_s or 0.0
        # Screening saves on replications, never on run length: a run too short to show its
        # queue passes far above capacity, and the answer would follow num_requests.
        per_replica = self.plan.min_requests_per_replica
        return max(own, per_replica * replicas, math.ceil(rate_per_s * span), 1)

    def _scenario(self, rate_per_s: float, replicas: int, replication: int) -> Scenario:
        point = self.scenario.with_replicas(replicas).with_rate(rate_per_s)
        workload = point.workload.replace(
            num_requests=self.run_requests(rate_per_s, replicas), duration_s=None
        )
        return point.replace(workload=workload).with_seed_offset(replication)

    def _decide(self, runs: list[RunEvidence]) -> Verdict:
        return point_verdict(runs, self.scenario.slo or None, self.criteria)

    def point(self, rate_per_s: float, replicas: int) -> Point:
        """The point at ``rate_per_s`` on ``replicas`` replicas, simulated until its
        verdict is clear or its budget is spent."""
        key = (float(rate_per_s), int(replicas))
        if key in self._points:
            return self._points[key]
        budget = self.plan.max_requests_per_replica * replicas
        runs: list[RunEvidence] = []
        verdict = Verdict(UNCERTAIN, "not simulated")
        while True:
            scenario = self._scenario(rate_per_s, replicas, len(runs))
            runs.append(run_evidence(scenario, self.constraints))
            enough = len(runs) >= self.first_replications or bool(runs[-1].error)
            if enough:
                verdict = self._decide(runs)
            if self.on_simulated is not None:
                self.on_simulated(rate_per_s, replicas, verdict)
            used = sum(r.requests for r in runs)
            settled = verdict.state != UNCERTAIN or verdict.too_short
            if enough and (settled or self.screening or used >= budget):
                break
        if verdict.state == UNCERTAIN and not verdict.too_short:
            verdict.reason += (
                f" after {len(runs)} replications ({sum(r.requests for r in runs)} requests, "
                f"the budget of plan.max_requests_per_replica × {replicas} replicas)"
            )
        found = Point(float(rate_per_s), int(replicas), runs, verdict)
        self._points[key] = found
        return found
