"""Run records of a textbook queue, for checking metrics against known answers without SimPy.

``multi_server_queue_run`` builds the records a run would produce if requests arrived as a
Poisson process at ``rate_per_s`` and were served first-come first-served by ``servers``
identical servers (think of the slots of a batch), each request occupying one for
``service_s``. Its capacity is ``servers / service_s`` requests per second, so a load above or
below it is known exactly; saturation detection, Little's law and the summary are tested on it.
``hand_worked_run`` is a handful of requests whose every metric can be worked out by hand.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from simulator.metrics.histogram import GapHistogram
from simulator.metrics.records import ReplicaStats, RequestRecords, RunRecords, TimeSeries


def multi_server_queue_run(
    *,
    rate_per_s: float,
    servers: int,
    service_s: float,
    arrival_window_s: float,
    output_tokens: int = 10,
    prompt_tokens: int = 100,
    sample_interval_s: float = 0.5,
    seed: int = 0,
    gpu_count: int = 1,
) -> RunRecords:
    """Records of an M/D/c queue fed for ``arrival_window_s`` and then drained.

    Each request's first token comes ``service_s / output_tokens`` after it starts service and
    its tokens are evenly spaced until ``service_s``; the time series samples waiting and
    running counts every ``sample_interval_s``.
    """
    rng = np.random.default_rng(seed)
    n = max(1, int(rng.poisson(rate_per_s * arrival_window_s)))
    arrival_s = np.sort(rng.uniform(0.0, arrival_window_s, n))
    start_s = _first_come_first_served_starts(arrival_s, servers, service_s)
    gap_s = service_s / output_tokens
    first_token_s = start_s + gap_s
    finish_s = start_s + service_s
    end_s = float(finish_s.max())

    itl = GapHistogram()
    itl.add_value(gap_s, n * (output_tokens - 1))

    timeseries = _sampled_occupancy(arrival_s, start_s, finish_s, servers, sample_interval_s)
    requests = RequestRecords(
        request_id=np.arange(n, dtype=np.int64),
        arrival_s=arrival_s,
        first_token_s=first_token_s,
        finish_s=finish_s,
        prompt_tokens=np.full(n, prompt_tokens, dtype=np.int64),
        output_tokens=np.full(n, output_tokens, dtype=np.int64),
        replica=np.zeros(n, dtype=np.int64),
        class_name=np.full(n, "default", dtype=object),
        rejected=np.zeros(n, dtype=bool),
        reject_reason=np.full(n, "", dtype=object),
    )
    busy_s, batch_seq_seconds = _busy_accounting(start_s, finish_s)
    stats = ReplicaStats(
        replica=0,
        gpus=gpu_count,
        busy_s=busy_s,
        steps=n * output_tokens,
        batch_seq_seconds=batch_seq_seconds,
        peak_kv_used_fraction=float(np.max(timeseries.running)) / servers,
        kv_capacity_tokens=servers * (prompt_tokens + output_tokens),
    )
    return RunRecords(
        requests=requests,
        timeseries=timeseries,
        replicas=[stats],
        itl=itl,
        end_s=end_s,
        final_waiting=0,
        arrival_end_s=float(arrival_s.max()),
        num_gpus=gpu_count,
    )


def _first_come_first_served_starts(
    arrival_s: np.ndarray, servers: int, service_s: float
) -> np.ndarray:
    """When each request (sorted by arrival, s) starts service on the first of ``servers``
    identical servers to come free, each busy ``service_s`` per request."""
    n = len(arrival_s)
    if servers == 1:
        # one server: finish_i = max(arrival_i, finish_{i-1}) + service, i.e.
        # (i + 1) × service + max over k <= i of (arrival_k - k × service)
        steps = np.arange(n) * service_s
        return np.maximum.accumulate(arrival_s - steps) + steps
    free_at = [0.0] * servers
    start_s = np.empty(n)
    for i, t in enumerate(arrival_s):
        earliest = heapq.heappop(free_at)
        start_s[i] = max(t, earliest)
        heapq.heappush(free_at, start_s[i] + service_s)
    return start_s


def _sampled_occupancy(
    arrival_s: np.ndarray,
    start_s: np.ndarray,
    finish_s: np.ndarray,
    servers: int,
    sample_interval_s: float,
) -> TimeSeries:
    """Waiting and running counts every ``sample_interval_s`` up to the last finish; a busy
    server stands for one sequence of the batch, so KV use is the share of servers busy."""
    end_s = float(finish_s.max())
    times = np.arange(0.0, end_s + sample_interval_s, sample_interval_s)
    arrived = np.searchsorted(arrival_s, times, side="right")
    started = np.searchsorted(np.sort(start_s), times, side="right")
    finished = np.searchsorted(np.sort(finish_s), times, side="right")
    waiting = arrived - started
    running = started - finished
    return TimeSeries(
        time_s=times,
        replica=np.zeros(len(times), dtype=np.int64),
        waiting=waiting,
        running=running,
        kv_used_fraction=running / servers,
        batch_tokens=running,
    )


def _busy_accounting(start_s: np.ndarray, finish_s: np.ndarray) -> tuple[float, float]:
    """Time with at least one request in service, and the integral of requests in service."""
    events = np.concatenate([start_s, finish_s])
    delta = np.concatenate([np.ones(len(start_s)), -np.ones(len(finish_s))])
    order = np.argsort(events, kind="stable")
    events, delta = events[order], delta[order]
    in_service = np.cumsum(delta)[:-1]
    spans = np.diff(events)
    busy_s = float(spans[in_service > 0].sum())
    return busy_s, float(np.dot(in_service, spans))


def hand_worked_run(*, unfinished: bool = False) -> RunRecords:
    """Five requests whose latencies are easy to work out by hand (see the comments): four
    complete, one is rejected; with ``unfinished`` a sixth is still running at the end."""
    rows = [
        # class,  arrival, first,  finish, output  -> TTFT, TPOT, E2E (ms)
        ("chat", 0.0, 0.1, 1.1, 11),  # 100, 100, 1100
        ("chat", 1.0, 1.3, 2.3, 21),  # 300,  50, 1300
        ("rag", 2.0, 2.2, 2.2, 1),  # 200,   -,  200
        ("rag", 3.0, 3.5, 5.0, 16),  # 500, 100, 2000
        ("chat", 4.0, math.nan, math.nan, 50),  # rejected
    ]
    if unfinished:
        rows.append(("chat", 4.5, 4.9, math.nan, 50))
    n = len(rows)
    rejected = np.array([i == 4 for i in range(n)])
    reasons = np.array(
        [
            "prompt + output exceeds max_model_len of 8,192 tokens (this request: 9,000)"
            if r
            else ""
            for r in rejected
        ],
        dtype=object,
    )
    itl = GapHistogram()
    itl.add(np.array([0.05, 0.1]), np.array([20, 25]))
    requests = RequestRecords(
        request_id=np.arange(n),
        arrival_s=np.array([r[1] for r in rows]),
        first_token_s=np.array([r[2] for r in rows]),
        finish_s=np.array([r[3] for r in rows]),
        prompt_tokens=np.full(n, 100),
        output_tokens=np.array([r[4] for r in rows]),
        replica=np.where(rejected, -1, 0),
        class_name=np.array([r[0] for r in rows], dtype=object),
        rejected=rejected,
        reject_reason=reasons,
        preemptions=np.array([0, 2, 0, 1, 0] + [0] * (n - 5)),
    )
    timeseries = TimeSeries(
        time_s=np.array([0.0, 2.5]),
        replica=np.array([0, 0]),
        waiting=np.array([0, 0]),
        running=np.array([1, 1]),
        kv_used_fraction=np.array([0.1, 0.3]),
        batch_tokens=np.array([100, 1]),
    )
    stats = ReplicaStats(
        replica=0,
        gpus=2,
        busy_s=4.0,
        steps=100,
        batch_seq_seconds=6.0,
        peak_kv_used_fraction=0.4,
        kv_capacity_tokens=10_000,
    )
    return RunRecords(
        requests,
        timeseries,
        [stats],
        itl,
        end_s=5.0,
        arrival_end_s=4.5 if unfinished else 4.0,
        num_gpus=2,
    )
