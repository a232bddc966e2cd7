"""Is the simulated system saturated, i.e. are its latencies only finite because the run ended?

A run drains after its last arrival, so every request eventually completes and the latency
percentiles are finite even when the offered load exceeds what the deployment can serve. The
telltale sign is in the arrival period: the backlog (requests arrived and not yet finished)
keeps growing instead of fluctuating around a steady level.

Rule (``detect_saturation``): the run is *saturated* when

1. requests were still unfinished when the run ended, or
2. over the second half of the arrival period (first arrival to ``arrival_end_s``),
   a. the backlog grows: its growth over the half (the Theil–Sen slope, a median of pairwise
      slopes robust to bursts, times the half's length) exceeds ``GROWTH_NOISE_SIGMAS`` ×
      √(arrivals in the half), the Poisson noise of the arrival count, so that a run's chance
      drift is not read as a trend. The test has no tolerance on the growth rate itself: a
      load a few percent above capacity grows slowly, and a longer run only makes its
      growth clearer, so the verdict does not turn from saturated to steady as runs get
      longer (a fixed fraction of the arrival rate did: a slow growth fell under it in a
      long run after the warm-up had pushed a short one over it); and
   b. the waiting queue at the end of the arrival period is large: at least
      ``QUEUE_FRACTION_OF_BATCH`` of the typical batch (time-weighted running sequences,
      summed over replicas) and at least ``MIN_SATURATED_QUEUE_REQUESTS``; or the requests in
      flight then exceed the typical batch by as much (a batch still growing while nothing
      waits, as when the KV cache has room).

Condition 2b keeps a lightly loaded run, whose queue stays near empty, from being flagged by
a chance upward drift of its backlog; 2a keeps a stable but long queue (a deep, steady batch
of waiting requests) from being flagged. The backlog comes from the request records (exact);
the waiting queue from the time series (the last sample of each replica at or before
``arrival_end_s``), or the backlog minus the typical batch when there is no time series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.metrics.records import RunRecords

#: Backlog growth over the tested half must exceed this many standard deviations of the
#: number of arrivals in it (√arrivals for Poisson arrivals).
GROWTH_NOISE_SIGMAS = 3.0
#: Waiting requests at the end of the arrival period, relative to the typical batch, to flag:
#: half a batch waiting means a request waits at least about half a batch-time to start.
QUEUE_FRACTION_OF_BATCH = 0.5
#: Fewest waiting requests that can indicate saturation (a handful waiting is normal).
MIN_SATURATED_QUEUE_REQUESTS = 8
#: Fewest arrivals in the tested half of the arrival period for the trend test to be meaningful.
MIN_ARRIVALS_FOR_TREND = 10
#: Points of the backlog curve the trend is fitted on.
TREND_GRID_POINTS = 101


@dataclass
class SaturationVerdict:
    """Whether the run is saturated, why, and the numbers behind the decision."""

    saturated: bool
    reason: str
    details: dict = field(default_factory=dict)


def backlog_at(records: RunRecords, times_s: np.ndarray) -> np.ndarray:
    """Requests arrived (and not rejected) but not finished at each of ``times_s``."""
    req = records.requests
    arrivals = np.sort(req.arrival_s[~req.rejected.astype(bool)])
    finishes = np.sort(req.finish_s[np.isfinite(req.finish_s)])
    arrived = np.searchsorted(arrivals, times_s, side="right")
    finished = np.searchsorted(finishes, times_s, side="right")
    return (arrived - finished).astype(np.float64)


def waiting_at(records: RunRecords, time_s: float) -> float:
    """Waiting requests summed over replicas at ``time_s`` (last sample of each); NaN if none."""
    ts = records.timeseries
    if ts is None or len(ts.time_s) == 0:
        return math.nan
    total = 0.0
    found = False
    for replica in np.unique(ts.replica):
        mask = ts.replica == replica
        times = ts.time_s[mask]
        order = np.argsort(times, kind="stable")
        idx = np.searchsorted(times[order], time_s, side="right") - 1
        if idx >= 0:
            total += float(ts.waiting[mask][order][idx])
            found = True
    return total if found else math.nan


def typical_batch(records: RunRecords) -> float:
    """Time-weighted running sequences while busy, summed over replicas (0 if unknown)."""
    return float(sum(r.batch_seq_seconds / r.busy_s for r in records.replicas if r.busy_s > 0))


def theil_sen_slope(y: np.ndarray, x: np.ndarray) -> float:
    """Theil–Sen slope of ``y`` over ``x``: the median of the slopes between every pair of
    points with distinct ``x`` (``scipy.stats.theilslopes(y, x).slope``, computed the same way
    without loading scipy.stats)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    dx = x[:, np.newaxis] - x
    dy = y[:, np.newaxis] - y
    rising = dx > 0
    return float(np.median(dy[rising] / dx[rising]))


