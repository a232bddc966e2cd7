"""One serving replica: a SimPy process running the batching loop of an inference engine.

Each iteration asks the batching policy for a plan, prices it with the cost model and
advances simulated time by the step's duration. Between one arrival or completion and
the next, a pure-decode batch does not change, so successive decode steps are advanced
together in one event: their durations come from one vectorised cost-model call and
their token timestamps are recorded with numpy. This changes no result, only speed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.costmodel.shape import StepShape
from simulator.engine.batch import RunningBatch
from simulator.engine.ledger import RequestLedger
from simulator.metrics.histogram import GapHistogram
from simulator.metrics.records import ReplicaStats
from simulator.policies.base import BatchingPolicy, ReplicaView, WaitingItem


@dataclass(frozen=True)
class ReplicaConfig:
    """Scheduler limits and KV-cache geometry of one replica."""

    max_num_seqs: int
    max_num_batched_tokens: int
    kv_block_size: int
    total_kv_blocks: int
    #: Fraction of KV blocks kept free at admission so running sequences can grow (vLLM: 0.01).
    kv_watermark_fraction: float = 0.01
    gpus: int = 1


@dataclass(slots=True)
class Waiting:
    """A request queued on a replica (new, or preempted and waiting to recompute)."""

    ordinal: int
    arrival_s: float
    prefill_tokens: int  # tokens to prefill on admission
    remaining: int  # output tokens still to produce after that prefill's token
    priority: int
    started: bool  # True when it already produced its first token (preempted)
    last_token_s: float = math.nan


class _WaitingView(Sequence):
    """Lazy read-only view of the waiting queue for a policy (items built on access)."""

    __slots__ = ("_block", "_queue")

    def __init__(self, queue: deque, block_size: int):
        self._queue = queue
        self._block = block_size

    def __len__(self) -> int:
        return len(self._queue)

    def _item(self, i: int, w: Waiting) -> WaitingItem:
        blocks = -(-w.prefill_tokens // self._block)
        return WaitingItem(i, w.prefill_tokens, blocks, w.arrival_s, w.priority)

    def __getitem__(self, i):  # type: ignore[override]
        return self._item(i, self._queue[i])

    def __iter__(self) -> Iterator[WaitingItem]:
        for i, w in enumerate(self._queue):
            yield self._item(i, w)


class Replica:
    """A replica of the model on ``config.gpus`` GPUs, with its own queue and KV cache."""

    def __init__(
        self,
        env: simpy.Environment,
        replica_id: int,
        cost_model,
        policy: BatchingPolicy,
        config: ReplicaConfig,
        ledger: RequestLedger,
        itl: GapHistogram,
        next_arrival_s: Callable[[], float],
        on_finish: Callable[[int, float], None],
        sampler: Callable[[Replica, float, int], None],
    ):
        self.env = env
        self.replica_id = replica_id
        self.cost = cost_model
        self.policy = policy
        self.cfg = config
        self.ledger = ledger
        self.itl = itl
        self._next_arrival_s = next_arrival_s
        self._on_finish = on_finish
        self._sample = sampler
        self.waiting: deque[Waiting] = deque()
        self.batch = RunningBatch(config.max_num_seqs, config.kv_block_size)
        self._reserved = 0  # blocks taken by prompts being prefilled
        self.watermark_blocks = int(config.kv_watermark_fraction * config.total_kv_blocks)
        self._wakeup: simpy.Event | None = None
        self.outstanding = 0  # requests routed here and not finished
        # accounting
        self.busy_s = 0.0
        self.steps = 0
        self.batch_seq_seconds = 0.0
        self.peak_used_blocks = 0
        self.last_batch_tokens = 0
        self.process = env.process(self._run())

    # ----------------------------------------------------------------- intake
    def submit(self, ordinal: int, request) -> None:
        """Queue a routed request; wakes the loop if it is idle."""
        self.outstanding += 1
        self.waiting.append(
            Waiting(
                ordinal,
                request.arrival_s,
                request.prompt_tokens,
                request.output_tokens - 1,
                request.priority,
                False,
            )
        )
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    @property
    def used_blocks(self) -> int:
        return self.batch.blocks_held + self._reserved

    @property
    def free_blocks(self) -> int:
        return self.cfg.total_kv_blocks - self.batch.blocks_held - self._reserved

    def stats(self) -> ReplicaStats:
        total = self.cfg.total_kv_blocks
        return ReplicaStats(
            replica=self.replica_id,
            gpus=self.cfg.gpus,
            busy_s=self.busy_s,
            steps=self.steps,
            batch_seq_seconds=self.batch_seq_seconds,
            peak_kv_used_fraction=self.peak_used_blocks / total if total else 0.0,
            kv_capacity_tokens=total * self.cfg.kv_block_size,
        )

    # ------------------------------------------------------------------- loop
    def _run(self):
        env = self.env
        while True:
            if not self.waiting and self.batch.size == 0:
                self._wakeup = env.event()
                yield self._wakeup
                self._wakeup = None
                continue
            view = ReplicaView(
                waiting=_WaitingView(self.waiting, self.cfg.kv_block_size),
                running_seqs=self.batch.size,
                free_blocks=self.free_blocks,
                total_blocks=self.cfg.total_kv_blocks,
                watermark_blocks=self.watermark_blocks,
                max_num_seqs=self.cfg.max_num_seqs,
                max_num_batched_tokens=self.cfg.max_num_batched_tokens,
            )
            plan = self.policy.plan(view, env.now)
            if plan.admit:
                yield from self._prefill(plan.admit)
            elif plan.decode:
                yield from self._decode()
            elif self.batch.size == 0:
                self._reject_head()
            else:  # nothing runnable now: wait for an arrival
                self._wakeup = env.event()
                yield self._wakeup
                self._wakeup = None

    def _reject_head(self) -> None:
        """The queue head can never be admitted on an empty replica: reject it."""
        w = self.waiting.popleft()
        blocks = -(-w.prefill_tokens // self.cfg.kv_block_size)
        self.ledger.reject(
            w.ordinal,
            f"prompt needs {blocks} KV blocks, replica admits at most "
            f"{self.cfg.total_kv_blocks - self.watermark_blocks}",
        )
        self.outstanding -= 1
        self._on_finish(w.ordinal, self.env.now)

    def _prefill(self, admit: tuple[int, ...]):
        env = self.env
        block = self.cfg.kv_block_size
        waiting = self.waiting
        if admit[-1] == len(admit) - 1:  # a prefix of the queue (first-come first-served)
            items = [waiting.popleft() for _ in admit]
        else:
            chosen = set(admit)
            items = [w for i, w in enumerate(waiting) if i in chosen]
            self.waiting = deque(w for i, w in enumerate(waiting) if i not in chosen)
        tokens = 0
        pairs = 0.0
        blocks = 0
        for w in items:
            p = w.prefill_tokens
            tokens += p
            pairs += p * (p + 1) / 2
            blocks += -(-p // block)
        k = len(items)
        shape = StepShape(
            prefill_tokens=tokens,
            prefill_seqs=k,
            prefill_attn_pairs=pairs,
            prefill_kv_tokens=tokens,
            logits_rows=k,
        )
        self._reserved = blocks
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        dt = self.cost.step_time_s(shape)
        start = env.now
        yield env.timeout(dt)
        now = env.now
        self._reserved = 0
        self._account(dt, k + self.batch.size, tokens, start)
        first = self.ledger.first_token_s
        for w in items:
            if w.started:  # recomputed after preemption: this token is one more gap
                self.itl.add_value(now - w.last_token_s, 1)
            else:
                first[w.ordinal] = now
            if w.remaining <= 0:
                self._finish(w.ordinal, now)
            else:
                self.batch.append(w.ordinal, w.prefill_tokens, w.remaining, now)

    def _decode(self):
        env = self.env
        batch = self.batch
        n = batch.size
        now = env.now
        steps = int(batch.remaining[:n].min())
        cost = self.cost
        # Stop at the first step boundary after the next arrival if it could be admitted then.
        horizon = math.inf
        if not self.waiting and n < self.cfg.max_num_seqs:
            horizon = self._next_arrival_s()
        if horizon < math.inf:
            first = cost.step_time_s(
                StepShape(decode_seqs=n, decode_context_tokens=batch.context_sum, logits_rows=n)
            )
            # Step durations never shrink as contexts grow, so this many steps reach the horizon.
            steps = max(1, min(steps, math.ceil((horizon - now) / first) + 1))
        steps = self._steps_within_kv(steps)
        if steps == 0:
            self._preempt_last()
            return
        if steps == 1:
            d = cost.step_time_s(
                StepShape(decode_seqs=n, decode_context_tokens=batch.context_sum, logits_rows=n)
            )
            end = now + d
            first_end = end
            total = d
        else:
            durations = cost.decode_run_s(n, batch.context_sum, steps)
            ends = np.cumsum(durations)
            ends += now
            if horizon < ends[-1]:
                steps = int(np.searchsorted(ends, horizon, side="left")) + 1
                durations = durations[:steps]
            end = float(ends[steps - 1])
            first_end = float(ends[0])
            total = end - now
        yield env.timeout(end - now)
        # every sequence produced `steps` tokens; record the gaps since each one's last token
        itl = self.itl
        for last_s, count in batch.cohorts:
            itl.add_value(first_end - last_s, count)
        if steps > 1:
            itl.add(durations[1:], n)
        batch.advance(steps, end)
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        self._account_run(total, steps, n, now)
        done = batch.remaining[:n] == 0
        if done.any():
            ordinals = batch.ordinal[:n][done].tolist()
            batch.remove(~done)
            for ordinal in ordinals:
                self._finish(ordinal, end)

    def _steps_within_kv(self, steps: int) -> int:
        """Largest step count ≤ ``steps`` whose KV growth fits in the free blocks."""
        batch = self.batch
        free = self.free_blocks
        # Cheap bound first: each sequence crosses at most steps // block + 1 block boundaries.
        if batch.size * (steps // self.cfg.kv_block_size + 1) <= free:
            return steps
        if batch.blocks_needed(steps) <= free:
            return steps
        lo, hi = 0, steps  # blocks_needed(lo) fits, blocks_needed(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if batch.blocks_needed(mid) <= free:
                lo = mid
            else:
                hi = mid
        return lo

    def _preempt_last(self) -> None:
        """Out of KV blocks: drop the newest sequence; it recomputes its context later."""
        ordinal, ctx, remaining, last_token_s, _ = self.batch.pop_last()
        self.ledger.preemptions[ordinal] += 1
        request = self.ledger.requests[ordinal]
        # Recompute prefills the prompt and the tokens generated so far; that pass yields a token.
        self.waiting.appendleft(
            Waiting(
                ordinal, request.arrival_s, ctx, remaining - 1, request.priority, True, last_token_s
            )
        )

    def _finish(self, ordinal: int, now: float) -> None:
        self.ledger.finish_s[ordinal] = now
        self.outstanding -= 1
        self._on_finish(ordinal, now)

    # ------------------------------------------------------------- accounting
    def _account(self, dt: float, seqs: int, tokens: int, start: float) -> None:
        self.busy_s += dt
        self.steps += 1
        self.batch_seq_seconds += seqs * dt
        self.last_batch_tokens = tokens
        self._sample(self, start, 1)

    def _account_run(self, total: float, steps: int, seqs: int, start: float) -> None:
        self.busy_s += total
        self.steps += steps
        self.batch_seq_seconds += seqs * total
        self.last_batch_tokens = seqs
        self._sample(self, start, steps)
