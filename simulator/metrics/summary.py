"""From a run's records to the numbers users read: latency percentiles with their
intervals, throughput, goodput, utilisation and cost. Definitions follow DESIGN.md
("Metrics"):

- TTFT = first token − arrival; TPOT = (finish − first token) / (output − 1), for requests
  with more than one output token; E2E = finish − arrival; ITL = every gap between
  consecutive tokens (the run's ``GapHistogram``).
- The measured window (``metrics.window``): for steady traffic, from the end of the warm-up
  (MSER-5, or ``warmup_s`` when longer) to the end of arrivals (when no request completes
  in that, first arrival plus ``warmup_s`` to the last completion); for changing traffic,
  from the first arrival plus ``warmup_s`` to the last completion. Latency percentiles are
  taken over the requests that arrived in the window (*measured requests*); throughput,
  token rates, goodput and cost over the requests that completed inside it. ITL covers the
  whole run (its histogram is not split by time); none is given with no measured request.
  A window the warm-up leaves empty has no rates (NaN), unless the run served nothing (0).
- Every latency percentile comes with a 95% interval (``metrics.steady``: batch means over
  consecutive requests, Woodruff's inversion), and every SLO constraint with the verdict that
  interval supports (met, missed or uncertain).
- Goodput = completions in the window that met every per-request SLO threshold, per second.
- GPU busy = busy GPU-seconds / GPU-seconds held from the first arrival to the end of the
  run (with autoscaling, of the replicas held at each moment, ``metrics.cost``).
- Cost per million output tokens = the fleet's whole cost over the window (gpu_hour_usd ×
  GPUs held × window hours) / output tokens of the requests completed in it × 1e6 (and
  likewise per million prompt + output tokens).
- With several request classes, every number above is also reported per class (``per_class``),
  over the same window; ITL per class needs ``RunRecords.itl_by_class``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from simulator.metrics.cost import gpu_seconds_held, most_gpus_held, rate_interval, window_costs
from simulator.metrics.histogram import GapHistogram
from simulator.metrics.latency import (  # noqa: F401  (re-exported)
    LATENCY_PERCENTILES,
    gap_stats_ms,
    in_arrival_order,
    latency_intervals,
    latency_stats_ms,
    per_request_latencies_ms,
    slo_latencies_ms,
)
from simulator.metrics.per_window import peak_window, window_summaries
from simulator.metrics.queueing import littles_law_check  # noqa: F401  (re-exported)
from simulator.metrics.records import RunRecords, rejection_category
from simulator.metrics.saturation import detect_saturation
from simulator.metrics.slo import (
    SloConstraint,
    constraint_report,
    overall_verdict,
    parse_slo,
    requests_meeting,
)
from simulator.metrics.steady import statistic_interval
from simulator.metrics.window import (  # noqa: F401  (re-exported)
    DRAIN_BASIS,
    OFFLINE_BASIS,
    STEADY_BASIS,
    WINDOW_BASIS,
    MeasuredWindow,
    measured_window,
)


@dataclass
class Summary:
    """Headline numbers of one run (times in ms where named so, rates per second of window)."""

    requests_total: int
    requests_completed: int
    requests_rejected: int
    requests_unfinished: int
    #: Requests that arrived in the measured window and completed: their latencies are
    #: the percentiles below.
    requests_measured: int
    #: Time excluded after the first arrival (s): the warm-up, and how it was chosen.
    warmup_s: float
    window_start_s: float
    window_end_s: float
    duration_s: float
    #: What the window and so every rate is over (``metrics.window``: steady window,
    #: measured window, a steady run's drain or offline makespan).
    throughput_basis: str
    throughput_rps: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    ttft_ms: dict[str, float]
    tpot_ms: dict[str, float]
    itl_ms: dict[str, float]
    e2e_ms: dict[str, float]
    goodput_rps: float
    #: {"constraints": [{metric, percentile, observed_ms, threshold_ms, met, ci95_ms,
    #:  verdict}], "attainment", "all_met", "verdict"}; attainment = fraction of measured
    #:  requests meeting every threshold; ``met`` / ``all_met`` judge the point estimates
    #:  (None where a statistic could not be observed), ``verdict`` their intervals.
    slo: dict[str, Any]
    #: See ``metrics.saturation``: the queue still grew at the end of arrivals, or requests
    #: were left unfinished; the reason says which, with numbers ("" when not saturated).
    saturated: bool
    saturation_reason: str
    #: GPU-seconds spent executing steps / GPU-seconds held from the first arrival to the
    #: run's end (with autoscaling, those of the replicas held at each moment).
    gpu_busy_fraction: float
    #: Running sequences per step, weighted by step time, while replicas were busy.
    mean_batch_size: float
    #: Highest KV-cache use (used / total blocks) of any replica.
    peak_kv_use_fraction: float
    #: GPUs of the deployment; with autoscaling, the most held at once (the cost is over the
    #: replicas held at each moment of the window, so it may average fewer).
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
    #: The cost model's validated step-time error for this GPU and engine:
    #: ``{"median_pct", "worst_pct", "rows", "kind", "applies_to", "source"}``.
    step_time_error_band: dict[str, Any] | None = None
    #: How the warm-up was chosen (``metrics.window``) and whether MSER-5 found a steady
    #: state in the first half of the run (None: changing traffic, not tested).
    warmup_method: str = ""
    steady_state: bool | None = None
    #: Completions inside the window (the count behind throughput, goodput and cost).
    requests_completed_in_window: int = 0
    #: 95% intervals: per latency metric and statistic ``[low, high]`` (ms; None for an
    #: unbounded end), and of the throughput and the cost per million output tokens.
    latency_ci95_ms: dict[str, dict[str, list]] = field(default_factory=dict)
    throughput_ci95_rps: list | None = None
    cost_per_million_output_tokens_ci95_usd: list | None = None
    #: Changing traffic: summaries per window of ``window_s`` (``metrics.per_window``) and
    #: the busiest one (most arrivals), whose latencies decide the fleet.
    window_s: float | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)
    peak_window: dict[str, Any] | None = None
    #: What the step times were priced with: ``{"engine", "engine_version", "kernels",
    #: "parameters"}`` (kernels: the engine calibration used, or the fallback and why).
    pricing: dict[str, Any] | None = None
    #: A fleet's groups or a disaggregated deployment's pools: each one's ``pricing`` and
    #: ``error_band`` (``pricing`` and ``step_time_error_band`` are then the first's).
    pricing_by_group: list[dict[str, Any]] | None = None
    #: Rows of the replayed trace: ``{"rows_read", "rows_skipped", "skipped_reasons" (the
    #: first few, FILE:LINE: ...), "read_to_end"}``; None without a trace.
    trace: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: plain floats/ints/strs, NaN and infinities as None."""
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}


