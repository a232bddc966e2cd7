"""What the planner knows about one point (a rate on a number of replicas): the runs
simulated there, pooled, and the verdict they support at 95% confidence.

A point **meets** the SLO when no run saturated, at most ``max_rejected_fraction`` of the
requests were rejected, and every SLO statistic's interval (``metrics.steady``, pooled over
the point's replications, warm-up removed) lies at or below its threshold; with
``min_attainment``, the interval of the share of requests meeting every threshold lies at
or above it. It **misses** when a run saturated (``metrics.saturation``, its own test of a
growing queue), too many requests were rejected, or some interval lies entirely above its
threshold. Otherwise it is **uncertain**: the runs so far cannot tell, and
``planning.rate`` simulates another replication, up to its budget. ITL has no per-request
record to batch, so an ITL target is judged on its pooled point estimate.

A run is **too short** to measure when none of its accepted requests completed inside its
measured window: its arrivals ended before the requests after its warm-up could finish, so
it shows neither a throughput nor a queue the saturation test can tell from noise, and its
latencies are those of a system still filling, below their steady state. Unless an interval
already lies above its threshold (a miss stands), its point is uncertain, never meets the
SLO, and more replications of the same length cannot settle it (``Verdict.too_short``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.errors import UserError
from simulator.metrics.latency import in_arrival_order, slo_latencies_ms
from simulator.metrics.slo import SloConstraint, interval_verdict, parse_slo, requests_meeting
from simulator.metrics.steady import mean_interval, statistic_interval
from simulator.metrics.window import STEADY_PROCESSES, measured_window

MEETS, MISSES, UNCERTAIN = "meets", "misses", "uncertain"


@dataclass(frozen=True)
class Criteria:
    """What counts as meeting the SLO besides the scenario's own ``slo:`` targets."""

    max_rejected_fraction: float = 0.0
    min_attainment: float | None = None


@dataclass
class RunEvidence:
    """One simulated replication: its summary, and the per-request numbers (in arrival
    order, warm-up removed) the intervals need."""

    summary: dict[str, Any] = field(repr=False)
    #: metric -> latencies (ms) of the measured requests, in arrival order.
    latencies_ms: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: 1.0 for each measured request meeting every threshold, else 0.0 (arrival order).
    meets_all: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    #: Why the run could not be simulated ("" when it ran).
    error: str = ""

    @property
    def requests(self) -> int:
        return int(self.summary.get("requests_total") or 0)


def run_evidence(scenario, constraints: list[SloConstraint]) -> RunEvidence:
    """Simulate ``scenario`` once and keep what its verdict needs. A scenario that cannot
    run (does not fit) gives a run with ``error`` set."""
    from simulator.api import run

    try:
        result = run(scenario)
    except UserError as exc:
        return RunEvidence({}, error="; ".join(exc.messages))
    records = result.records
    arrival = scenario.workload.arrival
    window = measured_window(
        records,
        scenario.output.warmup_s,
        steady_traffic=arrival is not None and arrival.process in STEADY_PROCESSES,
        offline=arrival is not None and arrival.process == "offline",
    )
    req = records.requests
    sel = window.latency_mask
    latencies = slo_latencies_ms(records, {c.metric for c in constraints})
    ordered = {k: in_arrival_order(v, req.arrival_s, sel) for k, v in latencies.items()}
    meets = requests_meeting(constraints, latencies, len(req)).astype(np.float64)
    order = np.argsort(req.arrival_s[sel], kind="stable")
    return RunEvidence(result.summary, ordered, meets[sel][order])


@dataclass
class Verdict:
    """What a point's runs support: ``MEETS``, ``MISSES`` or ``UNCERTAIN``, why, and the
    SLO statistics with their 95% intervals (``[low, high]``, ms)."""

    state: str
    reason: str
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The SLO the verdict judged (for the point estimates of an uncertain verdict).
    slo: dict | None = field(default=None, repr=False)
    #: A run was too short to measure (``too_short_reason``): uncertain however many
    #: replications of that length are added.
    too_short: bool = False

    @property
    def meets(self) -> bool:
        return self.state == MEETS


def _itl_estimate(runs: list[RunEvidence], constraint: SloConstraint) -> float:
    values = []
    for run in runs:
        for c in (run.summary.get("slo") or {}).get("constraints", []):
            if c["metric"] == constraint.metric and c["percentile"] == constraint.key:
                values.append(c["observed_ms"])
    found = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(found)) if found else math.nan