def detect_saturation(records: RunRecords) -> SaturationVerdict:
    """Apply the module's rule to a run's records."""
    req = records.requests
    rejected = req.rejected.astype(bool)
    unfinished = int(np.count_nonzero(~rejected & ~np.isfinite(req.finish_s)))
    if unfinished:
        return SaturationVerdict(
            True,
            f"{unfinished} request(s) still unfinished when the run ended at {records.end_s:.1f} s",
            {"unfinished": unfinished},
        )
    if len(req) == 0:
        return SaturationVerdict(False, "", {})
    first_arrival_s = float(np.min(req.arrival_s))
    arrival_end_s = records.arrival_end_s
    if arrival_end_s is None:
        arrival_end_s = float(np.max(req.arrival_s))
    half_start_s = first_arrival_s + 0.5 * (arrival_end_s - first_arrival_s)
    accepted_arrivals = req.arrival_s[~rejected]
    in_half = int(
        np.count_nonzero((accepted_arrivals > half_start_s) & (accepted_arrivals <= arrival_end_s))
    )
    details: dict = {"arrivals_in_tested_half": in_half}
    if in_half < MIN_ARRIVALS_FOR_TREND or arrival_end_s <= half_start_s:
        return SaturationVerdict(False, "", details)

    grid_s = np.linspace(half_start_s, arrival_end_s, TREND_GRID_POINTS)
    done = records.requests.finish_s
    completed_in_half = int(np.count_nonzero((done > half_start_s) & (done <= arrival_end_s)))
    completing_rps = completed_in_half / (arrival_end_s - half_start_s)
    backlog = backlog_at(records, grid_s)
    return judge_backlog(records, grid_s, backlog, in_half, completing_rps, details)


def judge_backlog(
    records: RunRecords,
    grid_s: np.ndarray,
    backlog: np.ndarray,
    in_half: int,
    completing_rps: float,
    details: dict,
) -> SaturationVerdict:
    """The rule's verdict on the backlog (requests) over ``grid_s`` (s), the tested half of
    the arrivals; ``in_half`` arrivals and ``completing_rps`` completions per second in it.
    ``details`` is filled in and returned with the verdict."""
    half_start_s, arrival_end_s = float(grid_s[0]), float(grid_s[-1])
    span_s = arrival_end_s - half_start_s
    slope_rps = theil_sen_slope(backlog, grid_s)
    arrival_rate_rps = in_half / span_s
    batch = typical_batch(records)
    waiting = waiting_at(records, arrival_end_s)
    if math.isnan(waiting):
        waiting = max(0.0, float(backlog[-1]) - batch)
    queue_threshold = max(MIN_SATURATED_QUEUE_REQUESTS, QUEUE_FRACTION_OF_BATCH * batch)
    # A batch that keeps growing (room in the KV cache, so nothing waits) is a backlog too:
    # in flight at the end well above the typical batch.
    excess = float(backlog[-1]) - batch
    details.update(
        backlog_growth_rps=slope_rps,
        arrival_rate_rps=arrival_rate_rps,
        waiting_at_arrival_end=waiting,
        typical_batch=batch,
        arrival_end_s=arrival_end_s,
        completion_rate_rps=completing_rps,
        backlog_above_typical_batch=excess,
    )
    growing = slope_rps * span_s >= GROWTH_NOISE_SIGMAS * math.sqrt(in_half)
    if growing and (waiting >= queue_threshold or excess >= queue_threshold):
        where = (
            f"{waiting:.0f} waiting"
            if waiting >= queue_threshold
            else f"{backlog[-1]:.0f} in flight against a typical batch of {batch:.0f}"
        )
        reason = (
            f"queue still growing at the end of arrivals: {arrival_rate_rps:.3g} req/s arrive, "
            f"{completing_rps:.3g} req/s complete, backlog +{slope_rps:.3g} req/s, "
            f"{where} at t={arrival_end_s:.1f} s; latencies are not steady-state"
        )
        return SaturationVerdict(True, reason, details)
    return SaturationVerdict(False, "", details)
