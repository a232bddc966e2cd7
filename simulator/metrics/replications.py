"""Replications: the same scenario under several seeds, each metric with a confidence
interval (Student's t over the per-seed values)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Summary keys reported with an interval; latency keys are objects of percentiles.
SCALAR_METRICS = (
    "throughput_rps",
    "output_tokens_per_s",
    "total_tokens_per_s",
    "goodput_rps",
    "gpu_busy_fraction",
    "mean_batch_size",
    "cost_per_million_output_tokens_usd",
)
LATENCY_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
LATENCY_STATS = ("mean", "p50", "p90", "p99")
#: Metrics that cannot leave [low, high], whatever the spread of the seeds says.
BOUNDED_METRICS = {"gpu_busy_fraction": (0.0, 1.0)}


def interval(
    values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> dict:
    """Mean and two-sided ``confidence`` interval of the mean of ``values`` (None-safe),
    kept inside ``bounds`` where the metric has them."""
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "low": low, "high": high, "n": len(x)}


def combine(summaries: Sequence[dict], confidence: float = 0.95) -> dict:
    """Per-metric mean and confidence interval across replication summaries (dicts)."""
    out: dict = {"replications": len(summaries), "confidence": confidence}
    for key in SCALAR_METRICS:
        values = [s.get(key) for s in summaries]
        out[key] = interval(values, confidence, BOUNDED_METRICS.get(key))
    # a replay of a trace draws nothing: every seed gives the same run
    out["identical_runs"] = len(summaries) > 1 and all(
        {k: v for k, v in s.items() if k != "trace"}
        == {k: v for k, v in summaries[0].items() if k != "trace"}
        for s in summaries[1:]
    )
    for key in LATENCY_METRICS:
        out[key] = {
            stat: interval([(s.get(key) or {}).get(stat) for s in summaries], confidence)
            for stat in LATENCY_STATS
        }
    out["saturated_runs"] = sum(bool(s.get("saturated")) for s in summaries)
    return out


def format_intervals(combined: dict) -> str:
    """A readable table: metric, mean and its interval."""
    pct = f"{combined['confidence']:.0%}"
    lines = [f"replications: {combined['replications']} seeds; mean and {pct} interval"]

    def fmt(name: str, iv: dict) -> None:
        if iv["mean"] is None:
            return
        band = f"[{iv['low']:,.4g}, {iv['high']:,.4g}]" if iv["low"] is not None else ""
        lines.append(f"  {name:28s} {iv['mean']:>12,.4g}  {band}")

    for key in SCALAR_METRICS:
        fmt(key, combined[key])
    for key in LATENCY_METRICS:
        for stat in LATENCY_STATS:
            fmt(f"{key} {stat}", combined[key][stat])
    if combined.get("identical_runs"):
        lines.append(
            "  every seed gave the same run (nothing in the workload is drawn at random, a "
            "trace replay say): the intervals show no spread, not a precise answer"
        )
    if combined["saturated_runs"]:
        lines.append(
            f"  SATURATED in {combined['saturated_runs']} of {combined['replications']} runs"
        )
    return "\n".join(lines)
