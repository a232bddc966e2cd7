"""Presenting a summary: an aligned text table for the terminal, and JSON/CSV files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.metrics.cost import SECONDS_PER_HOUR
from simulator.metrics.records import RunRecords
from simulator.metrics.summary import DRAIN_BASIS, OFFLINE_BASIS, Summary

if TYPE_CHECKING:
    import pandas as pd

LATENCY_ROWS = (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("ITL", "itl_ms"), ("E2E", "e2e_ms"))
LATENCY_COLUMNS = ("mean", "p50", "p90", "p99", "p99.9")
#: Why an offline run prints no 95% intervals (``MeasuredWindow.stationary``).
OFFLINE_PRECISION_NOTE = (
    "  (one sweep of this set of requests, not samples of a steady state: no 95% interval; "
    "precision: the model error band below; with random lengths, simulate --replications N "
    "gives the spread over seeds)"
)
#: Why a steady run's rates are over its drain (``window.DRAIN_BASIS``).
DRAIN_NOTE = (
    "  (no request completed between the end of the warm-up and the last arrival, which "
    "would read as 0 req/s: rates are over the first arrival + warm-up to the last "
    "completion, one drain of the queue rather than a steady state, so no 95% interval)"
)
#: What ITL covers where a warm-up is left out of the other latencies (``GapHistogram``).
ITL_NOTE = (
    "  (ITL: the gaps of every request of the run, warm-up included: gaps are not kept by time)"
)


def _num(value: Any, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _ms(value: float | None) -> str:
    """Milliseconds with about four significant digits, whatever the magnitude."""
    if value is None or not math.isfinite(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.1f}"
    if value >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _pairs(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [f"{indent}{k:<{width}}  {v}" for k, v in rows]


def _latency_table(source: dict[str, Any], indent: str = "  ") -> list[str]:
    header = ["(ms)", *LATENCY_COLUMNS]
    body = [
        [label, *(_ms(source[key].get(c)) for c in LATENCY_COLUMNS)] for label, key in LATENCY_ROWS
    ]
    # A metric not observed at all (e.g. ITL of a class without its own histogram) is left out.
    body = [row for row in body if any(cell != "-" for cell in row[1:])]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append(indent + "  ".join(cells))
    return lines


#: Marks of an SLO constraint's verdict (``metrics.slo.interval_verdict``).
VERDICT_MARKS = {"met": "✓", "missed": "✗", "uncertain": "?", "not observed": "-"}


def _interval_ms(interval: list | None) -> str:
    """``[low, high]`` in ms; an unbounded upper end (too few requests) shows as ``?``."""
    if not interval or interval[0] is None:
        return ""
    high = _ms(interval[1]) if interval[1] is not None else "?"
    return f"[{_ms(interval[0])}, {high}]"


def _slo_lines(slo: dict[str, Any], indent: str = "  ", intervals: bool = True) -> list[str]:
    """One line per constraint; without ``intervals`` (a window that does not sample a steady
    state) the interval column is left blank rather than showing the point estimate twice."""
    lines = []
    for c in slo.get("constraints", []):
        verdict = c.get("verdict") or {True: "met", False: "missed", None: "not observed"}[c["met"]]
        name = f"{c['metric'].removesuffix('_ms').upper()} {c['percentile']}"
        interval = _interval_ms(c.get("ci95_ms")) if intervals else ""
        lines.append(
            f"{indent}{VERDICT_MARKS[verdict]} {name:<14} {_ms(c['observed_ms']):>10} ms "
            f"{interval:<22} target ≤ {_ms(c['threshold_ms'])} ms: {verdict}"
        )
    return lines


def _interval_lines(summary: dict[str, Any]) -> list[str]:
    """95% intervals of the per-request latencies (ms), one line per metric."""
    lines = []
    for label, key in LATENCY_ROWS:
        found = (summary.get("latency_ci95_ms") or {}).get(key)
        if not found or not any(_interval_ms(v) for v in found.values()):
            continue  # no measured request: no interval to show
        parts = [f"{stat} {_interval_ms(found.get(stat))}" for stat in ("p50", "p90", "p99")]
        lines.append(f"  {label:<4}  " + "  ".join(parts))
    return lines


def format_summary_table(summary: Summary) -> str:
    """The summary as aligned plain text: requests, throughput, latency, SLO, utilisation, cost."""
    as_dict = summary.to_dict()
    out = _saturation_lines(summary)
    out += _request_lines(summary)
    out += _throughput_lines(summary)
    out += ["", "latency", *_latency_lines(summary, as_dict)]
    intervals = _interval_lines(as_dict)
    if intervals:
        out += ["", "95% intervals (ms; batch means over consecutive requests; ? = unbounded)"]
        out += intervals
    out += _summary_slo_lines(summary, as_dict)
    out += _utilisation_lines(summary)
    out += _cost_lines(summary)
    out += _per_class_lines(as_dict, _has_intervals(summary))
    out += _window_lines(as_dict)
    out += _provenance_lines(summary)
    return "\n".join(out)


def _saturation_lines(s: Summary) -> list[str]:
    """A warning above everything else when the load exceeded capacity."""
    if not s.saturated:
        return []
    return [
        f"SATURATED: {s.saturation_reason}",
        "  (latencies below grow with run length: the load exceeds capacity)",
        "",
    ]


def _window_text(s: Summary) -> str:
    """The measured window's length and warm-up, or why nothing was measured."""
    if s.duration_s == 0 and s.requests_completed and s.warmup_s:
        return (
            f"none: the warm-up ({s.warmup_s:.3g} s, {s.warmup_method}) outlasts the run, "
            "whose last request finished within it (lower output.warmup_s or send more "
            "requests)"
        )
    window = f"{_num(s.duration_s, '.1f')} s"
    if s.warmup_s:
        window += f" (after {s.warmup_s:.3g} s of warm-up: {s.warmup_method})"
    if s.steady_state is False:
        window += "; no steady state within the run (run longer)"
    if s.requests_measured == 0 and s.requests_completed:
        window += "; no completed request arrived after the warm-up: no latency measured"
    return window


