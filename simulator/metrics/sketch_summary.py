"""The summary of a run whose requests were folded into a ``RequestSketch`` (see
``metrics.sketch`` for what is exact and what is within a stated error). Definitions are
those of ``metrics.summary``; the saturation rule is ``metrics.saturation``'s, applied to
the backlog curve counted in time buckets."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.metrics import saturation as sat
from simulator.metrics.cost import SECONDS_PER_HOUR, gpu_seconds_held, most_gpus_held
from simulator.metrics.latency import gap_stats_ms
from simulator.metrics.records import RunRecords
from simulator.metrics.sketch import RequestSketch, _Group
from simulator.metrics.slo import SloConstraint, constraint_report, overall_verdict
from simulator.metrics.summary import Summary
from simulator.metrics.window import OFFLINE_BASIS, WINDOW_BASIS


def _rate(count: float, duration_s: float) -> float:
    if duration_s > 0:
        return count / duration_s
    return 0.0 if count == 0 else math.nan


def _observed_ms(constraint: SloConstraint, group: _Group, itl) -> float:
    hist = itl if constraint.metric == "itl_ms" else group.latency[constraint.metric]
    if hist is None or hist.count == 0:
        return math.nan
    if constraint.percentile is None:
        return hist.mean() * 1e3
    return float(hist.quantile(constraint.percentile / 100.0)) * 1e3


def _group_metrics(
    group: _Group, duration_s: float, constraints: list[SloConstraint], itl
) -> dict[str, Any]:
    reports = [constraint_report(c, _observed_ms(c, group, itl)) for c in constraints]
    met = [r["met"] for r in reports]
    all_met = False if False in met else (None if None in met else True)
    n = group.measured
    return {
        "requests_measured": n,
        "throughput_rps": _rate(n, duration_s),
        "output_tokens_per_s": _rate(group.output_tokens, duration_s),
        "total_tokens_per_s": _rate(group.output_tokens + group.prompt_tokens, duration_s),
        "ttft_ms": group.stats_ms("ttft_ms"),
        "tpot_ms": group.stats_ms("tpot_ms"),
        "itl_ms": gap_stats_ms(itl),
        "e2e_ms": group.stats_ms("e2e_ms"),
        "goodput_rps": _rate(group.met, duration_s),
        "slo": {
            "constraints": reports,
            "attainment": group.met / n if n else math.nan,
            "all_met": all_met,
            "verdict": overall_verdict([r["verdict"] for r in reports]),
        },
    }


def _saturation(records: RunRecords, sketch: RequestSketch) -> sat.SaturationVerdict:
    """``metrics.saturation.detect_saturation`` on the bucketed backlog curve."""
    o = sketch.overall
    unfinished = o.total - o.completed - o.rejected
    if unfinished:
        reason = (
            f"{unfinished} request(s) still unfinished when the run ended at {records.end_s:.1f} s"
        )
        return sat.SaturationVerdict(True, reason, {"unfinished": unfinished})
    if o.total == 0 or sketch.first_arrival_s is None:
        return sat.SaturationVerdict(False, "", {})
    first = sketch.first_arrival_s
    end = records.arrival_end_s if records.arrival_end_s is not None else first
    half = first + 0.5 * (end - first)
    arrived = sketch.arrivals.at_or_before(np.array([half, end]))
    in_half = int(arrived[1] - arrived[0])
    details: dict = {"arrivals_in_tested_half": in_half}
    if in_half < sat.MIN_ARRIVALS_FOR_TREND or end <= half:
        return sat.SaturationVerdict(False, "", details)
    grid = np.linspace(half, end, sat.TREND_GRID_POINTS)
    backlog = (sketch.arrivals.at_or_before(grid) - sketch.completions.at_or_before(grid)).astype(
        np.float64
    )
    finished = sketch.completions.at_or_before(np.array([half, end]))
    completing = float(finished[1] - finished[0]) / (end - half)
    return sat.judge_backlog(records, grid, backlog, in_half, completing, details)


def summarize_sketch(
    records: RunRecords, sketch: RequestSketch, gpu_hour_usd: float | None
) -> Summary:
    """The summary of a sketched run (``metrics.summarize`` sends such runs here)."""
    o = sketch.overall
    first = sketch.first_arrival_s or 0.0
    start = first + sketch.warmup_s
    end = sketch.last_finish_s if o.completed else start
    duration = max(0.0, end - start)
    overall = _group_metrics(o, duration, sketch.constraints, records.itl)
    per_class: dict[str, dict[str, Any]] = {}
    if len(sketch.classes) > 1:
        for name in sorted(sketch.classes):
            group = sketch.classes[name]
            constraints = sketch.class_constraints.get(name, sketch.constraints)
            per_class[name] = {
                "requests_total": group.total,
                "requests_completed": group.completed,
                "requests_rejected": group.rejected,
                "requests_unfinished": group.total - group.completed - group.rejected,
                **_group_metrics(group, duration, constraints, records.itl_by_class.get(name)),
            }
    replicas = records.replicas
    num_gpus = records.num_gpus if records.num_gpus is not None else sum(r.gpus for r in replicas)
    # an autoscaled fleet pays for, and can keep busy, only the replicas it held
    gpu_seconds = gpu_seconds_held(records, first, records.end_s, num_gpus)
    busy_s = sum(r.busy_s for r in replicas)
    cost = per_out = per_total = None
    if gpu_hour_usd is not None:
        cost = gpu_hour_usd * gpu_seconds_held(records, start, end, num_gpus) / SECONDS_PER_HOUR
        per_out = cost / o.output_tokens * 1e6 if o.output_tokens else math.nan
        all_tokens = o.output_tokens + o.prompt_tokens
        per_total = cost / all_tokens * 1e6 if all_tokens else math.nan
    verdict = _saturation(records, sketch)
    return Summary(
        requests_total=o.total,
        requests_completed=o.completed,
        requests_rejected=o.rejected,
        requests_unfinished=o.total - o.completed - o.rejected,
        requests_measured=o.measured,
        warmup_s=sketch.warmup_s,
        window_start_s=start,
        window_end_s=end,
        duration_s=duration,
        throughput_basis=OFFLINE_BASIS if sketch.offline else WINDOW_BASIS,
        throughput_rps=overall["throughput_rps"],
        output_tokens_per_s=overall["output_tokens_per_s"],
        total_tokens_per_s=overall["total_tokens_per_s"],
        ttft_ms=overall["ttft_ms"],
        tpot_ms=overall["tpot_ms"],
        itl_ms=overall["itl_ms"],
        e2e_ms=overall["e2e_ms"],
        goodput_rps=overall["goodput_rps"],
        slo=overall["slo"],
        saturated=verdict.saturated,
        saturation_reason=verdict.reason,
        gpu_busy_fraction=sum(r.busy_s * r.gpus for r in replicas) / gpu_seconds
        if gpu_seconds > 0
        else math.nan,
        mean_batch_size=sum(r.batch_seq_seconds for r in replicas) / busy_s
        if busy_s > 0
        else math.nan,
        peak_kv_use_fraction=max((r.peak_kv_used_fraction for r in replicas), default=math.nan),
        num_gpus=most_gpus_held(records, num_gpus),
        gpu_hour_usd=gpu_hour_usd,
        gpu_cost_usd=cost,
        cost_per_million_output_tokens_usd=per_out,
        cost_per_million_total_tokens_usd=per_total,
        rejections=dict(sorted(sketch.rejections.items())),
        preemptions=sketch.preemptions,
        prefix_cache_hit_fraction=o.cached_tokens / o.prompt_tokens if o.prompt_tokens else None,
        per_class=per_class,
        saturation_details={**verdict.details, "precision": sketch.error_bound()},
        warmup_method="output.warmup_s (a sketched run: no warm-up estimated from the data)",
        requests_completed_in_window=o.measured,
    )
