"""Queueing checks on a run's records: Little's law on the simulated system."""

from __future__ import annotations

import math

import numpy as np

from simulator.metrics.records import RunRecords


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