def _request_lines(s: Summary) -> list[str]:
    """Request counts, the measured window and the trace's skipped rows."""
    window = _window_text(s)
    offline = s.throughput_basis == OFFLINE_BASIS
    out = ["requests"]
    rows = [
        ("total", str(s.requests_total)),
        ("completed", str(s.requests_completed)),
        ("rejected", str(s.requests_rejected)),
        ("unfinished", str(s.requests_unfinished)),
        ("makespan" if offline else "measured window", window),
    ]
    if s.requests_measured != s.requests_completed:
        rows.insert(2, ("measured", str(s.requests_measured)))
    if s.trace:
        rows.append(
            ("trace rows", f"{s.trace['rows_read']} read, {s.trace['rows_skipped']} skipped")
        )
    out += _pairs(rows)
    for reason, count in s.rejections.items():
        out.append(f"    {count} × {reason}")
    if s.trace:
        out += [f"    {reason}" for reason in s.trace["skipped_reasons"]]
        if s.trace.get("short_of_num_requests"):
            out.append(f"    {s.trace['short_of_num_requests']}")
    return out


def _throughput_lines(s: Summary) -> list[str]:
    """Requests, tokens and goodput per second of the measured window (or the makespan)."""
    offline = s.throughput_basis == OFFLINE_BASIS
    heading = "throughput (requests completed in the window)"
    if offline:
        heading = "throughput (offline: output tokens over the makespan)"
    rows = [
        ("requests/s", _num(s.throughput_rps, ".3f") + _rate_interval(s.throughput_ci95_rps)),
        ("output tokens/s", _num(s.output_tokens_per_s, ",.0f")),
        ("total tokens/s", _num(s.total_tokens_per_s, ",.0f")),
        ("goodput (req/s)", _num(s.goodput_rps, ".3f")),
    ]
    if s.slo.get("constraints"):
        rows[-1] = ("goodput (req/s)", rows[-1][1] + "  (completions meeting every SLO threshold)")
    note = [OFFLINE_PRECISION_NOTE] if offline and s.requests_completed else []
    if s.throughput_basis == DRAIN_BASIS:
        note = [DRAIN_NOTE]
    return ["", heading, *_pairs(rows), *note]


def _latency_lines(s: Summary, as_dict: dict[str, Any]) -> list[str]:
    """The latency table, what its ITL row covers, or that no request was measured."""
    table = _latency_table(as_dict)
    if len(table) < 2:  # the header alone
        return ["  (no measured request)"]
    return [*table, *_itl_note(s)]


def _itl_note(s: Summary) -> list[str]:
    """What the ITL row covers, where it differs from the measured requests."""
    shown = s.itl_ms.get("mean") is not None and math.isfinite(s.itl_ms["mean"])
    return [ITL_NOTE] if shown and s.warmup_s > 0 else []