def _constraint_verdicts(
    runs: list[RunEvidence], constraints: list[SloConstraint]
) -> tuple[list[str], list[str], dict[str, dict[str, Any]]]:
    """(missed descriptions, uncertain descriptions, intervals by constraint)."""
    missed, unsure, intervals = [], [], {}
    for c in constraints:
        name = f"{c.metric} {c.key}"
        if c.metric == "itl_ms":
            estimate = _itl_estimate(runs, c)
            low = high = estimate
        else:
            found = statistic_interval([r.latencies_ms[c.metric] for r in runs], c.key)
            estimate, low, high = found.estimate, found.low, found.high
        met = bool(estimate <= c.threshold_ms) if math.isfinite(estimate) else None
        verdict = interval_verdict(low, high, c.threshold_ms, met)
        intervals[name] = {
            "estimate_ms": estimate,
            "ci95_ms": [low, high],
            "threshold_ms": c.threshold_ms,
            "verdict": verdict,
        }
        shown = f"{name} {estimate:.1f} ms [{low:.4g}, {_end(high)}] vs {c.threshold_ms:g} ms"
        if verdict in ("missed", "not observed"):
            missed.append(shown if verdict == "missed" else f"{name} not observed")
        elif verdict == "uncertain":
            unsure.append(shown)
    return missed, unsure, intervals


def _end(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "unbounded"


NO_CRITERIA = Criteria()


def too_short_reason(run: RunEvidence) -> str:
    """Why ``run`` is too short to measure ("" when it is not): requests were accepted but
    none completed inside its measured window (see the module docstring)."""
    s = run.summary
    accepted = int(s.get("requests_total") or 0) - int(s.get("requests_rejected") or 0)
    completed = s.get("requests_completed_in_window")
    if accepted <= 0 or completed is None or completed > 0:
        return ""
    start, end = s.get("window_start_s"), s.get("window_end_s")
    span = f" {end - start:.3g} s" if start is not None and end is not None else ""
    return (
        f"run too short to measure: none of its {accepted} requests completed inside its"
        f"{span} measured window; raise workload.num_requests, "
        "plan.min_requests_per_replica or plan.min_arrival_span_s"
    )


def point_verdict(
    runs: list[RunEvidence], slo: dict | None, criteria: Criteria = NO_CRITERIA
) -> Verdict:
    """The verdict of a point's runs (see the module docstring)."""
    for run in runs:
        if run.error:
            return Verdict(MISSES, run.error, slo=slo)
    for run in runs:
        if run.summary.get("saturated"):
            reason = run.summary.get("saturation_reason") or "queue still growing"
            return Verdict(MISSES, f"saturated ({reason})", slo=slo)
    total = sum(run.requests for run in runs)
    rejected = sum(int(run.summary.get("requests_rejected") or 0) for run in runs)
    if total and rejected / total > criteria.max_rejected_fraction:
        return Verdict(MISSES, f"{rejected} of {total} requests rejected", slo=slo)
    missed, unsure, intervals = _constraint_verdicts(runs, parse_slo(slo))
    if criteria.min_attainment is not None:
        share = mean_interval([r.meets_all for r in runs])
        # the share must be at or above the floor: the same test on the negated interval
        floor = criteria.min_attainment
        verdict = interval_verdict(-share.high, -share.low, -floor, share.estimate >= floor)
        text = (
            f"SLO attainment {share.estimate:.3f} [{share.low:.3f}, {share.high:.3f}] vs "
            f"{criteria.min_attainment:g}"
        )
        if math.isnan(share.estimate) or verdict == "missed":
            missed.append(text)
        elif verdict == "uncertain":
            unsure.append(text)
    if missed:
        # a run still filling has lower latencies than its steady state: a miss stands
        return Verdict(MISSES, "SLO missed: " + "; ".join(missed), intervals, slo)
    for run in runs:
        short = too_short_reason(run)
        if short:
            return Verdict(UNCERTAIN, short, intervals, slo, too_short=True)
    if unsure:
        return Verdict(UNCERTAIN, "uncertain: " + "; ".join(unsure), intervals, slo)
    return Verdict(MEETS, "meets the SLO", intervals, slo)


def margin(runs: list[RunEvidence], slo: dict | None) -> float:
    """How far the pooled point estimates are from the SLO: the largest log(statistic /
    threshold) over the constraints (> 0: missed), +inf for a saturated, failed or too short
    run; for interpolating the knee between simulated rates."""
    if any(r.error or r.summary.get("saturated") or too_short_reason(r) for r in runs):
        return math.inf
    worst = -math.inf
    for c in parse_slo(slo):
        if c.metric == "itl_ms":
            estimate = _itl_estimate(runs, c)
        else:
            estimate = statistic_interval([r.latencies_ms[c.metric] for r in runs], c.key).estimate
        if not math.isfinite(estimate) or estimate <= 0:
            continue
        worst = max(worst, math.log(estimate / c.threshold_ms))
    return worst