def jsonable(value: Any) -> Any:
    """``value`` with plain Python numbers in place of numpy ones and None for NaN and
    infinities (strict JSON has neither), through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _rate(count: float, duration_s: float, served: bool = False) -> float:
    """``count`` per second of the window. Over an empty window: 0 when the run ``served``
    no request, else unknown (NaN; a warm-up past the last completion leaves nothing to
    measure, which is not a rate of 0)."""
    if duration_s > 0:
        return count / duration_s
    return 0.0 if count == 0 and not served else math.nan


def _observed(
    constraint: SloConstraint, ordered: dict[str, np.ndarray], itl, intervals: bool = True
) -> tuple[float, list | None]:
    """The constraint's statistic (ms) and its 95% interval (None: no interval for ITL,
    whose gaps are kept only as a histogram, nor without ``intervals``)."""
    if constraint.metric == "itl_ms":
        if itl is None or itl.count == 0:
            return math.nan, None
        if constraint.percentile is None:
            return itl.mean() * 1e3, None
        return float(itl.quantile(constraint.percentile / 100.0)) * 1e3, None
    found = statistic_interval(ordered[constraint.metric], constraint.key)
    return found.estimate, [found.low, found.high] if intervals else None


def _all_met(results: list[bool | None]) -> bool | None:
    """False if any constraint failed, None if any could not be checked, else True."""
    if False in results:
        return False
    return None if None in results else True


def _group_metrics(
    records: RunRecords,
    window: MeasuredWindow,
    in_group: np.ndarray,
    meets: np.ndarray,
    latencies: dict[str, np.ndarray],
    constraints: list[SloConstraint],
    itl: GapHistogram | None,
) -> dict[str, Any]:
    """Throughput, latency and SLO numbers of the requests ``in_group`` over ``window``."""
    req = records.requests
    sel = window.latency_mask & in_group
    done = window.rate_mask & in_group
    duration_s = window.duration_s
    served = bool(np.isfinite(req.finish_s).any())
    n = int(np.count_nonzero(sel))
    output_tokens = float(req.output_tokens[done].sum())
    prompt_tokens = float(req.prompt_tokens[done].sum())
    ordered = {k: in_arrival_order(v, req.arrival_s, sel) for k, v in latencies.items()}
    if n == 0:
        itl = None  # the run's gaps are not split by time: none belongs to a measured request
    intervals = window.stationary
    reports = [constraint_report(c, *_observed(c, ordered, itl, intervals)) for c in constraints]
    met = int(np.count_nonzero(meets & sel))
    return {
        "requests_measured": n,
        "requests_completed_in_window": int(np.count_nonzero(done)),
        "throughput_rps": _rate(np.count_nonzero(done), duration_s, served),
        "output_tokens_per_s": _rate(output_tokens, duration_s, served),
        "total_tokens_per_s": _rate(output_tokens + prompt_tokens, duration_s, served),
        "ttft_ms": latency_stats_ms(latencies["ttft_ms"][sel]),
        "tpot_ms": latency_stats_ms(latencies["tpot_ms"][sel]),
        "itl_ms": gap_stats_ms(itl),
        "e2e_ms": latency_stats_ms(latencies["e2e_ms"][sel]),
        "goodput_rps": _rate(np.count_nonzero(meets & done), duration_s, served),
        "slo": {
            "constraints": reports,
            "attainment": met / n if n else math.nan,
            "all_met": _all_met([r["met"] for r in reports]),
            "verdict": overall_verdict([r["verdict"] for r in reports]),
        },
        "latency_ci95_ms": latency_intervals(ordered) if intervals else {},
        "output_tokens": output_tokens,
        "prompt_tokens": prompt_tokens,
    }


def _per_class(
    records: RunRecords,
    window: MeasuredWindow,
    meets: np.ndarray,
    latencies: dict[str, np.ndarray],
    constraints: list[SloConstraint],
    class_constraints: dict[str, list[SloConstraint]],
) -> dict[str, dict[str, Any]]:
    """The group metrics of every request class (empty with a single class)."""
    req = records.requests
    class_names = np.asarray(req.class_name, dtype=object)
    unique_classes = sorted({str(c) for c in class_names})
    if len(unique_classes) < 2:
        return {}
    rejected = req.rejected.astype(bool)
    completed = ~rejected & np.isfinite(req.finish_s)
    itl_by_class = getattr(records, "itl_by_class", None) or {}
    out: dict[str, dict[str, Any]] = {}
    for name in unique_classes:
        in_class = class_names == name
        group = _group_metrics(
            records,
            window,
            in_class,
            meets,
            latencies,
            class_constraints.get(name, constraints),
            itl_by_class.get(name),
        )
        for key in ("output_tokens", "prompt_tokens", "latency_ci95_ms"):
            group.pop(key)
        out[name] = {
            "requests_total": int(np.count_nonzero(in_class)),
            "requests_completed": int(np.count_nonzero(completed & in_class)),
            "requests_rejected": int(np.count_nonzero(rejected & in_class)),
            "requests_unfinished": int(np.count_nonzero(~rejected & ~completed & in_class)),
            **group,
        }
    return out


def _utilisation(records: RunRecords, num_gpus: int) -> dict[str, float]:
    """GPU busy fraction (of the GPU-seconds held from the first arrival to the end of the
    run), time-weighted batch size and peak KV use of the run."""
    replicas = records.replicas
    req = records.requests
    first_arrival_s = float(req.arrival_s.min()) if len(req) else 0.0
    # an autoscaled fleet pays only for the replicas it held, so only those can be busy
    gpu_seconds = gpu_seconds_held(records, first_arrival_s, records.end_s, num_gpus)
    busy_gpu_seconds = sum(r.busy_s * r.gpus for r in replicas)
    busy_s = sum(r.busy_s for r in replicas)
    peak_kv = max((r.peak_kv_used_fraction for r in replicas), default=math.nan)
    if math.isnan(peak_kv) and len(records.timeseries.kv_used_fraction):
        peak_kv = float(np.max(records.timeseries.kv_used_fraction))
    return {
        "gpu_busy_fraction": busy_gpu_seconds / gpu_seconds if gpu_seconds > 0 else math.nan,
        "mean_batch_size": sum(r.batch_seq_seconds for r in replicas) / busy_s
        if busy_s > 0
        else math.nan,
        "peak_kv_use_fraction": peak_kv,
    }


def _requests_meeting_their_slo(
    records: RunRecords,
    latencies: dict[str, np.ndarray],
    constraints: list[SloConstraint],
    class_constraints: dict[str, list[SloConstraint]],
) -> np.ndarray:
    """Whether each request met every threshold of its SLO: its class's own SLO where the
    class has one, else the scenario's (one bool per request, for goodput)."""
    n_total = len(records.requests)
    class_names = np.asarray(records.requests.class_name, dtype=object)
    meets = requests_meeting(constraints, latencies, n_total)
    for name, own in class_constraints.items():
        meets = np.where(class_names == name, requests_meeting(own, latencies, n_total), meets)
    return meets


