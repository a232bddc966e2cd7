"""Rates over the measured window with their intervals, and what the fleet costs over it.

Cost per million output tokens = the fleet's whole cost over the window (``gpu_hour_usd`` ×
GPU-seconds held in the window / 3600) / output tokens of the requests completed in the
window × 1e6: the one meaning every command uses. Its interval follows from the interval of
the output-token rate (``RATE_SLICES`` equal slices of the window, Student's t).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.metrics.records import RunRecords
from simulator.metrics.steady import CONFIDENCE, t_quantile
from simulator.metrics.window import MeasuredWindow

#: Equal time slices of the window whose rates give the throughput interval.
RATE_SLICES = 10
SECONDS_PER_HOUR = 3600.0


def rate_interval(
    finish_s: np.ndarray, weights: np.ndarray, window: MeasuredWindow
) -> list[float] | None:
    """95% interval of a rate (weights per second: 1 per request, or its tokens) from
    ``RATE_SLICES`` equal slices of the window (None for a window too short to slice, or one
    whose slices are not samples of one process: ``MeasuredWindow.stationary``)."""
    if not window.stationary or window.duration_s <= 0 or len(finish_s) < 2 * RATE_SLICES:
        return None
    edges = np.linspace(window.start_s, window.end_s, RATE_SLICES + 1)
    slices, _ = np.histogram(finish_s, bins=edges, weights=weights)
    rates = slices / (window.duration_s / RATE_SLICES)
    half = t_quantile(CONFIDENCE, RATE_SLICES - 1) * float(rates.std(ddof=1))
    half /= math.sqrt(RATE_SLICES)
    mean = float(rates.mean())
    return [max(0.0, mean - half), mean + half]


def gpu_seconds_held(records: RunRecords, start_s: float, end_s: float, num_gpus: int) -> float:
    """GPU-seconds the fleet holds from ``start_s`` to ``end_s``: every GPU throughout, or,
    with autoscaling, the replicas held at each moment (the fleet log) × GPUs per replica."""
    fleet = records.fleet
    if fleet is None or not fleet.replica_seconds_held:
        return num_gpus * max(0.0, end_s - start_s)
    gpus_per_replica = fleet.gpu_seconds_held / fleet.replica_seconds_held
    times = np.append(np.asarray(fleet.times_s, dtype=np.float64), records.end_s)
    held = np.asarray(fleet.held, dtype=np.float64)
    overlap = np.clip(times[1:], start_s, end_s) - np.clip(times[:-1], start_s, end_s)
    return float(np.dot(held, overlap)) * gpus_per_replica


def gpu_seconds_in_window(records: RunRecords, window: MeasuredWindow, num_gpus: int) -> float:
    """GPU-seconds the fleet holds during the window (``gpu_seconds_held``)."""
    return gpu_seconds_held(records, window.start_s, window.end_s, num_gpus)


def most_gpus_held(records: RunRecords, num_gpus: int) -> int:
    """Most GPUs held at once: ``num_gpus`` for a fixed fleet; with autoscaling, the most
    replicas the fleet log holds for a positive time × GPUs per replica (a replica started
    and released in the same instant was never paid for)."""
    fleet = records.fleet
    if fleet is None or not fleet.replica_seconds_held:
        return num_gpus
    gpus_per_replica = fleet.gpu_seconds_held / fleet.replica_seconds_held
    times = np.append(np.asarray(fleet.times_s, dtype=np.float64), records.end_s)
    held = np.asarray(fleet.held, dtype=np.float64)[np.diff(times) > 0]
    return round(float(held.max()) * gpus_per_replica) if len(held) else 0


def window_costs(
    records: RunRecords,
    window: MeasuredWindow,
    overall: dict[str, Any],
    gpu_hour_usd: float | None,
    num_gpus: int,
) -> dict[str, Any]:
    """Cost of the fleet over the window and per million output (and all) tokens, with the
    interval the output-token rate gives the former."""
    out: dict[str, Any] = {
        "gpu_cost_usd": None,
        "cost_per_million_output_tokens_usd": None,
        "cost_per_million_total_tokens_usd": None,
        "cost_per_million_output_tokens_ci95_usd": None,
    }
    if gpu_hour_usd is None:
        return out
    gpu_seconds = gpu_seconds_in_window(records, window, num_gpus)
    cost = gpu_hour_usd * gpu_seconds / SECONDS_PER_HOUR
    out_tokens = overall["output_tokens"]
    all_tokens = out_tokens + overall["prompt_tokens"]
    out["gpu_cost_usd"] = cost
    out["cost_per_million_output_tokens_usd"] = cost / out_tokens * 1e6 if out_tokens else math.nan
    out["cost_per_million_total_tokens_usd"] = cost / all_tokens * 1e6 if all_tokens else math.nan
    req = records.requests
    done = window.rate_mask
    tokens_ci = rate_interval(req.finish_s[done], req.output_tokens[done].astype(float), window)
    if tokens_ci and window.duration_s > 0:
        usd_per_s = cost / window.duration_s
        low, high = tokens_ci
        out["cost_per_million_output_tokens_ci95_usd"] = [
            usd_per_s / high * 1e6,
            usd_per_s / low * 1e6 if low > 0 else None,
        ]
    return out
