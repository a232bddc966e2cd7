"""A cluster of replicas fed by a request source: build, run, collect records."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.engine.ledger import RequestLedger
from simulator.engine.replica import Replica, ReplicaConfig
from simulator.engine.router import make_router
from simulator.metrics.histogram import GapHistogram
from simulator.metrics.records import RunRecords, TimeSeries


@dataclass(frozen=True)
class ReplicaGroup:
    """``count`` identical replicas: cost model, scheduler config and policy factory."""

    count: int
    cost_model: object
    config: ReplicaConfig
    make_policy: Callable[[], object]
    #: Longest sequence (prompt + output tokens) the model accepts.
    max_model_len: int


class Simulation:
    """Discrete-event simulation of requests through routed replicas.

    ``source`` follows ``simulator.workload.RequestSource``. ``progress`` is called with
    the number of arrivals so far (for a progress bar); it is called at most every 1024.
    """

    def __init__(
        self,
        groups: list[ReplicaGroup],
        source,
        *,
        routing: str = "round_robin",
        sample_interval_s: float = 0.5,
        progress: Callable[[int], None] | None = None,
    ):
        self.env = simpy.Environment()
        self.source = source
        self.ledger = RequestLedger()
        self.itl = GapHistogram()
        self.router = make_router(routing)
        self.sample_interval_s = sample_interval_s
        self._progress = progress
        self._samples: list[tuple] = []
        self._next_sample: dict[int, float] = {}
        self.replicas: list[Replica] = []
        self._limits: list[tuple[int, int]] = []  # (max tokens per sequence, admit blocks)
        for group in groups:
            for _ in range(group.count):
                rid = len(self.replicas)
                replica = Replica(
                    self.env,
                    rid,
                    group.cost_model,
                    group.make_policy(),
                    group.config,
                    self.ledger,
                    self.itl,
                    self._peek_arrival,
                    self._finished,
                    self._sampler,
                )
                self.replicas.append(replica)
                admit_blocks = group.config.total_kv_blocks - replica.watermark_blocks
                self._limits.append((group.max_model_len, admit_blocks))
                self._next_sample[rid] = 0.0
        self.num_gpus = sum(g.count * g.config.gpus for g in groups)
        self.arrival_end_s = 0.0
        self._arrival_proc = self.env.process(self._arrivals())
        self._feedback: simpy.Event | None = None
        self._sleep_until = math.inf

    # --------------------------------------------------------------- arrivals
    def _peek_arrival(self) -> float:
        return self.source.peek_time()

    def _arrivals(self):
        env = self.env
        source = self.source
        count = 0
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
            request = source.pop()
            self.arrival_end_s = env.now
            self._route(request)
            count += 1
            if self._progress is not None and count % 1024 == 0:
                self._progress(count)

    def _route(self, request) -> None:
        ordinal = self.ledger.add(request)
        i = self.router.choose(self.replicas, request)
        max_len, admit_blocks = self._limits[i]
        total = request.prompt_tokens + request.output_tokens
        block = self.replicas[i].cfg.kv_block_size
        if total > max_len:
            self.ledger.reject(
                ordinal,
                f"prompt + output = {total} tokens exceeds the model's maximum length {max_len}",
            )
        elif -(-total // block) > admit_blocks:
            self.ledger.reject(
                ordinal,
                f"needs {total} tokens of KV cache, a replica holds at most {admit_blocks * block}",
            )
        else:
            self.ledger.replica[ordinal] = i
            self.replicas[i].submit(ordinal, request)
            return
        self._finished(ordinal, self.env.now)

    def _finished(self, ordinal: int, now: float) -> None:
        self.source.on_finish(self.ledger.requests[ordinal], now)
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

    # ------------------------------------------------------------- sampling
    def _sampler(self, replica: Replica, start_s: float, steps: int) -> None:
        rid = replica.replica_id
        if start_s >= self._next_sample[rid]:
            self._next_sample[rid] = start_s + self.sample_interval_s
            total = replica.cfg.total_kv_blocks
            self._samples.append(
                (
                    start_s,
                    rid,
                    len(replica.waiting),
                    replica.batch.size,
                    replica.used_blocks / total if total else 0.0,
                    replica.last_batch_tokens,
                )
            )

    # ------------------------------------------------------------------- run
    def run(self) -> RunRecords:
        """Run until every request has finished or been rejected."""
        self.env.run()
        cols = list(zip(*self._samples, strict=True)) if self._samples else [()] * 6
        ts = TimeSeries(
            time_s=np.array(cols[0], dtype=np.float64),
            replica=np.array(cols[1], dtype=np.int64),
            waiting=np.array(cols[2], dtype=np.int64),
            running=np.array(cols[3], dtype=np.int64),
            kv_used_fraction=np.array(cols[4], dtype=np.float64),
            batch_tokens=np.array(cols[5], dtype=np.int64),
        )
        return RunRecords(
            requests=self.ledger.to_records(),
            timeseries=ts,
            replicas=[r.stats() for r in self.replicas],
            itl=self.itl,
            end_s=self.env.now,
            final_waiting=sum(len(r.waiting) for r in self.replicas),
            extra={"arrival_end_s": self.arrival_end_s, "num_gpus": self.num_gpus},
        )
