"""The simulations behind a report: the plan, a latency-against-load curve, a run of the
recommended fleet at the target rate, and the fleet needed at ±30% traffic.

Everything here is simulated (``simulator.api.run`` through the planner's helpers); the
prices are applied afterwards in :mod:`simulator.reports.costs`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.api import Result, run
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.metrics.summary import per_request_latencies_ms
from simulator.planning import PlanFile, PlanResult, fewest_replicas, load_plan_file, plan
from simulator.planning.bounds import gpus_per_replica
from simulator.planning.outcome import judge
from simulator.planning.peak import peak_equivalent
from simulator.workload.config import MIN_RATE_PER_S

#: Rates of the latency-against-load curve, as fractions of the deployment's knee (where
#: the SLO statistics reach their thresholds): dense near it, two points beyond.
LOAD_CURVE_FRACTIONS = (0.2, 0.4, 0.6, 0.75, 0.85, 0.95, 1.05, 1.2)
#: Traffic multipliers of the sensitivity analysis (±30% around the target).
TRAFFIC_FACTORS = (0.7, 1.0, 1.3)


@dataclass
class Simulated:
    """What the report's numbers and plots rest on (rates in requests/s)."""

    scenario: Scenario
    plan: PlanResult
    #: Rate the recommendation serves: ``plan.target_rate_per_s`` or the maximum rate.
    target_rate_per_s: float
    #: Replicas (and GPUs) that serve it within the SLO, simulated.
    replicas: int
    gpus_per_replica: int
    #: Latency percentiles of one deployment (the scenario's own replicas) at rising rates.
    load_curve: pd.DataFrame
    #: A run of ``replicas`` replicas at the target rate (distributions, time series); for
    #: changing traffic, steady traffic at its peak window's rate.
    run: Result
    #: Replicas needed at each traffic factor of ``TRAFFIC_FACTORS`` (simulated).
    replicas_by_traffic: dict[float, int | None]
    wall_s: dict[str, float] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    @property
    def per_replica_rate_per_s(self) -> float | None:
        """Maximum sustainable rate of one replica (the scenario's deployment / replicas)."""
        rate = self.plan.max_rate_per_s
        return rate / self.scenario.hardware.replicas if rate else None

    def latencies_ms(self) -> dict[str, np.ndarray]:
        """TTFT, TPOT and E2E of every request of the target-rate run (ms)."""
        return per_request_latencies_ms(self.run.records)


def load_planning_file(path: str | Path, overrides: list[str] | None = None) -> PlanFile:
    """A scenario with optional ``plan:``/``search:`` sections (see simulator.planning)."""
    return load_plan_file(path, overrides)


def _at_rate(scenario: Scenario, rate_per_s: float, span_s: float | None) -> Scenario:
    """The scenario at ``rate_per_s``, with at least ``span_s`` seconds of arrivals."""
    count = scenario.workload.num_requests
    if span_s and count is not None:
        scenario = scenario.with_num_requests(max(count, math.ceil(rate_per_s * span_s)))
    return scenario.with_rate(rate_per_s)


