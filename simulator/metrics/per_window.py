"""Summaries per window of time, for traffic whose rate changes (daily cycles, schedules,
bursts, traces): the whole run's percentiles mix the quiet night with the busy afternoon,
while the busiest window decides the fleet.

The run is cut into windows of ``window_s`` from its start. Each window reports the requests
that *arrived* in it (their latencies, with 95% intervals of the p99s) and the completions
inside it (throughput); the **peak window** is the one with the most arrivals. By default a
daily cycle is cut into hours (its period / 24); other changing traffic into a round window
length giving at least ``MIN_WINDOWS`` windows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.metrics.records import RunRecords
from simulator.metrics.slo import SloConstraint, constraint_report, overall_verdict
from simulator.metrics.steady import statistic_interval

#: Windows a period is cut into (hours of a day).
WINDOWS_PER_PERIOD = 24
#: Fewest windows a run without a period is cut into.
MIN_WINDOWS = 12
#: Window lengths (s) chosen from for a run without a period.
ROUND_WINDOWS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
#: Most windows a run without a period is cut into by default; a longer run is cut into
#: whole days instead (a long trace otherwise printed one row per 4 hours of it).
MAX_DEFAULT_WINDOWS = 100
DAY_S = 86_400.0
#: Latency statistics reported per window.
WINDOW_PERCENTILES = ("p50", "p99")


def default_window_s(period_s: float | None, span_s: float) -> float:
    """``period_s / 24`` (an hour of a day), else the longest round length giving at least
    ``MIN_WINDOWS`` windows over ``span_s``, or, where that would give more than
    ``MAX_DEFAULT_WINDOWS``, the most whole days that still give ``MIN_WINDOWS``."""
    if period_s:
        return period_s / WINDOWS_PER_PERIOD
    fitting = [w for w in ROUND_WINDOWS_S if w * MIN_WINDOWS <= span_s]
    window = float(fitting[-1] if fitting else ROUND_WINDOWS_S[0])
    if span_s / window > MAX_DEFAULT_WINDOWS:
        window = DAY_S * max(1, math.floor(span_s / (MIN_WINDOWS * DAY_S)))
    return window


def _stats(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    out: dict[str, Any] = {}
    for key in WINDOW_PERCENTILES:
        found = statistic_interval(finite, key)
        out[key] = found.estimate
        if key == "p99":
            out["p99_ci95"] = found.as_list()
    return out


def window_summaries(
    records: RunRecords,
    latencies_ms: dict[str, np.ndarray],
    window_s: float,
    constraints: list[SloConstraint],
) -> list[dict[str, Any]]:
    """One summary per window of ``window_s`` from the first arrival (see the module
    docstring); latencies in ms, rates in requests/s."""
    req = records.requests
    if not len(req) or window_s <= 0:
        return []
    start = float(np.min(req.arrival_s))
    completed = ~req.rejected.astype(bool) & np.isfinite(req.finish_s)
    end = float(np.nanmax(np.where(completed, req.finish_s, start)))
    last_arrival = float(np.max(req.arrival_s))
    count = max(1, math.ceil((last_arrival - start) / window_s + 1e-9))
    order = np.argsort(req.arrival_s, kind="stable")
    out = []
    for i in range(count):
        t0, t1 = start + i * window_s, min(start + (i + 1) * window_s, max(end, start))
        arrived = (req.arrival_s >= t0) & (req.arrival_s < start + (i + 1) * window_s)
        measured = arrived & completed
        done = completed & (req.finish_s >= t0) & (req.finish_s < t1)
        ordered = {k: v[order][measured[order]] for k, v in latencies_ms.items()}
        reports = []
        for c in constraints:
            if c.metric == "itl_ms":
                continue
            found = statistic_interval(ordered[c.metric], c.key)
            reports.append(constraint_report(c, found.estimate, [found.low, found.high]))
        out.append(
            {
                "index": i,
                "start_s": t0,
                "end_s": start + (i + 1) * window_s,
                "arrivals": int(np.count_nonzero(arrived)),
                "arrival_rate_rps": float(np.count_nonzero(arrived)) / window_s,
                "requests_measured": int(np.count_nonzero(measured)),
                "throughput_rps": float(np.count_nonzero(done)) / window_s,
                **{k: _stats(v) for k, v in ordered.items()},
                "slo": {
                    "constraints": reports,
                    "verdict": overall_verdict([r["verdict"] for r in reports]),
                },
            }
        )
    return out


def peak_window(windows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The window with the most arrivals (the first of equals)."""
    if not windows:
        return None
    return max(windows, key=lambda w: (w["arrivals"], -w["index"]))
