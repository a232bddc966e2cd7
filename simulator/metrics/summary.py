"""From a run's records to the numbers users read: latency percentiles, throughput, goodput,
utilisation and cost. Definitions follow DESIGN.md ("Metrics"):

- TTFT = first token − arrival; TPOT = (finish − first token) / (output − 1), for requests
  with more than one output token; E2E = finish − arrival; ITL = every gap between
  consecutive tokens (the run's ``GapHistogram``).
- Measured window = from the first arrival plus ``warmup_s`` to the last completion. The
  *measured requests* are those completed within the window; throughput, token rates,
  goodput and the latency percentiles (TTFT, TPOT, E2E) are taken over them. ITL covers the
  whole run (its histogram is not split by time).
- Offline runs (every request queued at t = 0) take no warmup: the window is the makespan,
  first arrival to last completion, so throughput is output tokens over the makespan, as
  ``trtllm-bench throughput``, vLLM ``benchmark_throughput`` and MLPerf Offline report it.
- Goodput = measured requests that met every per-request SLO threshold, per second of window.
- Cost per million output tokens = gpu_hour_usd × num_gpus × window hours / output tokens of
  the measured requests × 1e6 (and likewise per million prompt + output tokens).
- With several request classes, every number above is also reported per class (``per_class``),
  over the same window; ITL per class needs ``RunRecords.itl_by_class``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from simulator.metrics.histogram import GapHistogram
from simulator.metrics.records import RunRecords
from simulator.metrics.saturation import detect_saturation
from simulator.metrics.slo import (
    SloConstraint,
    constraint_report,
    parse_slo,
    requests_meeting,
)

#: Statistics reported for each latency metric; percentiles in [0, 100].
LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
SECONDS_PER_HOUR = 3600.0
#: ``Summary.throughput_basis`` of a run with arrivals over time, and of an offline run.
WINDOW_BASIS = "measured window: first arrival + warmup to last completion"
OFFLINE_BASIS = (
    "offline: every request queued at t = 0; output tokens over the makespan (first arrival "
    "to last completion), as trtllm-bench throughput, vLLM benchmark_throughput and MLPerf "
    "Offline report"
)


@dataclass
class Summary:
    """Headline numbers of one run (times in ms where named so, rates per second of window)."""

    requests_total: int
    requests_completed: int
    requests_rejected: int
    requests_unfinished: int
    #: Completed within the measured window (equal to requests_completed without warmup).
    requests_measured: int
    warmup_s: float
    window_start_s: float
    window_end_s: float
    duration_s: float
    #: What the window and so every rate is over (``WINDOW_BASIS`` or ``OFFLINE_BASIS``).
    throughput_basis: str
    throughput_rps: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    ttft_ms: dict[str, float]
    tpot_ms: dict[str, float]
    itl_ms: dict[str, float]
    e2e_ms: dict[str, float]
    goodput_rps: float
    #: {"constraints": [{metric, percentile, observed_ms, threshold_ms, met}], "attainment",
    #:  "all_met"}; attainment = fraction of measured requests meeting every threshold;
    #:  ``met`` / ``all_met`` are None where a statistic could not be observed (no data).
    slo: dict[str, Any]
    #: See ``metrics.saturation``: the queue still grew at the end of arrivals, or requests
    #: were left unfinished; the reason says which, with numbers ("" when not saturated).
    saturated: bool
    saturation_reason: str
    #: GPU-seconds spent executing steps / GPU-seconds from the first arrival to the run's end.
    gpu_busy_fraction: float
    #: Running sequences per step, weighted by step time, while replicas were busy.
    mean_batch_size: float
    #: Highest KV-cache use (used / total blocks) of any replica.
    peak_kv_use_fraction: float
    num_gpus: int
    gpu_hour_usd: float | None
    gpu_cost_usd: float | None
    cost_per_million_output_tokens_usd: float | None
    cost_per_million_total_tokens_usd: float | None
    rejections: dict[str, int]
    preemptions: int | None = None
    #: Cached prompt tokens / prompt tokens of measured requests (None without prefix caching).
    prefix_cache_hit_fraction: float | None = None
    #: class name -> the same request, throughput, latency, goodput and SLO keys, per class.
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    saturation_details: dict[str, Any] = field(default_factory=dict)
    #: The cost model's validated step-time error (held-out rows of the validation suite):
    #: ``{"median_pct", "worst_pct", "rows", "source"}``; a margin for planning.
    step_time_error_band: dict[str, Any] | None = None
    #: What the step times were priced with: ``{"engine", "engine_version", "kernels",
    #: "parameters"}`` (kernels: the engine calibration used, or the fallback and why).
    pricing: dict[str, Any] | None = None
    #: Rows of the replayed trace: ``{"rows_read", "rows_skipped", "skipped_reasons" (the
    #: first few, FILE:LINE: ...), "read_to_end"}``; None without a trace.
    trace: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: plain floats/ints/strs, NaN and infinities as None."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def rejection_category(reason: str) -> str:
    """A rejection reason with its numbers replaced by ``N``, so that requests rejected for
    the same cause count together (``requests.csv`` keeps every reason in full)."""
    return _NUMBER.sub("N", reason) or "unspecified"


def latency_stats_ms(values_ms: np.ndarray) -> dict[str, float]:
    """Mean, percentiles and max of the finite values (ms); NaN everywhere when empty."""
    finite = values_ms[np.isfinite(values_ms)]
    if len(finite) == 0:
        return {"mean": math.nan, **dict.fromkeys(LATENCY_PERCENTILES, math.nan), "max": math.nan}
    percentiles = np.percentile(finite, list(LATENCY_PERCENTILES.values()))
    return {
        "mean": float(finite.mean()),
        **{k: float(p) for k, p in zip(LATENCY_PERCENTILES, percentiles, strict=True)},
        "max": float(finite.max()),
    }


def gap_stats_ms(hist: GapHistogram | None) -> dict[str, float]:
    """Mean (exact), percentiles (to the histogram's resolution) and max of gaps, in ms."""
    if hist is None or hist.count == 0:
        return latency_stats_ms(np.empty(0))
    quantiles = hist.quantile(np.array(list(LATENCY_PERCENTILES.values())) / 100.0)
    return {
        "mean": hist.mean() * 1e3,
        **{k: float(v) * 1e3 for k, v in zip(LATENCY_PERCENTILES, quantiles, strict=True)},
        "max": hist.max() * 1e3,
    }


def per_request_latencies_ms(records: RunRecords) -> dict[str, np.ndarray]:
    """TTFT, TPOT and E2E of every request (ms), NaN where undefined."""
    req = records.requests
    output = req.output_tokens.astype(np.float64)
    ttft = (req.first_token_s - req.arrival_s) * 1e3
    e2e = (req.finish_s - req.arrival_s) * 1e3
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (req.finish_s - req.first_token_s) * 1e3 / (output - 1), np.nan)
    return {"ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": e2e}


