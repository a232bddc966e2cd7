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

    __slots__ = ("_queue", "_block")

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
        self.batch = RunningBatch(config.max_num_seqs)
        self.free_blocks = config.total_kv_blocks
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
            Waiting(ordinal, request.arrival_s, request.prompt_tokens,
                    request.output_tokens - 1, request.priority, False)
        )
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    @property
    def used_blocks(self) -> int:
        return self.cfg.total_kv_blocks - self.free_blocks

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
        if admit == tuple(range(len(admit))):
            items = [self.waiting.popleft() for _ in admit]
        else:
            chosen = set(admit)
            items = [w for i, w in enumerate(self.waiting) if i in chosen]
            self.waiting = deque(w for i, w in enumerate(self.waiting) if i not in chosen)
        tokens = sum(w.prefill_tokens for w in items)
        shape = StepShape.build(prefills=[(w.prefill_tokens, 0) for w in items])
        blocks = [-(-w.prefill_tokens // block) for w in items]
        self.free_blocks -= sum(blocks)
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        dt = self.cost.step_time_s(shape)
        start = env.now
        yield env.timeout(dt)
        now = env.now
        self._account(dt, len(items) + self.batch.size, tokens, start)
        first = self.ledger.first_token_s
        for w, b in zip(items, blocks, strict=True):
            if w.started:  # recomputed after preemption: this token is one more gap
                self.itl.add_value(now - w.last_token_s, 1)
            else:
                first[w.ordinal] = now
            if w.remaining <= 0:
                self._finish(w.ordinal, b, now)
            else:
                self.batch.append(w.ordinal, w.prefill_tokens, w.remaining, now, b)

    def _decode(self):
        env = self.env
        batch = self.batch
        n = batch.size
        now = env.now
        ctx = batch.context[:n]
        remaining = batch.remaining[:n]
        steps = int(remaining.min())
        # Stop at the first step boundary after the next arrival if it could be admitted then.
        horizon = math.inf
        if not self.waiting and n < self.cfg.max_num_seqs:
            horizon = self._next_arrival_s()
        sum_ctx = int(ctx.sum())
        if horizon < math.inf:
            first = self.cost.step_time_s(StepShape(decode_seqs=n, decode_context_tokens=sum_ctx,
                                                    logits_rows=n))
            # Step durations never shrink as contexts grow, so this many steps reach the horizon.
            steps = max(1, min(steps, math.ceil((horizon - now) / first) + 1))
        steps = self._steps_within_kv(steps)
        if steps == 0:
            self._preempt_last()
            return
        durations = self.cost.decode_run_s(n, sum_ctx, steps)
        ends = now + np.cumsum(durations)
        if horizon < ends[-1]:
            steps = int(np.searchsorted(ends, horizon, side="left")) + 1
            durations = durations[:steps]
            ends = ends[:steps]
        end = float(ends[-1])
        yield env.timeout(end - now)
        # every sequence produced `steps` tokens
        itl = self.itl
        itl.add(ends[0] - batch.last_token_s[:n])
        if steps > 1:
            itl.add(durations[1:], n)
        batch.last_token_s[:n] = end
        new_ctx = ctx + steps
        new_blocks = -(-new_ctx // self.cfg.kv_block_size)
        self.free_blocks -= int(new_blocks.sum() - batch.blocks[:n].sum())
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        ctx[:] = new_ctx
        batch.blocks[:n] = new_blocks
        remaining -= steps
        self._account_run(durations, n, now)
        done = remaining == 0
        if done.any():
            for i in np.flatnonzero(done):
                self._finish(int(batch.ordinal[i]), int(batch.blocks[i]), end)
            batch.remove(~done)

    def _steps_within_kv(self, steps: int) -> int:
        """Largest step count ≤ ``steps`` whose KV growth fits in the free blocks."""
        n = self.batch.size
        ctx = self.batch.context[:n]
        held = int(self.batch.blocks[:n].sum())
        block = self.cfg.kv_block_size

        def needed(k: int) -> int:
            return int((-(-(ctx + k) // block)).sum()) - held

        if needed(steps) <= self.free_blocks:
            return steps
        lo, hi = 0, steps  # needed(lo) fits, needed(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if needed(mid) <= self.free_blocks:
                lo = mid
            else:
                hi = mid
        return lo

    def _preempt_last(self) -> None:
        """Out of KV blocks: drop the newest sequence; it recomputes its context later."""
        ordinal, ctx, remaining, last_token_s, blocks = self.batch.pop_last()
        self.free_blocks += blocks
        self.ledger.preemptions[ordinal] += 1
        arrival = self.ledger.requests[ordinal].arrival_s
        prio = self.ledger.requests[ordinal].priority
        # Recompute prefills the prompt and the tokens generated so far; that pass yields a token.
        self.waiting.appendleft(
            Waiting(ordinal, arrival, ctx, remaining - 1, prio, True, last_token_s)
        )

    def _finish(self, ordinal: int, blocks: int, now: float) -> None:
        self.free_blocks += blocks
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

    def _account_run(self, durations: np.ndarray, seqs: int, start: float) -> None:
        total = float(durations.sum()) if len(durations) > 1 else float(durations[0])
        self.busy_s += total
        self.steps += len(durations)
        self.batch_seq_seconds += seqs * total
        self.last_batch_tokens = seqs
        self._sample(self, start, len(durations))
