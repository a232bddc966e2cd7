"""One serving replica: a SimPy process running the batching loop of an inference engine.

Each iteration asks the batching policy for a plan, prices it with the cost model and
advances simulated time by the step's duration. Between one arrival or completion and
the next, a pure-decode batch does not change, so successive decode steps are advanced
together in one event: their durations come from one vectorised cost-model call and
their token timestamps are recorded per cohort. This changes no result, only speed.

KV memory is paged: sequences hold blocks for their contexts, prefixes may be shared
through a prefix cache, and when blocks run out the newest sequence is preempted, either
dropped and recomputed later or swapped to host memory over the host link.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import simpy

from simulator.costmodel.shape import StepShape
from simulator.engine.batch import RunningBatch
from simulator.engine.entities import Prefilling, ReplicaConfig, Swapped, Waiting
from simulator.engine.ledger import RequestLedger
from simulator.engine.preemption import PreemptionSteps
from simulator.engine.prefix_cache import PrefixCache
from simulator.engine.static_batch import StaticBatchSteps
from simulator.metrics.histogram import GapHistogram
from simulator.metrics.records import ReplicaStats
from simulator.policies.base import (
    BatchingPolicy,
    BatchPlan,
    ReplicaView,
    WaitingItem,
)


class _WaitingView(Sequence):
    """Lazy read-only view of the waiting queue for a policy (items built on access)."""

    __slots__ = ("_replica",)

    def __init__(self, replica: Replica):
        self._replica = replica

    def __len__(self) -> int:
        return len(self._replica.waiting)

    def __getitem__(self, i):  # type: ignore[override]
        return self._replica.waiting_item(i, self._replica.waiting[i])

    def __iter__(self) -> Iterator[WaitingItem]:
        replica = self._replica
        for i, w in enumerate(replica.waiting):
            yield replica.waiting_item(i, w)


class Replica(StaticBatchSteps, PreemptionSteps):
    """A replica of the model on ``config.gpus`` GPUs, with its own queue and KV cache.

    Hooks into the cluster: ``next_arrival_s()`` (when the next request arrives anywhere),
    ``on_finish(ordinal, t)``, ``on_prefilled(ordinal, t, context)`` (when set, a finished
    prefill hands its sequence over instead of decoding it: disaggregated prefill) and
    ``sampler(replica, start_s, steps, seqs, tokens)`` for time series and step traces.
    """

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
        sampler: Callable[[Replica, float, int, int, int], None],
        on_prefilled: Callable[[int, float, int], None] | None = None,
        speculative=None,
        itl_by_class: list[GapHistogram] | None = None,
    ):
        self.env = env
        self.replica_id = replica_id
        self.cost = cost_model
        self.policy = policy
        self.cfg = config
        self.ledger = ledger
        self.itl = itl
        #: Gap histograms per request class (index = ledger class index), when several.
        self.itl_by_class = itl_by_class
        self._next_arrival_s = next_arrival_s
        self._on_finish = on_finish
        self._on_prefilled = on_prefilled
        self._sample = sampler
        self.spec = speculative
        self.waiting: deque[Waiting] = deque()
        self.prefilling: list[Prefilling] = []
        self.swapped: deque[Swapped] = deque()
        self.batch = RunningBatch(config.max_num_seqs, config.kv_block_size)
        self.cache = PrefixCache(config.kv_block_size) if config.prefix_caching else None
        self._prefill_blocks = 0  # blocks held by partly prefilled sequences
        self._static_reserved = 0  # blocks a static batch set aside for its outputs
        self.watermark_blocks = int(config.kv_watermark_fraction * config.total_kv_blocks)
        self._wakeup: simpy.Event | None = None
        self._transfer_s = 0.0  # swap traffic waiting to be charged to the next step
        self.outstanding = 0  # requests routed here and not finished
        # accounting
        self.busy_s = 0.0
        self.steps = 0
        self.batch_seq_seconds = 0.0
        self.peak_used_blocks = 0
        self.last_batch_tokens = 0
        self.preemptions = 0
        self.prefill_tokens = 0  # prompt tokens computed (cache hits excluded, recomputes included)
        self.swapped_bytes = 0.0
        self.swap_used_bytes = 0.0
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

    def wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    # ------------------------------------------------------------------ memory
    @property
    def used_blocks(self) -> int:
        cached = self.cache.blocks if self.cache is not None else 0
        return self.batch.blocks_held + self._prefill_blocks + self._static_reserved + cached

    @property
    def free_blocks(self) -> int:
        """Free KV blocks, counting cached prefixes nobody uses as free (they are evicted)."""
        evictable = self.cache.evictable_blocks if self.cache is not None else 0
        return self.cfg.total_kv_blocks - self.used_blocks + evictable

    def _take_blocks(self, blocks: int) -> None:
        """Make ``blocks`` physically free, evicting unused cached prefixes if needed."""
        short = blocks - (self.cfg.total_kv_blocks - self.used_blocks)
        if short > 0 and self.cache is not None:
            self.cache.evict(short)

    def waiting_item(self, index: int, w: Waiting) -> WaitingItem:
        block = self.cfg.kv_block_size
        hit = 0
        if self.cache is not None and w.prefix_tokens and not w.started:
            hit = self.cache.hit_blocks(w.prefix_id, w.prefix_tokens, w.context_tokens)
        tokens = 0 if w.prefilled else w.context_tokens - hit * block
        blocks = -(-w.context_tokens // block) - hit
        return WaitingItem(index, tokens, blocks, w.arrival_s, w.priority)

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

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.prefilling or self.batch.size or self.swapped)

    # ------------------------------------------------------------------- loop
    def _run(self):
        env = self.env
        while True:
            if not self.has_work:
                yield from self._sleep(math.inf)
                continue
            if self.swapped:
                self._swap_in()
            view = ReplicaView(
                waiting=_WaitingView(self),
                prefilling=[p.todo for p in self.prefilling],
                running_seqs=self.batch.size,
                free_blocks=self.free_blocks,
                total_blocks=self.cfg.total_kv_blocks,
                watermark_blocks=self.watermark_blocks,
                max_num_seqs=self.cfg.max_num_seqs,
                max_num_batched_tokens=self.cfg.max_num_batched_tokens,
            )
            plan = self.policy.plan(view, env.now)
            if plan.idle:
                if self.batch.size or self.prefilling or self.swapped or plan.wake_at_s < math.inf:
                    yield from self._sleep(plan.wake_at_s)
                else:
                    self._reject_head()
            elif plan.pad:
                yield from self._static_step(plan)
            elif plan.decode and not plan.admit and not (plan.prefill_budget and self.prefilling):
                yield from self._decode_run(plan.max_steps)
            else:
                yield from self._step(plan)

    def _sleep(self, until_s: float):
        """Wait for an arrival (or until ``until_s``)."""
        self._wakeup = self.env.event()
        if until_s < math.inf:
            yield self._wakeup | self.env.timeout(max(until_s - self.env.now, 0.0))
        else:
            yield self._wakeup
        self._wakeup = None

    def _reject_head(self) -> None:
        """The queue head can never be admitted on an empty replica: reject it."""
        w = self.waiting.popleft()
        blocks = -(-w.context_tokens // self.cfg.kv_block_size)
        self.ledger.reject(
            w.ordinal,
            f"needs {blocks} KV blocks, a replica admits at most "
            f"{self.cfg.total_kv_blocks - self.watermark_blocks}",
        )
        self.outstanding -= 1
        self._on_finish(w.ordinal, self.env.now)

    # ------------------------------------------------------------- admission
    def _admit(self, positions: tuple[int, ...]) -> None:
        """Move waiting requests into the prefilling set, taking their KV blocks."""
        waiting = self.waiting
        if positions[-1] == len(positions) - 1:  # a prefix of the queue
            items = [waiting.popleft() for _ in positions]
        else:
            chosen = set(positions)
            items = [w for i, w in enumerate(waiting) if i in chosen]
            self.waiting = deque(w for i, w in enumerate(waiting) if i not in chosen)
        block = self.cfg.kv_block_size
        for w in items:
            shared = 0
            cache = self.cache
            if cache is not None and w.prefix_tokens and not w.started:
                shared = cache.hit_blocks(w.prefix_id, w.prefix_tokens, w.context_tokens)
                if shared:
                    cache.acquire(w.prefix_id)
            own = -(-w.context_tokens // block) - shared
            self._take_blocks(own)
            self._prefill_blocks += own
            done = w.context_tokens if w.prefilled else shared * block
            self.ledger.cached_prompt_tokens[w.ordinal] = shared * block
            self.prefilling.append(Prefilling(w, w.context_tokens - done, done, own, shared))
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)

    def _chunks(self, budget: int) -> list[tuple[Prefilling, int]]:
        chunks = []
        for p in self.prefilling:
            if budget <= 0:
                break
            if not p.todo:
                continue
            take = p.todo if p.todo <= budget else budget
            chunks.append((p, take))
            budget -= take
        return chunks

    # ------------------------------------------------------------ one step
    def _step(self, plan: BatchPlan):
        """One step: prompt chunks, fused with a decode step when the plan says so."""
        env = self.env
        if plan.admit:
            self._admit(plan.admit)
            self._complete_prefills(env.now)  # KV that arrived prefilled joins at once
        n = 0
        if plan.decode and self.batch.size:
            while self.batch.size and self._steps_within_kv(1) == 0:
                self._preempt_last()
            n = self.batch.size
        chunks = self._chunks(plan.prefill_budget)
        if not chunks and n == 0:
            return
        batch = self.batch
        tokens = 0
        pairs = 0.0
        kv_tokens = 0
        completing = 0
        for p, take in chunks:
            tokens += take
            pairs += take * (p.done + (take + 1) / 2)
            kv_tokens += p.done + take
            completing += take == p.todo
        shape = StepShape(
            prefill_tokens=tokens,
            prefill_seqs=len(chunks),
            prefill_attn_pairs=pairs,
            prefill_kv_tokens=kv_tokens,
            decode_seqs=n,
            decode_context_tokens=batch.context_sum if n else 0,
            logits_rows=n + completing,
        )
        dt = self.cost.step_time_s(shape) + self._transfer_s
        self._transfer_s = 0.0
        self.prefill_tokens += tokens
        start = env.now
        yield env.timeout(dt)
        end = env.now
        self._account(dt, n + len(chunks), tokens + n, start)
        if n:
            for last_s, count in batch.cohorts:
                self.itl.add_value(end - last_s, count)
            if self.itl_by_class is not None:
                self._class_gaps(end, None, n)
            batch.advance(1, end)
            self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        finished = batch.take_finished() if n else ([], [], [])
        for p, take in chunks:
            p.done += take
            p.todo -= take
        self._complete_prefills(end)
        self._finish_many(finished, end)

    def _complete_prefills(self, end: float) -> None:
        """Prefilled sequences produce their first token and start decoding."""
        if not any(p.todo == 0 for p in self.prefilling):
            return
        still: list[Prefilling] = []
        first = self.ledger.first_token_s
        for p in self.prefilling:
            if p.todo:
                still.append(p)
                continue
            w = p.source
            self._prefill_blocks -= p.own_blocks
            if w.prefilled:  # its first token came from the prefill replica
                self.batch.append(
                    w.ordinal,
                    w.context_tokens,
                    w.remaining,
                    w.last_token_s,
                    p.shared_blocks,
                    self.ledger.klass[w.ordinal],
                )
                continue
            if w.started:  # recomputed after preemption: one more gap, no new TTFT
                self.itl.add_value(end - w.last_token_s, 1)
                if self.itl_by_class is not None:
                    self.itl_by_class[self.ledger.klass[w.ordinal]].add_value(
                        end - w.last_token_s, 1
                    )
            else:
                first[w.ordinal] = end
            if self._on_prefilled is not None:
                self._release_prefix(w, p.shared_blocks)
                self._on_prefilled(w.ordinal, end, w.context_tokens)
                self.outstanding -= 1
            elif w.remaining <= 0:
                self._retain_or_free(w.ordinal, w.context_tokens, p.shared_blocks)
                self._finish(w.ordinal, end)
            else:
                self.batch.append(
                    w.ordinal,
                    w.context_tokens,
                    w.remaining,
                    end,
                    p.shared_blocks,
                    self.ledger.klass[w.ordinal],
                )
        self.prefilling = still

    # --------------------------------------------------------- decode runs
    def _decode_run(self, max_steps: int):
        env = self.env
        batch = self.batch
        n = batch.size
        now = env.now
        least_remaining = int(batch.remaining[:n].min())
        steps = min(least_remaining, max_steps)
        cost = self.cost
        # Stop at the first step boundary after the next arrival if it could be admitted then.
        horizon = math.inf
        if not self.waiting and n < self.cfg.max_num_seqs:
            horizon = self._next_arrival_s()
        shape = StepShape(decode_seqs=n, decode_context_tokens=batch.context_sum, logits_rows=n)
        if horizon < math.inf and steps > 1:
            first = cost.step_time_s(shape)
            # Step durations never shrink as contexts grow, so this many steps reach the horizon.
            steps = max(1, min(steps, math.ceil((horizon - now) / first) + 1))
        steps = self._steps_within_kv(steps)
        if steps == 0:
            self._preempt_last()
            return
        extra = self._transfer_s
        self._transfer_s = 0.0
        if steps == 1:
            d = cost.step_time_s(shape) + extra
            end = now + d
            first_end = end
            total = d
            durations = None
        else:
            durations = cost.decode_run_s(n, batch.context_sum, steps)
            durations[0] += extra
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
        if durations is not None and steps > 1:
            itl.add(durations[1:], n)
        if self.itl_by_class is not None:
            self._class_gaps(first_end, durations if steps > 1 else None, n)
        batch.advance(steps, end)
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        self._account_run(total, steps, n, now)
        if steps == least_remaining:  # the shortest request(s) finished
            self._finish_many(batch.take_finished(), end)

    def _class_gaps(self, first_end: float, durations: np.ndarray | None, n: int) -> None:
        """The gaps just recorded, again per request class: cohorts are contiguous in
        admission order, so each cohort's rows give its class counts."""
        hists = self.itl_by_class
        klass = self.batch.klass
        start = 0
        for last_s, count in self.batch.cohorts:
            per_class = np.bincount(klass[start : start + count], minlength=len(hists))
            for c in np.flatnonzero(per_class):
                hists[c].add_value(first_end - last_s, int(per_class[c]))
            start += count
        if durations is not None:
            per_class = np.bincount(klass[:n], minlength=len(hists))
            for c in np.flatnonzero(per_class):
                hists[c].add(durations[1:], int(per_class[c]))

    def _steps_within_kv(self, steps: int) -> int:
        """Largest step count ≤ ``steps`` whose KV growth fits in the free blocks
        (evicting unused cached prefixes as needed)."""
        batch = self.batch
        free = self.free_blocks
        # Cheap bound first: each sequence crosses at most steps // block + 1 block boundaries.
        bound_fits = batch.size * (steps // self.cfg.kv_block_size + 1) <= free
        if not bound_fits and batch.blocks_needed(steps) > free:
            lo, hi = 0, steps  # blocks_needed(lo) fits, blocks_needed(hi) does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if batch.blocks_needed(mid) <= free:
                    lo = mid
                else:
                    hi = mid
            steps = lo
        if steps and self.cache is not None:
            self._take_blocks(batch.blocks_needed(steps))
        return steps

    # ----------------------------------------------------------------- finish
    def _release_prefix(self, w: Waiting, shared: int) -> None:
        if shared:
            self.cache.release(w.prefix_id)

    def _retain_or_free(self, ordinal: int, context: int, shared: int) -> None:
        """A finished sequence's KV: keep its prefix in the cache, free the rest."""
        cache = self.cache
        if cache is None:
            return
        request = self.ledger.requests[ordinal]
        if shared:
            cache.release(request.prefix_id)
        own = -(-context // self.cfg.kv_block_size) - shared
        if request.session_id >= 0:
            # a conversation's next turn resends this whole context
            cache.retain(request.session_id, context, own)
        elif request.prefix_id >= 0:
            # a shared system prompt: only the declared prefix is common
            cache.retain(request.prefix_id, request.prefix_tokens, own)

    def _finish_many(
        self, finished: tuple[list[int], list[int], list[int]], end: float, notify: bool = True
    ) -> None:
        """Release finished sequences' KV; ``notify`` records their finish (False for
        padding rows whose finish was recorded when their last token came)."""
        ordinals, contexts, shared = finished
        for ordinal, ctx, sh in zip(ordinals, contexts, shared, strict=True):
            self._retain_or_free(ordinal, ctx, sh)
            if notify:
                self._finish(ordinal, end)

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
        self._sample(self, start, 1, seqs, tokens)

    def _account_run(self, total: float, steps: int, seqs: int, start: float) -> None:
        self.busy_s += total
        self.steps += steps
        self.batch_seq_seconds += seqs * total
        self.last_batch_tokens = seqs
        self._sample(self, start, steps, seqs, seqs)
