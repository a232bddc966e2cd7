"""The measured window of a run: which requests' latencies are measured and over which span
rates (throughput, tokens, goodput, cost) are taken.

Two kinds of run:

- **Steady traffic** (an arrival process whose rate does not change: Poisson, gamma,
  constant, closed loop). The run starts empty, so its first requests see a shorter queue;
  the warm-up is cut by MSER-5 on the number of requests in the system that each arrival
  finds (``steady.mser_truncation``), or by ``output.warmup_s`` when that is longer. The
  window then runs to the end of arrivals: after it the system only drains, which is not the
  steady state either. Latencies are measured on the requests that *arrived* in the window;
  rates count the completions *inside* it, so that a system keeping up completes what
  arrives (throughput = arrival rate) and a saturated one shows its capacity. A run so far
  over capacity that no request completes inside that window (every one finishes after
  arrivals stop) would show a throughput of 0 although it served every request: its window
  is instead first arrival + ``output.warmup_s`` to the last completion (``DRAIN_BASIS``),
  one drain of a queue rather than samples of a steady state, so without intervals.
- **Changing traffic** (time-varying, daily cycle, on/off, traces): the traffic itself is
  the question, so the window is the whole run, from the first arrival plus
  ``output.warmup_s`` to the last completion, and per-window summaries (``windows``) show
  how it changes.
- **Offline** runs (every request queued at t = 0) take no warm-up: the window is the
  makespan, first arrival to last completion, so throughput is output tokens over the
  makespan, as ``trtllm-bench throughput``, vLLM ``benchmark_throughput`` and MLPerf Offline
  report it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.metrics.records import RunRecords
from simulator.metrics.saturation import backlog_at
from simulator.metrics.steady import mser_truncation

#: Arrival processes whose traffic does not change over the run (steady-state statistics).
STEADY_PROCESSES = ("poisson", "gamma", "constant", "closed_loop")

METHOD_MSER = "MSER-5 on the requests in the system found by each arrival"
METHOD_FIXED = "output.warmup_s"

#: ``Summary.throughput_basis``: what the window, and so every rate, is over.
STEADY_BASIS = "steady window: end of the warm-up to the end of arrivals"
WINDOW_BASIS = "measured window: first arrival + warmup to last completion"
DRAIN_BASIS = (
    "first arrival + warmup to last completion: no request completed between the end of the "
    "warm-up and the end of arrivals (all finished after arrivals stopped)"
)
OFFLINE_BASIS = (
    "offline: every request queued at t = 0; output tokens over the makespan (first arrival "
    "to last completion), as trtllm-bench throughput, vLLM benchmark_throughput and MLPerf "
    "Offline report"
)


@dataclass(frozen=True)
class MeasuredWindow:
    """Span of the measurement and the requests it covers (masks over all requests)."""

    start_s: float
    end_s: float
    #: Time excluded after the first arrival (s), and how it was chosen.
    warmup_s: float
    method: str
    #: False when MSER found no steady state in the first half of the run (None: not tested).
    steady: bool | None
    #: Requests whose latencies are measured: arrived in the window and completed.
    latency_mask: np.ndarray
    #: Requests that completed inside the window (throughput, tokens, goodput, cost).
    rate_mask: np.ndarray
    #: What the window is over (``STEADY_BASIS``, ``WINDOW_BASIS``, ``DRAIN_BASIS`` or
    #: ``OFFLINE_BASIS``).
    basis: str = WINDOW_BASIS

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def stationary(self) -> bool:
        """Whether slices of the window, and batches of consecutive requests, sample one
        process, so that intervals from them mean something. Not so offline: every request
        waits from t = 0, TTFT is its place in the queue and completions come in one sweep,
        so the run is one deterministic batch (its precision is the model's error band).
        Nor when the window is a drain (``DRAIN_BASIS``): every completion comes after the
        arrivals stopped."""
        return self.basis not in (OFFLINE_BASIS, DRAIN_BASIS)


def arrival_end_s(records: RunRecords) -> float:
    """When the last request arrived (s); the engine records it when arrivals stop."""
    if records.arrival_end_s is not None:
        return float(records.arrival_end_s)
    req = records.requests
    return float(np.max(req.arrival_s)) if len(req) else 0.0


def measured_window(
    records: RunRecords, warmup_s: float, steady_traffic: bool, offline: bool = False
) -> MeasuredWindow:
    """The measured window of ``records`` (see the module docstring)."""
    if offline and warmup_s:
        raise ValueError(f"an offline run takes no warmup (got warmup_s={warmup_s})")
    req = records.requests
    rejected = req.rejected.astype(bool)
    completed = ~rejected & np.isfinite(req.finish_s)
    first_s = float(req.arrival_s.min()) if len(req) else 0.0
    start_s = first_s + warmup_s
    method, steady = METHOD_FIXED, None
    basis = OFFLINE_BASIS if offline else WINDOW_BASIS
    end_s = float(req.finish_s[completed].max()) if completed.any() else start_s
    if steady_traffic and not offline and len(req):
        order = np.argsort(req.arrival_s[~rejected], kind="stable")
        arrivals = req.arrival_s[~rejected][order]
        # requests in the system just before each arrival (the arrival itself excluded)
        found = backlog_at(records, np.nextafter(arrivals, -np.inf))
        cut = mser_truncation(found)
        steady = cut.steady
        if cut.index < len(arrivals) and arrivals[cut.index] > start_s:
            start_s, method = float(arrivals[cut.index]), METHOD_MSER
        stop_s = arrival_end_s(records)
        if stop_s > start_s:
            end_s, basis = stop_s, STEADY_BASIS
    window = _window(records, completed, first_s, start_s, end_s, method, steady, basis)
    if basis == STEADY_BASIS and not window.rate_mask.any():
        return _drain_window(records, completed, first_s, warmup_s, window)
    return window


def _drain_window(
    records: RunRecords,
    completed: np.ndarray,
    first_s: float,
    warmup_s: float,
    steady_window: MeasuredWindow,
) -> MeasuredWindow:
    """A steady window that no completion falls in: if requests completed after it (after
    arrivals stopped), first arrival + ``warmup_s`` to the last completion instead, as a
    rate of 0 would say the deployment served nothing; else ``steady_window`` as it is."""
    finish_s = records.requests.finish_s[completed]
    if not len(finish_s) or float(finish_s.max()) <= steady_window.end_s:
        return steady_window
    last_s = float(finish_s.max())
    start_s = first_s + warmup_s
    steady = steady_window.steady
    return _window(records, completed, first_s, start_s, last_s, METHOD_FIXED, steady, DRAIN_BASIS)


def _window(
    records: RunRecords,
    completed: np.ndarray,
    first_s: float,
    start_s: float,
    end_s: float,
    method: str,
    steady: bool | None,
    basis: str,
) -> MeasuredWindow:
    """The window from ``start_s`` to ``end_s`` (s) with its request masks."""
    req = records.requests
    arrived_in = (req.arrival_s >= start_s) & (req.arrival_s <= max(end_s, start_s))
    finished_in = (req.finish_s >= start_s) & (req.finish_s <= end_s)
    return MeasuredWindow(
        start_s=start_s,
        end_s=max(end_s, start_s),
        warmup_s=start_s - first_s,
        method=method,
        steady=steady,
        latency_mask=completed & arrived_in,
        rate_mask=completed & finished_in,
        basis=basis,
    )
