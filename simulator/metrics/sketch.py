"""Summaries of runs too long to keep every request: streaming sketches with a stated error.

A run keeps every request's outcome (tens of bytes each) and summarises them exactly, up to
``EXACT_REQUESTS`` requests. Beyond, the engine folds each settled chunk of requests into a
``RequestSketch`` and forgets it, so memory stays bounded however long the run (a day of a
replayed trace). What the summary then reports, and how precisely:

- counts, token sums, throughput, goodput, SLO attainment, cost, rejections, preemptions,
  cached prompt tokens, means and maxima of TTFT, TPOT and E2E: exact (every request is
  counted as it settles, against the scenario's SLO);
- percentiles of TTFT, TPOT and E2E, and the SLO checks on them: from log-binned histograms,
  within ``RELATIVE_ERROR`` (0.1%) of the exact percentile of the same requests;
- saturation: the backlog curve counted in time buckets (at most ``MAX_BUCKETS``), within one
  bucket's arrivals and completions of the exact curve;
- the measured window starts ``output.warmup_s`` after the first arrival (no warm-up is
  estimated from the data, and no confidence interval is computed: both need every request).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from typing import Any

import numpy as np

from simulator.metrics.histogram import RELATIVE_RESOLUTION, GapHistogram
from simulator.metrics.records import RequestRecords, rejection_category

#: Requests a run keeps exactly before it summarises through sketches.
EXACT_REQUESTS = 2_000_000
#: Relative error of a sketched percentile (the histogram bins' width).
RELATIVE_ERROR = RELATIVE_RESOLUTION
#: Time buckets of the arrival and completion counts; when a run outlasts them, buckets merge
#: in pairs (each twice as wide).
MAX_BUCKETS = 1 << 16
#: Width of a time bucket at first (s).
FIRST_BUCKET_S = 1.0

LATENCIES = ("ttft_ms", "tpot_ms", "e2e_ms")


class _Group:
    """What the summary needs of a set of requests (the run, or one class)."""

    def __init__(self) -> None:
        self.total = self.completed = self.rejected = self.measured = self.met = 0
        self.output_tokens = self.prompt_tokens = self.cached_tokens = 0.0
        self.latency = {name: GapHistogram() for name in LATENCIES}  # seconds

    def add(self, sel, latencies, meets, rejected, completed, measured, rows) -> None:
        self.total += int(np.count_nonzero(sel))
        self.rejected += int(np.count_nonzero(rejected & sel))
        self.completed += int(np.count_nonzero(completed & sel))
        chosen = measured & sel
        self.measured += int(np.count_nonzero(chosen))
        self.met += int(np.count_nonzero(meets & chosen))
        self.output_tokens += float(rows.output_tokens[chosen].sum())
        self.prompt_tokens += float(rows.prompt_tokens[chosen].sum())
        if rows.cached_prompt_tokens is not None:
            self.cached_tokens += float(rows.cached_prompt_tokens[chosen].sum())
        for name, values in latencies.items():
            kept = values[chosen]
            kept = kept[np.isfinite(kept)]
            if len(kept):
                self.latency[name].add(kept / 1e3)

    def stats_ms(self, name: str) -> dict[str, float]:
        from simulator.metrics.latency import gap_stats_ms

        return gap_stats_ms(self.latency[name])


class _Buckets:
    """Counts of events in time buckets that widen as the run goes on (bounded memory)."""

    def __init__(self) -> None:
        self.width_s = FIRST_BUCKET_S
        self.counts = array("q")

    def add(self, times_s: np.ndarray) -> None:
        if not len(times_s):
            return
        last = int(float(times_s.max()) // self.width_s)
        while last >= MAX_BUCKETS:
            self._widen()
            last = int(float(times_s.max()) // self.width_s)
        if last >= len(self.counts):
            self.counts.extend([0] * (last + 1 - len(self.counts)))
        index = (times_s // self.width_s).astype(np.int64)
        for i, n in zip(*np.unique(index, return_counts=True), strict=True):
            self.counts[int(i)] += int(n)

    def _widen(self) -> None:
        merged = np.frombuffer(self.counts, dtype=np.int64)
        if len(merged) % 2:
            merged = np.append(merged, 0)
        self.counts = array("q", merged.reshape(-1, 2).sum(axis=1).tolist())
        self.width_s *= 2

    def at_or_before(self, times_s: np.ndarray) -> np.ndarray:
        """Events counted up to each of ``times_s`` (whole buckets: those ending by then)."""
        cumulative = np.concatenate(([0], np.cumsum(np.frombuffer(self.counts, np.int64))))
        index = np.clip((times_s // self.width_s).astype(np.int64), 0, len(cumulative) - 1)
        return cumulative[index]


class RequestSketch:
    """Folds settled requests into counts and sketches (a record sink that keeps no row).

    ``slo``, ``class_slos``, ``warmup_s`` and ``offline`` are the scenario's, as
    ``metrics.summarize`` takes them: a request is judged against its SLO as it settles."""

    keep_rows = False

    def __init__(
        self,
        slo: dict | None,
        class_slos: dict[str, dict] | None = None,
        warmup_s: float = 0.0,
        offline: bool = False,
    ):
        from simulator.metrics.slo import parse_slo

        self.slo = slo
        self.constraints = parse_slo(slo)
        self.class_constraints = {
            name: parse_slo(c, f"workload.classes.{name}.slo")
            for name, c in (class_slos or {}).items()
        }
        self.warmup_s = 0.0 if offline else warmup_s
        self.offline = offline
        self.first_arrival_s: float | None = None
        self.last_finish_s = -math.inf
        self.overall = _Group()
        self.classes: dict[str, _Group] = {}
        self.rejections: Counter[str] = Counter()
        self.preemptions = 0
        self.arrivals = _Buckets()  # accepted arrivals
        self.completions = _Buckets()

    def write(self, rows: RequestRecords) -> None:
        """Fold the next settled requests (in arrival order) in."""
        from simulator.metrics.slo import requests_meeting

        n = len(rows)
        if n == 0:
            return
        if self.first_arrival_s is None:
            self.first_arrival_s = float(rows.arrival_s[0])
        rejected = np.asarray(rows.rejected, dtype=bool)
        completed = ~rejected & np.isfinite(rows.finish_s)
        measured = completed & (rows.finish_s >= self.first_arrival_s + self.warmup_s)
        output = rows.output_tokens.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            latencies = {
                "ttft_ms": (rows.first_token_s - rows.arrival_s) * 1e3,
                "tpot_ms": np.where(
                    output > 1, (rows.finish_s - rows.first_token_s) * 1e3 / (output - 1), np.nan
                ),
                "e2e_ms": (rows.finish_s - rows.arrival_s) * 1e3,
            }
        names = np.asarray(rows.class_name, dtype=object)
        meets = requests_meeting(self.constraints, latencies, n)
        for name, own in self.class_constraints.items():
            meets = np.where(names == name, requests_meeting(own, latencies, n), meets)
        everyone = np.ones(n, dtype=bool)
        self.overall.add(everyone, latencies, meets, rejected, completed, measured, rows)
        for name in set(names.tolist()):
            group = self.classes.setdefault(str(name), _Group())
            group.add(names == name, latencies, meets, rejected, completed, measured, rows)
        if completed.any():
            self.last_finish_s = max(self.last_finish_s, float(rows.finish_s[completed].max()))
        reasons = np.asarray(rows.reject_reason, dtype=object)[rejected]
        self.rejections.update(rejection_category(str(r)) for r in reasons)
        if rows.preemptions is not None:
            self.preemptions += int(rows.preemptions.sum())
        self.arrivals.add(rows.arrival_s[~rejected])
        self.completions.add(rows.finish_s[completed])

    def error_bound(self) -> dict[str, Any]:
        """What the summary states about its precision."""
        return {
            "requests_kept_exactly": False,
            "percentile_relative_error": RELATIVE_ERROR,
            "backlog_bucket_s": self.arrivals.width_s,
            "warmup": "output.warmup_s (no warm-up estimated from the data)",
        }
