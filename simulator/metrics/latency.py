"""Per-request latencies (TTFT, TPOT, E2E) and inter-token gaps as the summary reports them:
mean, percentiles and maximum, and 95% intervals of the main statistics."""

from __future__ import annotations

import math

import numpy as np

from simulator.metrics.histogram import GapHistogram
from simulator.metrics.records import RunRecords
from simulator.metrics.steady import statistic_interval

#: Statistics reported for each latency metric; percentiles in [0, 100].
LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
#: Statistics of each per-request latency given with a 95% interval.
INTERVAL_STATISTICS = ("mean", "p50", "p90", "p99")


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


def slo_latencies_ms(records: RunRecords, metrics: set[str] | list[str]) -> dict[str, np.ndarray]:
    """The per-request latencies plus those of ``metrics`` relative to the request
    (``ttft_per_prompt_token_ms``, ``gap_ema_ms``) that an SLO names."""
    out = per_request_latencies_ms(records)
    req = records.requests
    if "ttft_per_prompt_token_ms" in metrics:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["ttft_per_prompt_token_ms"] = out["ttft_ms"] / req.prompt_tokens
    if "gap_ema_ms" in metrics:
        worst = req.worst_gap_ema_s
        out["gap_ema_ms"] = (
            worst * 1e3 if worst is not None else np.full(len(req), np.nan, dtype=np.float64)
        )
    return out


def in_arrival_order(values: np.ndarray, arrival_s: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """The selected finite values, ordered by arrival (the order batch means need)."""
    order = np.argsort(arrival_s[sel], kind="stable")
    picked = values[sel][order]
    return picked[np.isfinite(picked)]


def latency_intervals(ordered: dict[str, np.ndarray]) -> dict[str, dict[str, list]]:
    """95% intervals of ``INTERVAL_STATISTICS`` of each per-request latency (ms)."""
    return {
        metric: {key: statistic_interval(values, key).as_list() for key in INTERVAL_STATISTICS}
        for metric, values in ordered.items()
        if metric in ("ttft_ms", "tpot_ms", "e2e_ms")
    }