def _rate(count: float, duration_s: float) -> float:
    if duration_s > 0:
        return count / duration_s
    return 0.0 if count == 0 else math.nan


def _observed_ms(
    constraint: SloConstraint, latencies: dict[str, np.ndarray], sel: np.ndarray, itl
) -> float:
    if constraint.metric == "itl_ms":
        if itl is None or itl.count == 0:
            return math.nan
        if constraint.percentile is None:
            return itl.mean() * 1e3
        return float(itl.quantile(constraint.percentile / 100.0)) * 1e3
    values = latencies[constraint.metric][sel]
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan
    if constraint.percentile is None:
        return float(values.mean())
    return float(np.percentile(values, constraint.percentile))


def _all_met(results: list[bool | None]) -> bool | None:
    """False if any constraint failed, None if any could not be checked, else True."""
    if False in results:
        return False
    return None if None in results else True


def _group_metrics(
    records: RunRecords,
    sel: np.ndarray,
    meets: np.ndarray,
    latencies: dict[str, np.ndarray],
    duration_s: float,
    constraints: list[SloConstraint],
    itl: GapHistogram | None,
) -> dict[str, Any]:
    """Throughput, latency and SLO numbers over the measured requests ``sel``."""
    req = records.requests
    n = int(np.count_nonzero(sel))
    output_tokens = float(req.output_tokens[sel].sum())
    prompt_tokens = float(req.prompt_tokens[sel].sum())
    met = int(np.count_nonzero(meets & sel))
    reports = [constraint_report(c, _observed_ms(c, latencies, sel, itl)) for c in constraints]
    return {
        "requests_measured": n,
        "throughput_rps": _rate(n, duration_s),
        "output_tokens_per_s": _rate(output_tokens, duration_s),
        "total_tokens_per_s": _rate(output_tokens + prompt_tokens, duration_s),
        "ttft_ms": latency_stats_ms(latencies["ttft_ms"][sel]),
        "tpot_ms": latency_stats_ms(latencies["tpot_ms"][sel]),
        "itl_ms": gap_stats_ms(itl),
        "e2e_ms": latency_stats_ms(latencies["e2e_ms"][sel]),
        "goodput_rps": _rate(met, duration_s),
        "slo": {
            "constraints": reports,
            "attainment": met / n if n else math.nan,
            "all_met": _all_met([r["met"] for r in reports]),
        },
        "output_tokens": output_tokens,
        "prompt_tokens": prompt_tokens,
    }


