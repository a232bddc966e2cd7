"""Presenting a summary: an aligned text table for the terminal, and JSON/CSV files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.metrics.records import RunRecords
from simulator.metrics.summary import OFFLINE_BASIS, Summary

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


def _slo_lines(slo: dict[str, Any], indent: str = "  ") -> list[str]:
    lines = []
    for c in slo.get("constraints", []):
        verdict = c.get("verdict") or {True: "met", False: "missed", None: "not observed"}[c["met"]]
        name = f"{c['metric'].removesuffix('_ms').upper()} {c['percentile']}"
        lines.append(
            f"{indent}{VERDICT_MARKS[verdict]} {name:<14} {_ms(c['observed_ms']):>10} ms "
            f"{_interval_ms(c.get('ci95_ms')):<22} target ≤ {_ms(c['threshold_ms'])} ms: "
            f"{verdict}"
        )
    return lines


def _interval_lines(summary: dict[str, Any]) -> list[str]:
    """95% intervals of the per-request latencies (ms), one line per metric."""
    lines = []
    for label, key in LATENCY_ROWS:
        found = (summary.get("latency_ci95_ms") or {}).get(key)
        if not found:
            continue
        parts = [f"{stat} {_interval_ms(found.get(stat))}" for stat in ("p50", "p90", "p99")]
        lines.append(f"  {label:<4}  " + "  ".join(parts))
    return lines


def format_summary_table(summary: Summary) -> str:
    """The summary as aligned plain text: requests, throughput, latency, SLO, utilisation, cost."""
    as_dict = summary.to_dict()
    out = _saturation_lines(summary)
    out += _request_lines(summary)
    out += _throughput_lines(summary)
    out += ["", "latency", *_latency_table(as_dict)]
    intervals = _interval_lines(as_dict)
    if intervals:
        out += ["", "95% intervals (ms; batch means over consecutive requests; ? = unbounded)"]
        out += intervals
    out += _summary_slo_lines(summary, as_dict)
    out += _utilisation_lines(summary)
    out += _cost_lines(summary)
    out += _per_class_lines(as_dict)
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


def _request_lines(s: Summary) -> list[str]:
    """Request counts, the measured window and the trace's skipped rows."""
    window = f"{_num(s.duration_s, '.1f')} s"
    if s.warmup_s:
        window += f" (after {s.warmup_s:.3g} s of warm-up: {s.warmup_method})"
    if s.steady_state is False:
        window += "; no steady state within the run (run longer)"
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
    return out


def _throughput_lines(s: Summary) -> list[str]:
    """Requests, tokens and goodput per second of the measured window (or the makespan)."""
    offline = s.throughput_basis == OFFLINE_BASIS
    heading = "throughput (offline: output tokens over the makespan)" if offline else "throughput"
    rows = [
        ("requests/s", _num(s.throughput_rps, ".3f") + _rate_interval(s.throughput_ci95_rps)),
        ("output tokens/s", _num(s.output_tokens_per_s, ",.0f")),
        ("total tokens/s", _num(s.total_tokens_per_s, ",.0f")),
        ("goodput (req/s)", _num(s.goodput_rps, ".3f")),
    ]
    note = [OFFLINE_PRECISION_NOTE] if offline and s.requests_completed else []
    return ["", heading, *_pairs(rows), *note]


def _summary_slo_lines(s: Summary, as_dict: dict[str, Any]) -> list[str]:
    """The SLO verdict with one line per constraint; nothing without constraints."""
    if not s.slo.get("constraints"):
        return []
    attainment = s.slo.get("attainment")
    att = "-" if attainment is None or not math.isfinite(attainment) else f"{attainment:.1%}"
    verdict = s.slo.get("verdict", "")
    return [
        "",
        f"SLO: {verdict}  (requests meeting every threshold: {att}; verdicts from the 95% "
        "intervals)",
        *_slo_lines(as_dict["slo"]),
    ]


def _utilisation_lines(s: Summary) -> list[str]:
    """GPU count and busy time, mean batch, peak KV-cache use, preemptions, prefix hits."""
    rows = [
        ("GPUs", str(s.num_gpus)),
        ("GPU busy", _num(s.gpu_busy_fraction * 100, ".1f") + " %"),
        ("mean batch (seqs)", _num(s.mean_batch_size, ".1f")),
        ("peak KV cache use", _num(s.peak_kv_use_fraction * 100, ".1f") + " %"),
    ]
    if s.preemptions is not None:
        rows.append(("preemptions", str(s.preemptions)))
    if s.prefix_cache_hit_fraction is not None:
        rows.append(("prefix cache hits", _num(s.prefix_cache_hit_fraction * 100, ".1f") + " %"))
    return ["", "utilisation", *_pairs(rows)]


def _cost_lines(s: Summary) -> list[str]:
    """The fleet's cost over the window and per million tokens (USD), when priced."""
    if s.gpu_hour_usd is None:
        return ["", "cost", "  (no cost.gpu_hour_usd given)"]
    rows = [
        ("GPU price", f"${s.gpu_hour_usd:g}/GPU-hour × {s.num_gpus} GPUs"),
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


def _per_class_lines(summary: dict[str, Any]) -> list[str]:
    """Each request class: counts, rates, latency table and SLO lines."""
    per_class = summary.get("per_class")
    if not per_class:
        return []
    out = ["", "per class"]
    for name, c in per_class.items():
        rps = _num(c["throughput_rps"], ".3f")
        good = _num(c["goodput_rps"], ".3f")
        attainment = c["slo"]["attainment"]
        met = ""
        if c["slo"]["constraints"] and attainment is not None:
            met = f" ({attainment:.1%} meet the SLO)"
        out.append(
            f"  {name}: {c['requests_completed']} completed, {rps} req/s, goodput {good} req/s{met}"
        )
        out += _latency_table(c, indent="    ")
        out += _slo_lines(c["slo"], indent="    ")
    return out


def _provenance_lines(s: Summary) -> list[str]:
    """Which runtime and kernels priced the run, and the model's error band."""
    out: list[str] = []
    if s.pricing:
        engine = s.pricing.get("engine")
        version = s.pricing.get("engine_version")
        runtime = f"{engine} {version}" if engine and version else engine or "PyTorch reference"
        out += ["", f"priced with: {runtime} runtime; kernels: {s.pricing.get('kernels')}"]
    band = s.step_time_error_band
    if band:
        text = band.get("text") or (
            f"step times within {band['median_pct']:.1f}% (median) and "
            f"{band['worst_pct']:.1f}% (worst) on {band['rows']} held-out measurements"
        )
        out += ["", f"model error: {text}"]
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
