"""What a simulation run records, as plain arrays; the summary is computed from these.

The engine fills these containers; ``simulator.metrics.summary`` turns them into
percentiles, goodput and cost. Times are seconds from the start of the simulation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.metrics.histogram import GapHistogram


@dataclass
class RequestRecords:
    """One row per request that arrived (completed, unfinished or rejected).

    ``first_token_s`` / ``finish_s`` are NaN when the request never got that far
    (rejected, or still in the system when the run ended).
    """

    request_id: np.ndarray  # int64
    arrival_s: np.ndarray  # float64
    first_token_s: np.ndarray  # float64, NaN if none
    finish_s: np.ndarray  # float64, NaN if unfinished
    prompt_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64 (requested output length)
    replica: np.ndarray  # int64, -1 if never routed
    class_name: np.ndarray  # object (str)
    rejected: np.ndarray  # bool
    reject_reason: np.ndarray  # object (str, "" if not rejected)
    #: Prompt tokens served from the prefix cache (0 without prefix caching).
    cached_prompt_tokens: np.ndarray | None = None
    #: Times the request was preempted.
    preemptions: np.ndarray | None = None
    #: Largest moving average of the request's inter-token gaps (s; ``engine.gap_ema``),
    #: kept when an SLO constrains it; NaN for a request with a single token.
    worst_gap_ema_s: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.request_id)


@dataclass
class TimeSeries:
    """Samples of replica state over time (one row per sample per replica)."""

    time_s: np.ndarray
    replica: np.ndarray
    waiting: np.ndarray  # requests queued, not yet admitted
    running: np.ndarray  # sequences holding KV blocks and being stepped
    kv_used_fraction: np.ndarray  # used / total KV blocks, 0..1
    batch_tokens: np.ndarray  # tokens in the last step
    #: Sequences swapped out to host memory.
    swapped: np.ndarray | None = None


@dataclass
class ReplicaStats:
    """Time-integrated accounting of one replica over the whole run."""

    replica: int
    gpus: int
    busy_s: float  # time spent executing steps
    steps: int
    #: Sum over steps of (sequences in the step × step duration), for the time-weighted batch size.
    batch_seq_seconds: float
    peak_kv_used_fraction: float
    kv_capacity_tokens: int


@dataclass
class FleetRecord:
    """Replicas of an autoscaled fleet over time: at every change, those serving and those
    held (started, serving or draining, so paid for)."""

    times_s: list[float]
    serving: list[int]
    held: list[int]
    #: Time-weighted mean and the most of ``held`` over the run.
    mean_held: float
    max_held: int
    replica_seconds_held: float
    gpu_seconds_held: float


@dataclass
class RunRecords:
    """Everything a run produced, before summarising."""

    requests: RequestRecords
    timeseries: TimeSeries
    replicas: list[ReplicaStats]
    #: Every inter-token gap of every request (s), as a fine log-binned histogram.
    itl: GapHistogram
    #: Simulated time at which the run ended (s).
    end_s: float
    #: Waiting-queue length at the end, and its trend, for saturation detection.
    final_waiting: int = 0
    #: Optional inter-token gaps per request class (class name -> histogram), for per-class ITL.
    itl_by_class: dict[str, GapHistogram] = field(default_factory=dict)
    #: When the last request arrived (s); None: the latest ``requests.arrival_s``.
    arrival_end_s: float | None = None
    #: GPUs of the deployment (with autoscaling: of every replica it may run); None: the
    #: replicas' GPUs.
    num_gpus: int | None = None
    #: Prompt tokens computed by prefills (prefix-cache hits left out, recomputes counted).
    prefill_tokens_computed: int = 0
    #: KV cache copied to host memory and back by swap preemption (bytes).
    swapped_bytes: float = 0.0
    #: KV cache shipped from prefill to decode replicas (bytes).
    kv_transfer_bytes: float = 0.0
    #: Autoscaling only: the fleet over time.
    fleet: FleetRecord | None = None
    #: Rows of a replayed trace file read and skipped, with the first reasons
    #: (``TraceSource.row_report``); None when the workload is not a trace.
    input_rows: dict | None = None
    #: A run past ``metrics.sketch.EXACT_REQUESTS`` requests: its requests folded into a
    #: ``metrics.sketch.RequestSketch`` (``requests`` then holds none); None otherwise.
    request_sketch: Any = None


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: The part of a reason that is the request's own: its sizes.
_THIS_REQUEST = re.compile(r"\s*\(this request: [^)]*\)")


def rejection_category(reason: str) -> str:
    """A rejection reason without what is the request's own (its ``(this request: ...)``
    part; in a reason without one, every number becomes ``N``), so that requests rejected
    for the same cause count together and the limit they hit stays in the count
    (``requests.csv`` keeps every reason in full)."""
    if _THIS_REQUEST.search(reason):
        return _THIS_REQUEST.sub("", reason)
    return _NUMBER.sub("N", reason) or "unspecified"