def summarize(
    records: RunRecords,
    *,
    slo: dict | None,
    gpu_hour_usd: float | None,
    warmup_s: float = 0.0,
    class_slos: dict[str, dict] | None = None,
    offline: bool = False,
) -> Summary:
    """Summarise a run. ``slo`` is the scenario's ``slo:`` dict (see ``metrics.slo``);
    ``class_slos`` optionally gives a class its own SLO, which then decides whether that
    class's requests meet the SLO (for goodput) instead of the scenario's. ``offline``: every
    request was queued at t = 0; the window is the makespan (``warmup_s`` must be 0)."""
    if offline and warmup_s:
        raise ValueError(f"an offline run takes no warmup (got warmup_s={warmup_s})")
    if records.request_sketch is not None:  # too many requests to keep: sketched as they came
        from simulator.metrics.sketch_summary import summarize_sketch

        return summarize_sketch(records, records.request_sketch, gpu_hour_usd)
    constraints = parse_slo(slo)
    class_constraints = {
        name: parse_slo(c, f"workload.classes.{name}.slo") for name, c in (class_slos or {}).items()
    }
    req = records.requests
    n_total = len(req)
    rejected = req.rejected.astype(bool)
    completed = ~rejected & np.isfinite(req.finish_s)
    latencies = per_request_latencies_ms(records)

    first_arrival_s = float(req.arrival_s.min()) if n_total else 0.0
    window_start_s = first_arrival_s + warmup_s
    window_end_s = float(req.finish_s[completed].max()) if completed.any() else window_start_s
    duration_s = max(0.0, window_end_s - window_start_s)
    measured = completed & (req.finish_s >= window_start_s)

    class_names = np.asarray(req.class_name, dtype=object)
    meets = requests_meeting(constraints, latencies, n_total)
    for name, own in class_constraints.items():
        in_class = class_names == name
        meets = np.where(in_class, requests_meeting(own, latencies, n_total), meets)

    overall = _group_metrics(
        records, measured, meets, latencies, duration_s, constraints, records.itl
    )

    per_class: dict[str, dict[str, Any]] = {}
    unique_classes = sorted({str(c) for c in class_names})
    if len(unique_classes) > 1:
        itl_by_class = getattr(records, "itl_by_class", None) or {}
        for name in unique_classes:
            in_class = class_names == name
            group = _group_metrics(
                records,
                measured & in_class,
                meets,
                latencies,
                duration_s,
                class_constraints.get(name, constraints),
                itl_by_class.get(name),
            )
            group.pop("output_tokens")
            group.pop("prompt_tokens")
            per_class[name] = {
                "requests_total": int(np.count_nonzero(in_class)),
                "requests_completed": int(np.count_nonzero(completed & in_class)),
                "requests_rejected": int(np.count_nonzero(rejected & in_class)),
                "requests_unfinished": int(np.count_nonzero(~rejected & ~completed & in_class)),
                **group,
            }

    replicas = records.replicas
    num_gpus = records.num_gpus
    if num_gpus is None:
        num_gpus = sum(r.gpus for r in replicas)
    run_span_s = records.end_s - first_arrival_s
    gpu_seconds = sum(r.gpus for r in replicas) * run_span_s
    busy_gpu_seconds = sum(r.busy_s * r.gpus for r in replicas)
    busy_s = sum(r.busy_s for r in replicas)
    peak_kv = max((r.peak_kv_used_fraction for r in replicas), default=math.nan)
    if math.isnan(peak_kv) and len(records.timeseries.kv_used_fraction):
        peak_kv = float(np.max(records.timeseries.kv_used_fraction))

    gpu_cost_usd = per_million_out = per_million_total = None
    if gpu_hour_usd is not None:
        if records.fleet is not None:  # autoscaling: pay for the GPU-seconds actually held
            gpu_cost_usd = gpu_hour_usd * records.fleet.gpu_seconds_held / SECONDS_PER_HOUR
        else:
            gpu_cost_usd = gpu_hour_usd * num_gpus * duration_s / SECONDS_PER_HOUR
        out_tokens = overall["output_tokens"]
        all_tokens = out_tokens + overall["prompt_tokens"]
        per_million_out = gpu_cost_usd / out_tokens * 1e6 if out_tokens else math.nan
        per_million_total = gpu_cost_usd / all_tokens * 1e6 if all_tokens else math.nan

    prefix_hit = None
    if req.cached_prompt_tokens is not None:
        prompt = float(req.prompt_tokens[measured].sum())
        prefix_hit = float(req.cached_prompt_tokens[measured].sum()) / prompt if prompt else None

    verdict = detect_saturation(records)
    reasons = Counter(
        rejection_category(str(r)) for r in np.asarray(req.reject_reason, dtype=object)[rejected]
    )
    return Summary(
        requests_total=n_total,
        requests_completed=int(np.count_nonzero(completed)),
        requests_rejected=int(np.count_nonzero(rejected)),
        requests_unfinished=int(np.count_nonzero(~rejected & ~completed)),
        requests_measured=overall["requests_measured"],
        warmup_s=warmup_s,
        window_start_s=window_start_s,
        window_end_s=window_end_s,
        duration_s=duration_s,
        throughput_basis=OFFLINE_BASIS if offline else WINDOW_BASIS,
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
        gpu_busy_fraction=busy_gpu_seconds / gpu_seconds if gpu_seconds > 0 else math.nan,
        mean_batch_size=sum(r.batch_seq_seconds for r in replicas) / busy_s
        if busy_s > 0
        else math.nan,
        peak_kv_use_fraction=peak_kv,
        num_gpus=num_gpus,
        gpu_hour_usd=gpu_hour_usd,
        gpu_cost_usd=gpu_cost_usd,
        cost_per_million_output_tokens_usd=per_million_out,
        cost_per_million_total_tokens_usd=per_million_total,
        rejections=dict(sorted(reasons.items())),
        preemptions=int(req.preemptions.sum()) if req.preemptions is not None else None,
        prefix_cache_hit_fraction=prefix_hit,
        per_class=per_class,
        saturation_details=verdict.details,
    )


