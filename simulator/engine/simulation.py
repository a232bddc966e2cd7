"""A cluster of replicas fed by a request source: build, run, collect records.

Replicas come in groups (a heterogeneous fleet has several), as a compiled ``Deployment``
describes them. In a disaggregated deployment
the ``prefill`` groups take arrivals and hand each prefilled sequence's KV cache over a
shared link to a ``decode`` group; the first token reaches the user when the KV arrives.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from simulator.engine.autoscaler import Autoscaler, time_weighted_mean
from simulator.engine.deployment import Deployment
from simulator.engine.gaps import TokenGaps
from simulator.engine.intake import InlineArrivals
from simulator.engine.ledger import RecordSink, RequestLedger
from simulator.engine.link import SharedLink
from simulator.engine.replica import Replica
from simulator.engine.steps import Step
from simulator.engine.views import ReplicaStatus
from simulator.metrics.records import FleetRecord, RunRecords, TimeSeries
from simulator.policies.routing import make_router

#: Columns of the time series: ``array`` type code of each (float64 or int64).
SAMPLE_COLUMNS = {
    "time_s": "d",
    "replica": "q",
    "waiting": "q",
    "running": "q",
    "swapped": "q",
    "kv_used_fraction": "d",
    "batch_tokens": "q",
}
SAMPLE_DTYPES = {
    name: np.float64 if code == "d" else np.int64 for name, code in SAMPLE_COLUMNS.items()
}


@dataclass
class StepTrace:
    """Steps of every replica as Chrome/Perfetto trace events (when enabled)."""

    events: list[dict] = field(default_factory=list)

    def add(
        self, replica: int, start_s: float, dur_s: float, steps: int, seqs: int, tokens: int
    ) -> None:
        name = "decode" if tokens == seqs else "prefill/mixed"
        self.events.append(
            {
                "name": name,
                "ph": "X",
                "pid": 0,
                "tid": replica,
                "ts": start_s * 1e6,
                "dur": dur_s * 1e6,
                "args": {"steps": steps, "seqs": seqs, "tokens": tokens},
            }
        )

    def to_json(self) -> dict:
        return {"traceEvents": self.events, "displayTimeUnit": "ms"}


class Simulation:
    """Discrete-event simulation of requests through routed replicas.

    ``source`` follows ``simulator.workload.RequestSource``. ``progress`` is called with
    the number of arrivals so far (for a progress bar); it is called at most every 1024.
    ``records_out`` receives the per-request records as they settle, chunk by chunk
    (``engine.ledger.RecordSink``). Past ``exact_requests`` requests, the run's requests go
    to ``sketch`` (a ``metrics.sketch.RequestSketch``) instead of being kept.
    """

    def __init__(
        self,
        deployment: Deployment,
        source,
        *,
        sample_interval_s: float = 0.5,
        progress: Callable[[int], None] | None = None,
        trace_steps: bool = False,
        itl_per_class: bool = False,
        records_out: RecordSink | None = None,
        sketch: RecordSink | None = None,
        exact_requests: int | None = None,
        gap_ema_span: int | None = None,
    ):
        self.env = simpy.Environment()
        self.source = source
        self.ledger = RequestLedger(records_out, sketch, exact_requests)
        #: Inter-token gaps, per request class too (grown as classes appear, ledger order).
        self.gaps = TokenGaps(itl_per_class, gap_ema_span)
        self.sample_interval_s = sample_interval_s
        self._progress = progress
        self.step_trace = StepTrace() if trace_steps else None
        #: Time-series samples as typed columns (56 bytes a sample).
        self._samples = {name: array(code) for name, code in SAMPLE_COLUMNS.items()}
        self.replicas: list[Replica] = []
        #: Read-only views of the replicas that take arrivals, and of a decode pool's.
        self.entry: list[ReplicaStatus] = []
        self.decoders: list[ReplicaStatus] = []
        self._entry_replicas: list[Replica] = []  # the same replicas as ``entry``
        self._links: dict[int, SharedLink] = {}  # a prefill replica's link to the decode pool
        #: Longest sequence (tokens) and most KV blocks a request may need, per replica.
        self._limits: dict[int, tuple[int, int]] = {}
        entry_weights, decode_weights = self._build_replicas(deployment)
        routing = deployment.routing
        self.router = make_router(routing.policy, entry_weights, routing.seed, **routing.options)
        self.decode_router = (
            make_router("least_outstanding", decode_weights) if self.decoders else None
        )
        self._kv_bytes_per_token = {r.replica_id: r.cfg.kv_bytes_per_token for r in self.replicas}
        self.num_gpus = deployment.num_gpus
        self.arrival_end_s = 0.0
        self._arrived = 0
        scaling = deployment.autoscaling
        #: Completions may schedule arrivals (else the source need not hear of them).
        self._feedback_source = getattr(source, "completion_feedback", True)
        #: One replica takes every arrival (without autoscaling the router has no choice).
        self._single_entry = len(self._entry_replicas) == 1 and scaling is None
        if (
            len(self.entry) == 1
            and scaling is None
            and not getattr(source, "completion_feedback", True)
        ):  # nothing else needs an arrival when it happens: the replica takes them
            entry = self._entry_replicas[0]
            self._inline = InlineArrivals(source, self._route)
            entry.intake, entry.next_route_s = self._inline.take, self._inline.next_route_s
            entry.arrivals = self._inline
            entry.next_arrival_s = source.peek_time
            entry.alone = len(self.replicas) == 1
            self._arrival_proc = None
        else:
            self._inline = None
            self._arrival_proc = self.env.process(self._arrivals())
        self.autoscaler = None
        if scaling is not None:  # over the replicas taking arrivals
            self.autoscaler = Autoscaler(
                self.env, self.entry, scaling.initial_replicas, scaling.policy, _Traffic(self)
            )
        self._feedback: simpy.Event | None = None
        self._sleep_until = math.inf

    def _build_replicas(self, deployment: Deployment) -> tuple[list[float], list[float]]:
        """Every replica of every group; returns the routing weights of the replicas taking
        arrivals and of the decode pool's."""
        entry_weights: list[float] = []
        decode_weights: list[float] = []
        for group in deployment.groups:
            for _ in range(group.count):
                rid = len(self.replicas)
                replica = Replica(self.env, rid, group, self)
                self.replicas.append(replica)
                self._limits[rid] = (group.max_model_len, replica.kv.admissible)
                if group.role == "decode":
                    self.decoders.append(replica.status)
                    decode_weights.append(group.capacity)
                else:
                    self.entry.append(replica.status)
                    self._entry_replicas.append(replica)
                    entry_weights.append(group.capacity)
                if group.role == "prefill":
                    link = group.kv_link
                    self._links[rid] = SharedLink(self.env, link.bytes_per_s, link.latency_s)
        return entry_weights, decode_weights

    # --------------------------------------------------------------- arrivals
    def next_arrival_s(self) -> float:
        """When the next request arrives (s; ``math.inf`` if none is scheduled now)."""
        if self._inline is not None:  # arrivals already due are routed first
            self._inline.take(self.env.now, -math.inf)
        return self.source.peek_time()

    def _arrivals(self):
        env = self.env
        source = self.source
        while True:
            t = source.peek_time()
            if t == math.inf:
                if source.exhausted:
                    return
                self._feedback = env.event()
                yield self._feedback
                self._feedback = None
                continue
            if t > env.now:
                self._sleep_until = t
                try:  # noqa: SIM105 (a yield cannot sit inside contextlib.suppress)
                    yield env.timeout(t - env.now)
                except simpy.Interrupt:  # an earlier arrival was scheduled meanwhile
                    pass
                self._sleep_until = math.inf
                continue
            self._route(source.pop(), env.now)

    def _route(self, request, now_s: float) -> None:
        """Route an arrival (at ``now_s``) to a replica, or reject it."""
        self.arrival_end_s = now_s
        self._arrived += 1
        if self._progress is not None and self._arrived % 1024 == 0:
            self._progress(self._arrived)
        ordinal = self.ledger.add(request)
        if self.gaps.by_class is not None:
            self.gaps.classes_seen(len(self.ledger.class_names))
        if self._single_entry:
            replica = self._entry_replicas[0]
        elif self.autoscaler is None:
            replica = self._entry_replicas[self.router.choose(self.entry, request)]
        else:
            pool = self.autoscaler.serving
            if not pool:  # every replica is still starting: queue on the first to come up
                pool = [r for r in self.entry if self.autoscaler.state[r.replica_id] != "off"]
                pool = pool or self.entry[:1]
            replica = self.replicas[pool[self.router.choose(pool, request)].replica_id]
        max_len, admit_blocks = self._limits[replica.replica_id]
        total = request.prompt_tokens + request.output_tokens
        block = replica.cfg.kv_block_size
        if total > max_len:
            self.ledger.reject(
                ordinal,
                f"prompt + output exceeds max_model_len of {max_len:,} tokens "
                f"(this request: {total:,})",
            )
        elif -(-total // block) > admit_blocks:
            self.ledger.reject(
                ordinal,
                f"needs more KV cache than a replica holds, {admit_blocks * block:,} tokens "
                f"(this request: {total:,})",
            )
        else:
            self.ledger.routed(ordinal, replica.replica_id)
            replica.submit(ordinal, request)
            return
        self.finished(ordinal, now_s)

    def finished(self, ordinal: int, now: float) -> None:
        """Request ``ordinal`` finished (or was rejected) at ``now``: the source hears of it."""
        if self._feedback_source:
            self.source.on_finish(self.ledger.live[ordinal], now)
        self.ledger.settle(ordinal)
        if self._arrival_proc is None:
            return
        if self._feedback is not None and not self._feedback.triggered:
            self._feedback.succeed()
        elif (
            self._sleep_until < math.inf  # the arrival process sleeps until a later arrival
            and now < self._sleep_until
            and self.source.peek_time() < self._sleep_until
            and self._arrival_proc.is_alive
            and self._arrival_proc.target is not None
            and self.env.active_process is not self._arrival_proc
        ):
            # feedback scheduled an arrival before the one the arrival process sleeps for
            self._sleep_until = math.inf
            self._arrival_proc.interrupt()

    # ------------------------------------------------------- disaggregation
    def prefilled(self, ordinal: int, now: float, context_tokens: int) -> None:
        """A prefill replica finished a prompt: ship its KV to a decode replica."""
        source_id = self.ledger.replica[ordinal - self.ledger.base]
        size = context_tokens * self._kv_bytes_per_token[source_id]
        self.env.process(self._ship(ordinal, source_id, size))

    def _ship(self, ordinal: int, source_id: int, size: float):
        yield from self._links[source_id].transfer(size)
        now = self.env.now
        request = self.ledger.live[ordinal]
        self.ledger.first_token(ordinal, now)  # the user sees the token once it arrives
        if request.output_tokens <= 1:
            self.ledger.finish(ordinal, now)
            self.finished(ordinal, now)
            return
        i = self.decode_router.choose(self.decoders, request)
        decoder = self.replicas[self.decoders[i].replica_id]
        self.ledger.routed(ordinal, decoder.replica_id)
        decoder.submit(ordinal, request, prefilled=True, first_s=now)

    # ------------------------------------------------------------- sampling
    def stepped(self, replica: Replica, start_s: float, step: Step) -> None:
        """A replica ran ``step``: trace it, and sample the replica's state at its end at
        most every ``sample_interval_s``."""
        if self.step_trace is not None:
            self.step_trace.add(
                replica.replica_id,
                start_s,
                replica.now - start_s,
                step.count,
                step.seqs,
                step.tokens,
            )
        if start_s >= replica.next_sample_s:
            replica.next_sample_s = start_s + self.sample_interval_s
            total = replica.kv.total
            samples = self._samples
            samples["time_s"].append(start_s)
            samples["replica"].append(replica.replica_id)
            samples["waiting"].append(len(replica.waiting))
            samples["running"].append(replica.batch.size)
            samples["swapped"].append(len(replica.swap))
            samples["kv_used_fraction"].append(replica.kv.used / total if total else 0.0)
            samples["batch_tokens"].append(step.tokens)

    # ------------------------------------------------------------------- run
    def run(self) -> RunRecords:
        """Run until every request has finished or been rejected."""
        self.env.run()
        self.ledger.finish_sink()
        columns = {
            name: np.frombuffer(values, dtype=values.typecode) if len(values) else None
            for name, values in self._samples.items()
        }
        ts = TimeSeries(
            **{
                name: np.empty(0, dtype=SAMPLE_DTYPES[name]) if values is None else values
                for name, values in columns.items()
            }
        )
        fleet = None
        if self.autoscaler is not None:
            scaler = self.autoscaler
            gpus = self.replicas[self.entry[0].replica_id].cfg.gpus
            fleet = FleetRecord(
                times_s=scaler.log.times_s,
                serving=scaler.log.serving,
                held=scaler.log.held,
                mean_held=time_weighted_mean(scaler.log.times_s, scaler.log.held, self.env.now),
                max_held=max(scaler.log.held),
                replica_seconds_held=scaler.replica_seconds(),
                gpu_seconds_held=scaler.replica_seconds() * gpus,
            )
        by_class = {}
        if self.gaps.by_class is not None:
            by_class = dict(zip(self.ledger.class_names, self.gaps.by_class, strict=True))
        requests = self.ledger.to_records()
        if self.gaps.ema is not None:
            requests.worst_gap_ema_s = self.gaps.ema.worst_s(len(requests))
        return RunRecords(
            itl_by_class=by_class,
            requests=requests,
            timeseries=ts,
            replicas=[r.stats() for r in self.replicas],
            itl=self.gaps.all,
            end_s=self.env.now,
            final_waiting=sum(len(r.waiting) for r in self.replicas),
            arrival_end_s=self.arrival_end_s,
            num_gpus=self.num_gpus,
            prefill_tokens_computed=sum(r.prefill_tokens for r in self.replicas),
            swapped_bytes=sum(r.swap.moved_bytes for r in self.replicas),
            kv_transfer_bytes=sum(link.bytes_moved for link in self._links.values()),
            fleet=fleet,
            input_rows=self.source.row_report() if hasattr(self.source, "row_report") else None,
            request_sketch=self.ledger.sketch,
        )


class _Traffic:
    """The traffic as the autoscaler sees it: arrivals so far, and whether more will come."""

    __slots__ = ("_sim",)

    def __init__(self, sim: Simulation):
        self._sim = sim

    @property
    def arrived(self) -> int:
        return len(self._sim.ledger)

    @property
    def exhausted(self) -> bool:
        return self._sim.source.exhausted
