"""Static batching (FasterTransformer style) as run by a replica: one padded prefill of the
batch, then decode steps of the whole batch until its longest request is done."""

from __future__ import annotations

import numpy as np

from simulator.costmodel.shape import StepShape
from simulator.policies.base import ALL_TOKENS, BatchPlan


class StaticBatchSteps:
    """Replica steps for plans with ``pad`` set (mixed into ``Replica``)."""

    def _static_step(self, plan: BatchPlan):
        """Static batching: a padded prefill of the whole batch, then decode steps of the
        whole batch until its longest request is done. Finished rows stay as padding: they
        keep their slot and are computed with the batch, but their KV no longer grows. As
        static engines preallocate, a batch takes KV blocks for its full output up front."""
        env = self.env
        if plan.admit:
            yield from self._static_prefill(plan.admit)
            return
        batch = self.batch
        n = batch.size
        live = batch.remaining[:n] > 0
        if not live.any():  # the longest request is done: the batch ends
            self._static_reserved = 0
            batch.remaining[:n] = 0
            self._finish_many(batch.take_finished(), env.now, notify=False)
            return
        steps = int(batch.remaining[:n][live].min())
        now = env.now
        durations = self.cost.decode_run_s(n, batch.context_sum, steps)
        ends = now + np.cumsum(durations)
        end = float(ends[-1])
        yield env.timeout(end - now)
        live_n = int(live.sum())
        self.itl.add_value(float(ends[0]) - batch.cohorts[0][0], live_n)
        if steps > 1:
            self.itl.add(durations[1:], live_n)
        if self.itl_by_class is not None:
            per_class = np.bincount(batch.klass[:n][live], minlength=len(self.itl_by_class))
            for c in np.flatnonzero(per_class):
                hist = self.itl_by_class[c]
                hist.add_value(float(ends[0]) - batch.cohorts[0][0], int(per_class[c]))
                if steps > 1:
                    hist.add(durations[1:], int(per_class[c]))
        finishing = live & (batch.remaining[:n] == steps)
        grown = batch.advance_rows(live, steps, end)
        self._static_reserved -= grown
        self._account_run(end - now, steps, n, now)
        for ordinal in batch.ordinal[:n][finishing].tolist():
            self._finish(ordinal, end)

    def _static_prefill(self, positions: tuple[int, ...]):
        env = self.env
        block = self.cfg.kv_block_size
        # keep the admitted prefix whose full-length KV fits
        free = self.free_blocks - self.watermark_blocks
        keep: list[int] = []
        reserve = 0
        for i in positions:
            w = self.waiting[i]
            prompt = -(-w.context_tokens // block)
            full = -(-(w.context_tokens + w.remaining) // block)
            if full > free and keep:
                break
            keep.append(i)
            free -= full
            reserve += full - prompt
        self._admit(tuple(keep))
        self._take_blocks(reserve)
        self._static_reserved = reserve
        chunks = self._chunks(ALL_TOKENS)
        longest = max(p.todo for p, _ in chunks)
        k = len(chunks)
        # every prompt is padded to the longest one
        shape = StepShape.build(prefills=[(longest, 0)] * k)
        dt = self.cost.step_time_s(shape)
        self.prefill_tokens += sum(take for _, take in chunks)
        start = env.now
        yield env.timeout(dt)
        self._account(dt, k, k * longest, start)
        for p, take in chunks:
            p.done += take
            p.todo -= take
        self._complete_prefills(env.now)