def _request_counts(records: RunRecords) -> dict[str, Any]:
    """Requests in total, completed, rejected and unfinished at the end of the run, and the
    rejections counted by cause (``rejection_category``)."""
    req = records.requests
    rejected = req.rejected.astype(bool)
    completed = ~rejected & np.isfinite(req.finish_s)
    reasons = Counter(
        rejection_category(str(r)) for r in np.asarray(req.reject_reason, dtype=object)[rejected]
    )
    return {
        "requests_total": len(req),
        "requests_completed": int(np.count_nonzero(completed)),
        "requests_rejected": int(np.count_nonzero(rejected)),
        "requests_unfinished": int(np.count_nonzero(~rejected & ~completed)),
        "rejections": dict(sorted(reasons.items())),
    }


def _prefix_cache_hit_fraction(records: RunRecords, window: MeasuredWindow) -> float | None:
    """Share of the measured requests' prompt tokens served from the prefix cache (None when
    the engine keeps no prefix cache or no prompt tokens were measured)."""
    req = records.requests
    if req.cached_prompt_tokens is None:
        return None
    measured = window.latency_mask
    prompt = float(req.prompt_tokens[measured].sum())
    return float(req.cached_prompt_tokens[measured].sum()) / prompt if prompt else None


def summarize(
    records: RunRecords,
    *,
    slo: dict | None,
    gpu_hour_usd: float | None,
    warmup_s: float = 0.0,
    class_slos: dict[str, dict] | None = None,
    steady_traffic: bool = False,
    offline: bool = False,
    window_s: float | None = None,
) -> Summary:
    """Summarise a run. ``slo`` is the scenario's ``slo:`` dict (see ``metrics.slo``);
    ``class_slos`` optionally gives a class its own SLO, which then decides whether that
    class's requests meet the SLO (for goodput) instead of the scenario's;
    ``steady_traffic`` says the arrival rate does not change, so the warm-up is detected
    and the window ends with the arrivals; ``offline``: every request was queued at t = 0,
    the window is the makespan (``warmup_s`` must be 0) (``metrics.window``); ``window_s``
    adds summaries per window of that length (``metrics.per_window``)."""
    if records.request_sketch is not None:  # too many requests to keep: sketched as they came
        from simulator.metrics.sketch_summary import summarize_sketch

        return summarize_sketch(records, records.request_sketch, gpu_hour_usd)
    constraints = parse_slo(slo)
    class_constraints = {
        name: parse_slo(c, f"workload.classes.{name}.slo") for name, c in (class_slos or {}).items()
    }
    req = records.requests
    n_total = len(req)
    named = {c.metric for c in constraints} | {
        c.metric for own in class_constraints.values() for c in own
    }
    latencies = slo_latencies_ms(records, named)
    window = measured_window(records, warmup_s, steady_traffic, offline)

    meets = _requests_meeting_their_slo(records, latencies, constraints, class_constraints)
    everyone = np.ones(n_total, dtype=bool)
    overall = _group_metrics(records, window, everyone, meets, latencies, constraints, records.itl)
    num_gpus = records.num_gpus
    if num_gpus is None:
        num_gpus = sum(r.gpus for r in records.replicas)
    costs = window_costs(records, window, overall, gpu_hour_usd, num_gpus)
    done = window.rate_mask
    verdict = detect_saturation(records)
    overall.pop("output_tokens")
    overall.pop("prompt_tokens")
    windows = window_summaries(records, latencies, window_s, constraints) if window_s else []
    return Summary(
        **_request_counts(records),
        warmup_s=window.warmup_s,
        window_start_s=window.start_s,
        window_end_s=window.end_s,
        duration_s=window.duration_s,
        throughput_basis=window.basis,
        saturated=verdict.saturated,
        saturation_reason=verdict.reason,
        **_utilisation(records, num_gpus),
        num_gpus=most_gpus_held(records, num_gpus),
        gpu_hour_usd=gpu_hour_usd,
        preemptions=int(req.preemptions.sum()) if req.preemptions is not None else None,
        prefix_cache_hit_fraction=_prefix_cache_hit_fraction(records, window),
        per_class=_per_class(records, window, meets, latencies, constraints, class_constraints),
        saturation_details=verdict.details,
        warmup_method=window.method,
        steady_state=window.steady,
        throughput_ci95_rps=rate_interval(req.finish_s[done], np.ones(int(done.sum())), window),
        window_s=window_s if windows else None,
        windows=windows,
        peak_window=peak_window(windows),
        **overall,
        **costs,
    )