def latency_against_load(
    scenario: Scenario,
    knee_per_s: float,
    fractions: tuple[float, ...] = LOAD_CURVE_FRACTIONS,
    span_s: float | None = None,
) -> pd.DataFrame:
    """Simulate the scenario's deployment at ``fractions × knee_per_s``; one row per rate with
    TTFT/TPOT/E2E p50 and p99 (ms), throughput, saturation and whether the run's point
    estimates meet the SLO (one run each: an illustration, not a verdict)."""
    rows = []
    for fraction in fractions:
        rate = fraction * knee_per_s
        point = _at_rate(scenario, rate, span_s)
        summary = run(point).summary
        meets, reason = judge(summary)
        row: dict[str, Any] = {"fraction_of_knee": fraction, "rate_per_s": rate}
        for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
            for stat in ("p50", "p99"):
                row[f"{metric}_{stat}"] = summary[metric][stat]
        row.update(
            throughput_rps=summary["throughput_rps"],
            saturated=bool(summary["saturated"]),
            meets_slo=meets,
            reason=reason,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _stage_printer(enabled: bool):
    """A function printing one progress line per stage on stderr (or doing nothing)."""

    def say(message: str) -> None:
        if enabled:
            print(f"report: {message}", file=sys.stderr, flush=True)

    return say


def simulate_for_report(
    source: PlanFile | Scenario | str | Path,
    overrides: list[str] | None = None,
    *,
    replications: int | None = None,
    load_fractions: tuple[float, ...] = LOAD_CURVE_FRACTIONS,
    progress: bool = False,
) -> Simulated:
    """Run the planner and the report's extra simulations for a planning file or scenario."""
    clock: dict[str, float] = {}
    start = time.perf_counter()
    if isinstance(source, str | Path):
        source = load_planning_file(source, overrides)
    elif overrides:
        raise UserError("overrides apply to a scenario file path only")
    planned = plan(source, replications=replications, progress=progress)
    scenario = planned.scenario
    clock["plan_s"] = time.perf_counter() - start
    target, replicas = _target_and_replicas(planned)
    span = planned.plan.min_arrival_span_s

    # changing traffic: the fleet serves its busiest window, simulated as steady traffic
    sizing = peak_equivalent(scenario, planned.traffic) if planned.traffic else scenario
    peak = planned.traffic.peak_factor if planned.traffic else 1.0
    if not planned.plan.target_rate_per_s:
        target /= peak  # the maximum rate is a peak-window rate; costs are at the mean

    say = _stage_printer(progress)
    say(f"latency against load: {len(load_fractions)} rates")
    t0 = time.perf_counter()
    knee = planned.rate.knee_per_s or planned.max_rate_per_s
    curve = latency_against_load(sizing, knee, load_fractions, span)
    clock["load_curve_s"] = time.perf_counter() - t0

    say(f"target run: {replicas} replica(s) at {target * peak:.4g} req/s")
    t0 = time.perf_counter()
    target_run = run(_at_rate(sizing.with_replicas(replicas), target * peak, span))
    clock["target_run_s"] = time.perf_counter() - t0

    say("fleet at ±30% traffic")
    t0 = time.perf_counter()
    by_traffic = _fleet_by_traffic(planned, sizing, replicas, target, peak)
    clock["sensitivity_s"] = time.perf_counter() - t0
    clock["total_s"] = time.perf_counter() - start
    return Simulated(
        scenario=scenario,
        plan=planned,
        target_rate_per_s=float(target),
        replicas=int(replicas),
        gpus_per_replica=gpus_per_replica(scenario),
        load_curve=curve,
        run=target_run,
        replicas_by_traffic=by_traffic,
        wall_s=clock,
    )


def _target_and_replicas(planned: PlanResult) -> tuple[float, int]:
    """The rate the report is about (``plan.target_rate_per_s``, else the maximum rate, in
    requests/s) and the replicas that serve it; a user error when the plan found neither."""
    if not planned.max_rate_per_s:
        raise UserError(
            f"{planned.scenario.name}: no rate meets the SLO on this deployment "
            f"({planned.rate.reason or planned.rate.failing_reason}); "
            "a report needs at least one sustainable rate"
        )
    target = planned.plan.target_rate_per_s or planned.max_rate_per_s
    if planned.replicas is None:
        return target, planned.scenario.hardware.replicas
    if planned.replicas.replicas is None:
        raise UserError(
            f"plan.target_rate_per_s: {target:g} req/s cannot be served within the SLO "
            f"({planned.replicas.reason or planned.replicas.fewer_reason})"
        )
    return target, planned.replicas.replicas


def _fleet_by_traffic(
    planned: PlanResult, sizing: Scenario, replicas: int, target: float, peak: float
) -> dict[float, int | None]:
    """Fewest replicas at each of ``TRAFFIC_FACTORS`` × the target rate (requests/s, scaled
    by the ``peak`` factor of changing traffic, with the plan's safety margin); the target
    itself keeps the plan's answer. None where no fleet up to the plan's limit serves it."""
    by_traffic: dict[float, int | None] = {1.0: replicas}
    scenario = planned.scenario
    # the single-replica knee starts each search near its answer
    per_replica = (planned.rate.knee_per_s or planned.max_rate_per_s) / scenario.hardware.replicas
    for factor in TRAFFIC_FACTORS:
        if factor == 1.0:
            continue
        # a fleet that serves the lowest arrival rate a workload takes serves any lower one
        rate = max(factor * target * peak * (1 + planned.safety_margin), MIN_RATE_PER_S)
        found = fewest_replicas(
            sizing,
            rate,
            planned.plan,
            per_replica_rate_per_s=per_replica,
        )
        by_traffic[factor] = found.replicas
    return dict(sorted(by_traffic.items()))