def _summary_slo_lines(s: Summary, as_dict: dict[str, Any]) -> list[str]:
    """The SLO verdict with one line per constraint; nothing without constraints."""
    if not s.slo.get("constraints"):
        return []
    attainment = s.slo.get("attainment")
    att = "-" if attainment is None or not math.isfinite(attainment) else f"{attainment:.1%}"
    verdict = s.slo.get("verdict", "")
    intervals = _has_intervals(s)
    basis = "the 95% intervals" if intervals else "the point estimates"
    detail = (
        f"of the {s.requests_measured} measured requests, those that arrived in the window, "
        f"{att} met every threshold; verdicts from {basis}"
    )
    if not s.requests_measured:
        detail = "no measured request: nothing to judge"
    return ["", f"SLO: {verdict}  ({detail})", *_slo_lines(as_dict["slo"], intervals=intervals)]


def _has_intervals(s: Summary) -> bool:
    """Whether the window samples a steady state, so that SLO verdicts come from 95%
    intervals (``MeasuredWindow.stationary``)."""
    return s.throughput_basis not in (OFFLINE_BASIS, DRAIN_BASIS)


def _utilisation_lines(s: Summary) -> list[str]:
    """GPU count and busy time, mean batch, peak KV-cache use, preemptions, prefix hits."""
    rows = [
        # an autoscaled fleet holds fewer GPUs at times: the count is its most at once
        ("GPUs held (peak)", str(s.num_gpus)),
        ("GPU busy", _num(s.gpu_busy_fraction * 100, ".1f") + " % of the GPU-seconds held"),
        ("mean batch (seqs)", _num(s.mean_batch_size, ".1f")),
        ("peak KV cache use", _num(s.peak_kv_use_fraction * 100, ".1f") + " %"),
    ]
    if s.preemptions is not None:
        rows.append(("preemptions", str(s.preemptions)))
    if s.prefix_cache_hit_fraction is not None:
        rows.append(("prefix cache hits", _num(s.prefix_cache_hit_fraction * 100, ".1f") + " %"))
    return ["", "utilisation", *_pairs(rows)]


def _mean_gpus_held(s: Summary) -> float | None:
    """GPUs held on average over the window, as the window cost counts them (None without a
    price or a window)."""
    if s.gpu_cost_usd is None or not s.gpu_hour_usd or not s.duration_s > 0:
        return None
    return s.gpu_cost_usd * SECONDS_PER_HOUR / (s.gpu_hour_usd * s.duration_s)


def _gpus_priced(s: Summary) -> str:
    """The GPUs the window cost is for: all of them, or, where an autoscaled fleet held
    fewer than its peak for part of the window, their mean over the window."""
    mean = _mean_gpus_held(s)
    if mean is None or math.isclose(mean, s.num_gpus, rel_tol=1e-9, abs_tol=1e-9):
        return f"{s.num_gpus} GPU" + ("" if s.num_gpus == 1 else "s")
    return f"{mean:.3g} GPUs (mean held over the window; peak {s.num_gpus})"


def _cost_lines(s: Summary) -> list[str]:
    """The fleet's cost over the window and per million tokens (USD), when priced."""
    if s.gpu_hour_usd is None:
        return ["", "cost", "  (no cost.gpu_hour_usd given)"]
    rows = [
        ("GPU price", f"${s.gpu_hour_usd:g}/GPU-hour × {_gpus_priced(s)}"),
        ("window cost", "$" + _num(s.gpu_cost_usd, ",.4f")),
        (
            "per 1M output tokens",
            "$"
            + _num(s.cost_per_million_output_tokens_usd, ",.4f")
            + _usd_interval(s.cost_per_million_output_tokens_ci95_usd),
        ),
        ("per 1M total tokens", "$" + _num(s.cost_per_million_total_tokens_usd, ",.4f")),
    ]
    return ["", "cost", *_pairs(rows)]


def _per_class_lines(summary: dict[str, Any], intervals: bool = True) -> list[str]:
    """Each request class: counts, rates, latency table and SLO lines."""
    per_class = summary.get("per_class")
    if not per_class:
        return []
    out = ["", "per class"]
    for name, c in per_class.items():
        out.append(_class_heading(name, c))
        out += _latency_table(c, indent="    ")
        out += _slo_lines(c["slo"], indent="    ", intervals=intervals)
    return out


def _class_heading(name: str, c: dict[str, Any]) -> str:
    """A class's completions, rates and, with an SLO, the share meeting it. Goodput counts
    the completions in the window, the share the requests that arrived in it: under
    saturation these are different requests, so each says which it is over."""
    rps = _num(c["throughput_rps"], ".3f")
    good = _num(c["goodput_rps"], ".3f")
    text = f"  {name}: {c['requests_completed']} completed; in the window {rps} req/s completed"
    if not c["slo"]["constraints"]:
        return f"{text}, goodput {good} req/s"
    text += f", goodput {good} req/s (completions meeting the SLO)"
    attainment = c["slo"]["attainment"]
    if attainment is not None:
        text += f"; of the {c['requests_measured']} that arrived in it, {attainment:.1%} met it"
    return text


