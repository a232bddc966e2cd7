"""One serving replica: a SimPy process running the batching loop of an inference engine.

The loop has one body whatever the batching policy: the policy plans the next step from a
read-only view of the replica (``plan``), the plan becomes a priced ``Step``
(``engine.steps``: a mixed step, a run of identical decode steps, or a static batch's
prefill or decode), simulated time advances by its duration, the prompts and the running
batch advance, finished requests leave, and the step is recorded.

KV memory is paged (``engine.kv_blocks``): when blocks run out the newest sequence is
preempted, either dropped and recomputed later or swapped to host memory over the host link.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import simpy

from simulator.engine.batch import RunningBatch
from simulator.engine.deployment import ReplicaGroup
from simulator.engine.entities import Prefilling, Swapped, Waiting
from simulator.engine.gaps import TokenGaps
from simulator.engine.intake import timeout_at
from simulator.engine.kv_blocks import KvBlocks
from simulator.engine.ledger import RequestLedger
from simulator.engine.steps import (
    ShapeBuffer,
    Step,
    decode_run,
    decode_run_steps,
    mixed_step,
    prices_runs_step_by_step,
    prompt_chunks,
    static_decode,
    static_prefill,
)
from simulator.engine.swap import SwapSpace
from simulator.engine.views import ReplicaStatus, SchedulerView
from simulator.metrics.records import ReplicaStats
from simulator.policies import ALL_TOKENS, BatchPlan, WaitingItem, make_policy


class ReplicaHost(Protocol):
    """What a replica needs from the cluster it serves in."""

    ledger: RequestLedger
    gaps: TokenGaps

    def next_arrival_s(self) -> float:
        """When the next request arrives anywhere (s; ``math.inf`` if none is scheduled)."""
        ...

    def finished(self, ordinal: int, now_s: float) -> None:
        """Request ``ordinal`` finished (or was rejected) at ``now_s``."""
        ...

    def prefilled(self, ordinal: int, now_s: float, context_tokens: int) -> None:
        """A prefill replica finished a prompt: its KV cache leaves for a decode replica."""
        ...

    def stepped(self, replica: Replica, start_s: float, step: Step) -> None:
        """The replica ran ``step`` from ``start_s`` (time series, step traces)."""
        ...


class Replica:
    """A replica of ``group`` (its cost model, policy and limits), with its own queue and
    KV cache, serving in ``host``'s cluster."""

    def __init__(
        self, env: simpy.Environment, replica_id: int, group: ReplicaGroup, host: ReplicaHost
    ):
        config = group.config
        self.env = env
        self.replica_id = replica_id
        self.cost = group.cost_model
        self.policy = make_policy(group.policy)
        self.cfg = config
        self.host = host
        self.ledger = host.ledger
        self._gaps = host.gaps
        #: A prefill pool's replica hands each prefilled sequence over instead of decoding it.
        self.hands_off = group.role == "prefill"
        self.waiting: deque[Waiting] = deque()
        self.prefilling: list[Prefilling] = []
        self.swap = SwapSpace(config)
        self.batch = RunningBatch(config.max_num_seqs, config.kv_block_size)
        self.kv = KvBlocks(
            config.total_kv_blocks,
            config.kv_block_size,
            config.kv_watermark_fraction,
            config.prefix_caching,
            self.batch,
        )
        self._wakeup: simpy.Event | None = None
        #: Requests of a static batch that finished but still pad it, until it ends.
        self._padding: dict[int, object] = {}
        self.outstanding = 0  # requests routed here and not finished
        #: What routers and the autoscaler may read of this replica.
        self.status = ReplicaStatus(self)
        #: What the batching policy reads of it.
        self.view = SchedulerView(self)
        #: Most prompt tokens one sequence prefills in a step (its rank's budget; None: any).
        self._max_chunk = config.max_chunk_tokens
        #: When this replica takes every arrival itself (``engine.intake``): routes the
        #: arrivals due when it resumes, and when the next one comes.
        self.intake = None
        self.next_route_s = None
        self.arrivals = None  # the ``engine.intake.InlineArrivals`` it takes from
        #: When the next request arrives anywhere (s): ``host.next_arrival_s`` unless this
        #: replica takes the arrivals itself (then it has routed every arrival due).
        self.next_arrival_s = host.next_arrival_s
        #: The only replica, taking its arrivals itself, with nothing else in the simulation:
        #: while no other event is scheduled it runs its steps back to back without handing
        #: control to SimPy (``now`` is then ahead of ``env.now``; they meet when it waits).
        self.alone = False
        self.running_ahead = False
        #: The replica's clock (s): ``env.now`` whenever it hands control to SimPy.
        self.now = env.now
        #: Start of the next time-series sample (s).
        self.next_sample_s = 0.0
        #: Shapes of the steps priced (rewritten step after step).
        self._mixed_shape = ShapeBuffer()
        self._decode_shape = ShapeBuffer()
        self._step_by_step = prices_runs_step_by_step(self.cost)
        # accounting
        self.busy_s = 0.0
        self.steps = 0
        self.batch_seq_seconds = 0.0
        self.preemptions = 0
        self.prefill_tokens = 0  # prompt tokens computed (cache hits excluded, recomputes included)
        self.process = env.process(self._run())

    # ----------------------------------------------------------------- intake
    def submit(self, ordinal: int, request, prefilled: bool = False, first_s: float = 0.0):
        """Queue a routed request (or, with ``prefilled``, one whose KV arrived from a
        prefill replica at ``first_s``, its first token); wakes the loop if idle."""
        self.outstanding += 1
        self.waiting.append(
            Waiting(
                ordinal,
                request.arrival_s,
                request.prompt_tokens,
                request.output_tokens - 1,
                request.priority,
                prefilled,
                first_s if prefilled else math.nan,
                request.prefix_id,
                request.prefix_tokens,
                prefilled,
            )
        )
        self.wake()

    def catch_up(self) -> None:
        """Route the arrivals due by now when this replica takes arrivals itself (between
        its steps it takes them when it resumes): what an observer reads is then current."""
        if self.intake is not None:
            self.intake(self.env.now, -math.inf)

    def wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.prefilling or self.batch.size or self.swap.sequences)

    def waiting_item(self, index: int, w: Waiting) -> WaitingItem:
        kv = self.kv
        block = kv.block_size
        hit = kv.hit_blocks(w) if w.prefix_tokens and kv.cache is not None else 0
        tokens = 0 if w.prefilled else w.context_tokens - hit * block
        held = w.context_tokens
        if self.cfg.reserve_whole_sequence:
            held += w.remaining
        blocks = -(-held // block) - hit
        return WaitingItem(index, tokens, blocks, w.arrival_s, w.priority)

    def blocks_promised(self) -> int:
        """KV blocks the admitted sequences still take before their last token (what a
        whole-sequence admission keeps aside)."""
        block = self.kv.block_size
        promised = self.batch.blocks_to_grow
        for p in self.prefilling:
            w = p.source
            promised += -(-(w.context_tokens + w.remaining) // block) - p.own_blocks
            promised -= p.shared_blocks
        return promised

    def stats(self) -> ReplicaStats:
        total = self.kv.total
        return ReplicaStats(
            replica=self.replica_id,
            gpus=self.cfg.gpus,
            busy_s=self.busy_s,
            steps=self.steps,
            batch_seq_seconds=self.batch_seq_seconds,
            peak_kv_used_fraction=self.kv.peak / total if total else 0.0,
            kv_capacity_tokens=total * self.kv.block_size,
        )

    # ------------------------------------------------------------------- loop
    def _run(self):
        """Plan, price, run, apply, record: the body of every step."""
        env = self.env
        plan_step = self.policy.plan
        view = self.view
        intake = self.intake
        self.now = env.now
        if intake is not None:
            intake(self.now, math.inf)
        # Nothing else scheduled: steps run back to back until the replica next waits (no
        # other process can act before then, as only a waiting replica lets one run).
        self.running_ahead = self.alone and env.peek() == math.inf
        while True:
            if not (self.waiting or self.prefilling or self.batch.size or self.swap.sequences):
                yield from self._sleep(math.inf)
                continue
            if self.swap.sequences:
                self._swap_in()
            plan = plan_step(view, self.now)
            if plan.idle:
                yield from self._idle(plan)
                continue
            step = self._step(plan)
            if step is None:
                continue
            start = self.now
            if self.running_ahead:  # to the time SimPy would reach: now + delay
                self.now = start + step.delay_s
            else:
                yield from self._catch_up_clock()
                yield env.timeout(step.delay_s)
                self.now = env.now
                self.running_ahead = self.alone and env.peek() == math.inf
            if intake is not None and self.arrivals.next_s <= self.now:
                intake(self.now, start)
            self._apply(step)
            # record
            self.busy_s += step.busy_s
            self.steps += step.count
            self.batch_seq_seconds += step.seqs * step.busy_s
            self.prefill_tokens += step.prefill_tokens
            self.host.stepped(self, start, step)

    def _catch_up_clock(self):
        """Before handing control to SimPy: bring its clock up to the replica's, if the
        replica ran ahead."""
        if self.env.now != self.now:
            yield timeout_at(self.env, self.now)

    def _sleep(self, until_s: float):
        """Wait for an arrival (or until ``until_s``)."""
        env = self.env
        now = self.now
        if self.intake is not None:  # the next arrival is known: sleep until then
            wake_s = now + max(until_s - now, 0.0) if until_s < math.inf else math.inf
            arrival_s = self.next_route_s()
            if arrival_s <= wake_s:
                wake_s = arrival_s
            if self.running_ahead and wake_s < math.inf:
                self.now = wake_s
            else:
                yield from self._catch_up_clock()
                # nothing will come: wait for the end of the run
                yield env.event() if wake_s == math.inf else timeout_at(env, wake_s)
                self.now = env.now
                self.running_ahead = self.alone and env.peek() == math.inf
            self.intake(self.now, math.inf)
            return
        self._wakeup = env.event()
        if until_s < math.inf:
            yield self._wakeup | env.timeout(max(until_s - now, 0.0))
        else:
            yield self._wakeup
        self._wakeup = None
        self.now = env.now

    def _idle(self, plan: BatchPlan):
        """Nothing to run: wait, or reject a queue head that can never be admitted."""
        if self.batch.size or self.prefilling or self.swap.sequences or plan.wake_at_s < math.inf:
            yield from self._sleep(plan.wake_at_s)
            return
        w = self.waiting.popleft()
        self.ledger.reject(
            w.ordinal,
            f"needs {self.kv.blocks_for(w.context_tokens)} KV blocks, a replica admits at "
            f"most {self.kv.admissible}",
        )
        self.outstanding -= 1
        self.host.finished(w.ordinal, self.now)

    def _step(self, plan: BatchPlan) -> Step | None:
        """The priced step of ``plan`` (admissions and preemptions done); None when the
        plan runs nothing now."""
        if plan.pad:
            return self._static_step(plan)
        if plan.decode and not plan.admit and not (plan.prefill_budget and self.prefilling):
            return self._decode_run(plan.max_steps)
        if plan.admit and self._admit(plan.admit):
            self._complete_prefills(self.now)  # KV that arrived prefilled joins at once
        decodes = 0
        if plan.decode and self.batch.size:
            while self.batch.size and self.kv.steps_within(1) == 0:
                self._preempt_last()
            decodes = self.batch.size
        chunks = prompt_chunks(self.prefilling, plan.prefill_budget, self._max_chunk)
        if not chunks and decodes == 0:
            return None
        swap_s = self.swap.take_pending_s() if self.swap.enabled else 0.0
        return mixed_step(
            self.cost, chunks, self.batch, decodes, self.now, swap_s, self._mixed_shape
        )

    def _decode_run(self, max_steps: int) -> Step | None:
        now = self.now
        batch = self.batch
        # Stop at the first step boundary after the next arrival if it could be admitted then.
        horizon = math.inf
        if not self.waiting and batch.size < self.cfg.max_num_seqs:
            horizon = self.next_arrival_s()
        shape = self._decode_shape
        if self._step_by_step and not self.kv.cache:
            steps = min(batch.shortest, max_steps)
        else:  # bounded from the first step before the run (the cache's eviction, and an
            # array run's length, depend on it)
            steps = decode_run_steps(self.cost, batch, max_steps, now, horizon, shape)
        steps = self.kv.steps_within(steps)
        if steps == 0:
            self._preempt_last()
            return None
        swap_s = self.swap.take_pending_s() if self.swap.enabled else 0.0
        return decode_run(self.cost, batch, steps, now, horizon, swap_s, shape, self._step_by_step)

    def _static_step(self, plan: BatchPlan) -> Step | None:
        """Static batching: a padded prefill of the whole batch, then decode steps of the
        whole batch until its longest request is done. Finished rows stay as padding: they
        keep their slot and are computed with the batch, but their KV no longer grows. As
        static engines preallocate, a batch takes KV blocks for its full output up front."""
        if plan.admit:
            self._static_admit(plan.admit)
            chunks = prompt_chunks(self.prefilling, ALL_TOKENS)
            return static_prefill(self.cost, chunks, self.now)
        batch = self.batch
        if batch.live:
            return static_decode(self.cost, batch, self.now)
        # the longest request is done: the batch ends
        self.kv.reserved = 0
        self._release(batch.take_finished(), self.now, notify=False)
        return None

    def _static_admit(self, positions: tuple[int, ...]) -> None:
        """Admit the prefix of ``positions`` whose full-length KV fits, reserving the blocks
        for its outputs."""
        kv = self.kv
        free = kv.free - kv.watermark
        keep: list[int] = []
        reserve = 0
        for i in positions:
            w = self.waiting[i]
            full = kv.blocks_for(w.context_tokens + w.remaining)
            if full > free and keep:
                break
            keep.append(i)
            free -= full
            reserve += full - kv.blocks_for(w.context_tokens)
        self._admit(tuple(keep))
        kv.take(reserve)
        kv.reserved = reserve
        kv.note_peak()

    # ------------------------------------------------------------- admission
    def _admit(self, positions: tuple[int, ...]) -> bool:
        """Move waiting requests into the prefilling set, taking their KV blocks; True when
        one of them has nothing to prefill (its KV arrived prefilled)."""
        waiting = self.waiting
        if positions[-1] == len(positions) - 1:  # a prefix of the queue
            items = [waiting.popleft() for _ in positions]
        else:
            chosen = set(positions)
            items = [w for i, w in enumerate(waiting) if i in chosen]
            self.waiting = deque(w for i, w in enumerate(waiting) if i not in chosen)
        kv = self.kv
        block = kv.block_size
        prefilled = False
        for w in items:
            own, shared = kv.admit(w)
            if w.prefilled:  # its prefill replica recorded the prompt's cache hits
                done = w.context_tokens
            else:
                done = shared * block
                self.ledger.cached(w.ordinal, done)
            self.prefilling.append(Prefilling(w, w.context_tokens - done, done, own, shared))
            prefilled = prefilled or w.prefilled
        kv.note_peak()
        return prefilled

    # ------------------------------------------------------------------ apply
    def _apply(self, step: Step) -> None:
        """The step is over: tokens were produced, prompts advanced; release what finished."""
        batch = self.batch
        finished = None
        if step.decode_steps:
            self._gaps.decode(batch, step.first_end_s, step.later_s, step.live)
            if step.live is None:
                batch.advance(step.decode_steps, step.end_s)
                kv = self.kv
                used = kv.used
                if used > kv.peak:
                    kv.peak = used
                if step.may_finish:
                    finished = batch.take_finished()
            else:  # the rows' growth comes out of the static batch's reservation
                self.kv.reserved -= batch.advance(step.decode_steps, step.end_s)
        if step.chunks:
            completed = False
            for p, take in step.chunks:
                p.done += take
                p.todo -= take
                completed = completed or not p.todo
            if completed:
                self._complete_prefills(step.end_s)
        if finished is not None:
            self._release(finished, step.end_s)
        elif step.finishing is not None:  # a static batch keeps its finished rows as padding
            for ordinal, last in zip(batch.ordinal, step.finishing.tolist(), strict=True):
                if last:  # its KV is released with the batch: keep what the cache needs
                    self._padding[ordinal] = self.ledger.live[ordinal]
                    self._finish(ordinal, step.end_s)

    def _complete_prefills(self, end: float) -> None:
        """Prefilled sequences produce their first token and start decoding (called when
        at least one is complete)."""
        still: list[Prefilling] = []
        ledger = self.ledger
        for p in self.prefilling:
            if p.todo:
                still.append(p)
                continue
            w = p.source
            self.kv.prefilling -= p.own_blocks
            if w.prefilled:  # its first token came from the prefill replica
                self.batch.append(
                    w.ordinal,
                    w.context_tokens,
                    w.remaining,
                    w.last_token_s,
                    p.shared_blocks,
                    ledger.class_of(w.ordinal),
                )
                continue
            if w.started:  # recomputed after preemption: one more gap, no new TTFT
                self._gaps.one(ledger.class_of(w.ordinal), end - w.last_token_s, w.ordinal)
            else:
                ledger.first_token(w.ordinal, end)
            if self.hands_off:  # the KV leaves; the prompt stays in this replica's cache
                self.kv.retain_or_free(ledger.live[w.ordinal], w.context_tokens, p.shared_blocks)
                self.host.prefilled(w.ordinal, end, w.context_tokens)
                self.outstanding -= 1
            elif w.remaining <= 0:
                request = ledger.live[w.ordinal]
                self.kv.retain_or_free(request, w.context_tokens, p.shared_blocks)
                self._finish(w.ordinal, end)
            else:
                self.batch.append(
                    w.ordinal,
                    w.context_tokens,
                    w.remaining,
                    end,
                    p.shared_blocks,
                    ledger.class_of(w.ordinal),
                )
        self.prefilling = still

    def _release(
        self, finished: tuple[list[int], list[int], list[int]], end: float, notify: bool = True
    ) -> None:
        """Release finished sequences' KV; ``notify`` records their finish (False for
        padding rows whose finish was recorded when their last token came)."""
        if not notify:
            for ordinal, ctx, shared in zip(*finished, strict=True):
                self.kv.retain_or_free(self._padding.pop(ordinal), ctx, shared)
            return
        ledger = self.ledger
        requests = ledger.live
        retain_or_free = self.kv.retain_or_free
        finished_at = self.host.finished
        for ordinal, ctx, shared in zip(*finished, strict=True):
            retain_or_free(requests[ordinal], ctx, shared)
            ledger.finish(ordinal, end)
            finished_at(ordinal, end)
        self.outstanding -= len(finished[0])

    def _finish(self, ordinal: int, now: float) -> None:
        self.ledger.finish(ordinal, now)
        self.outstanding -= 1
        self.host.finished(ordinal, now)

    # ------------------------------------------------------------ preemption
    def _preempt_last(self) -> None:
        """Out of KV blocks: preempt the newest sequence (swap it out, or drop it to
        recompute its context later)."""
        ordinal, ctx, remaining, last_token_s, shared = self.batch.pop_last()
        self.preemptions += 1
        self.ledger.preempted(ordinal)
        request = self.ledger.live[ordinal]
        self.kv.release_prefix(request.prefix_id, shared)
        if self.swap.swap_out(Swapped(ordinal, ctx, remaining, last_token_s)):
            return
        # Recompute prefills the prompt and the tokens generated so far; that pass yields a token.
        self.waiting.appendleft(
            Waiting(
                ordinal, request.arrival_s, ctx, remaining - 1, request.priority, True, last_token_s
            )
        )

    def _swap_in(self) -> None:
        """Bring swapped sequences back (oldest first) while blocks allow; the copy time is
        charged to the next step."""
        kv = self.kv
        swapped = self.swap.sequences
        while swapped and self.batch.size < self.cfg.max_num_seqs:
            need = kv.blocks_for(swapped[0].context)
            if kv.free - need < kv.watermark:
                break
            kv.take(need)
            s = self.swap.swap_in()
            klass = self.ledger.class_of(s.ordinal)
            self.batch.append(s.ordinal, s.context, s.remaining, s.last_token_s, 0, klass)