def littles_law_check(records: RunRecords) -> dict[str, float]:
    """Little's law L = λW on the run: the time-averaged number of requests in the system
    (waiting + running, summed over replicas, each sample held until the next) against the
    completion rate × mean E2E, over first arrival .. ``end_s``. A drained run should agree
    to within the time series' sampling error."""
    req = records.requests
    ts = records.timeseries
    done = np.isfinite(req.finish_s) & ~req.rejected.astype(bool)
    start_s = float(req.arrival_s.min())
    span_s = records.end_s - start_s
    area = 0.0
    for replica in np.unique(ts.replica):
        mask = ts.replica == replica
        order = np.argsort(ts.time_s[mask], kind="stable")
        times = np.clip(ts.time_s[mask][order], start_s, records.end_s)
        in_system = (ts.waiting[mask] + ts.running[mask])[order].astype(np.float64)
        hold_s = np.diff(np.append(times, records.end_s))
        area += float(np.dot(in_system, hold_s))
    mean_in_system = area / span_s if span_s > 0 else math.nan
    rate_rps = np.count_nonzero(done) / span_s if span_s > 0 else math.nan
    mean_e2e_s = (
        float(np.mean(req.finish_s[done] - req.arrival_s[done])) if done.any() else math.nan
    )
    predicted = rate_rps * mean_e2e_s
    return {
        "mean_in_system_timeseries": float(mean_in_system),
        "completion_rate_rps": float(rate_rps),
        "mean_e2e_s": float(mean_e2e_s),
        "littles_law_in_system": float(predicted),
        "relative_error": float((mean_in_system - predicted) / predicted)
        if predicted
        else math.nan,
    }