def _priced_with(pricing: dict[str, Any]) -> str:
    engine = pricing.get("engine")
    version = pricing.get("engine_version")
    runtime = f"{engine} {version}" if engine and version else engine or "PyTorch reference"
    return f"{runtime} runtime; kernels: {pricing.get('kernels')}"


def _band_text(band: dict[str, Any]) -> str:
    return band.get("text") or (
        f"step times within {band['median_pct']:.1f}% (median) and "
        f"{band['worst_pct']:.1f}% (worst) on {band['rows']} held-out measurements"
    )


def _provenance_lines(s: Summary) -> list[str]:
    """Which runtime and kernels priced the run, and the model's error band (per group of a
    fleet or disaggregated deployment)."""
    out: list[str] = []
    if s.pricing_by_group:
        for g in s.pricing_by_group:
            name = g["group"] if g["role"] == "serve" else f"{g['group']} ({g['role']} pool)"
            if g["pricing"]:
                out += ["", f"{name} priced with: {_priced_with(g['pricing'])}"]
            if g["error_band"]:
                out += [f"{name} model error: {_band_text(g['error_band'])}"]
        return out
    if s.pricing:
        out += ["", f"priced with: {_priced_with(s.pricing)}"]
    if s.step_time_error_band:
        out += ["", f"model error: {_band_text(s.step_time_error_band)}"]
    return out


def _window_lines(summary: dict[str, Any]) -> list[str]:
    """Per-window table of changing traffic, the peak window marked."""
    windows = summary.get("windows") or []
    if not windows:
        return []
    peak = (summary.get("peak_window") or {}).get("index")
    width = summary["window_s"]
    out = [
        "",
        f"per window of {width:g} s (requests that arrived in it; * = peak window, the most "
        "arrivals)",
        f"  {'':1} {'from (s)':>10} {'req/s':>8} {'TTFT p99 ms':>12} {'TPOT p99 ms':>12} "
        f"{'E2E p99 ms':>11}  SLO",
    ]
    for w in windows:
        out.append(
            f"  {'*' if w['index'] == peak else ' '} {w['start_s']:>10,.0f} "
            f"{_num(w['arrival_rate_rps'], '.3g'):>8} {_ms(w['ttft_ms']['p99']):>12} "
            f"{_ms(w['tpot_ms']['p99']):>12} {_ms(w['e2e_ms']['p99']):>11}  {w['slo']['verdict']}"
        )
    p = summary.get("peak_window")
    if p:
        out.append(
            f"  peak window from {p['start_s']:,.0f} s: {_num(p['arrival_rate_rps'], '.3g')} "
            f"req/s; TTFT p99 {_ms(p['ttft_ms']['p99'])} ms "
            f"{_interval_ms(p['ttft_ms']['p99_ci95'])}, TPOT p99 {_ms(p['tpot_ms']['p99'])} ms "
            f"{_interval_ms(p['tpot_ms']['p99_ci95'])}; SLO {p['slo']['verdict']}"
        )
    return out


def _rate_interval(interval: list | None) -> str:
    if not interval:
        return ""
    return f"  [{_num(interval[0], '.3f')}, {_num(interval[1], '.3f')}] (95%)"


def _usd_interval(interval: list | None) -> str:
    if not interval:
        return ""
    high = f"${_num(interval[1], ',.4f')}" if interval[1] is not None else "?"
    return f"  [${_num(interval[0], ',.4f')}, {high}] (95%)"


def requests_frame(records: RunRecords) -> pd.DataFrame:
    """One row per request: times (s), lengths, replica, rejection, TTFT, E2E and TPOT (ms),
    as ``requests.csv`` holds them."""
    import pandas as pd

    from simulator.metrics.stream import request_columns

    return pd.DataFrame(request_columns(records.requests))


def timeseries_frame(records: RunRecords) -> pd.DataFrame:
    """One row per sample per replica: queue, running sequences, KV use, tokens in the step,
    as ``timeseries.csv`` holds them."""
    import pandas as pd

    from simulator.metrics.stream import timeseries_columns

    return pd.DataFrame(timeseries_columns(records.timeseries))


def write_outputs(out_dir: Path, summary: Summary, records: RunRecords) -> list[Path]:
    """Write ``summary.json``, ``requests.csv`` and ``timeseries.csv`` into ``out_dir``."""
    from simulator.metrics.stream import write_records

    return write_records(out_dir, summary, records)
