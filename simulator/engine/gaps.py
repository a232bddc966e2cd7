"""Inter-token gaps of a run, recorded where tokens are produced, overall and per class.

A decode step gives every live sequence of the running batch a token. Sequences that got
their previous token at the same instant form a cohort (``RunningBatch.cohorts``), so the
first gap of a step is one value per cohort; the later steps of a run of identical decode
steps add their durations once for the whole batch.
"""

from __future__ import annotations

import numpy as np

from simulator.engine.batch import RunningBatch
from simulator.engine.gap_ema import GapEma
from simulator.metrics.histogram import GapHistogram


class TokenGaps:
    """Every gap between consecutive tokens of every request (s); per request class too
    when ``per_class`` (class index as the ledger numbers them); with ``ema_span``, each
    request's moving average of its gaps too (``engine.gap_ema``)."""

    def __init__(self, per_class: bool = False, ema_span: int | None = None):
        self.all = GapHistogram()
        self.by_class: list[GapHistogram] | None = [] if per_class else None
        self.ema: GapEma | None = GapEma(ema_span) if ema_span else None

    def classes_seen(self, count: int) -> None:
        """The run has met ``count`` request classes so far."""
        if self.by_class is not None:
            while len(self.by_class) < count:
                self.by_class.append(GapHistogram())

    def one(self, klass: int, gap_s: float, ordinal: int = -1) -> None:
        """A single token after ``gap_s`` (a sequence recomputed after preemption)."""
        self.all.add_value(gap_s, 1)
        if self.by_class is not None:
            self.by_class[klass].add_value(gap_s, 1)
        if self.ema is not None and ordinal >= 0:
            self.ema.same_gap(np.array([ordinal]), gap_s)

    def decode(
        self,
        batch: RunningBatch,
        first_end_s: float,
        later_s: np.ndarray | None = None,
        live: np.ndarray | None = None,
    ) -> None:
        """The running batch produced a token at ``first_end_s``, then one more after each of
        ``later_s`` (s). ``live``: the rows that produce tokens (a static batch's unfinished
        ones); default all. Call before the batch advances (its cohorts still say when each
        sequence's last token came)."""
        n = batch.size
        if self.ema is not None:
            self._ema(batch, first_end_s, later_s, live)
        if live is None:
            add_value = self.all.add_value
            for last_s, count in batch.cohorts:
                add_value(first_end_s - last_s, count)
            if later_s is not None and len(later_s):
                self.all.add(later_s, n)
            if self.by_class is not None:
                self._by_class(batch, first_end_s, later_s, None)
            return
        start = 0
        for last_s, count in batch.cohorts:
            rows = int(live[start : start + count].sum())
            if rows:
                self.all.add_value(first_end_s - last_s, rows)
            start += count
        if later_s is not None and len(later_s):
            self.all.add(later_s, int(live.sum()))
        if self.by_class is not None:
            self._by_class(batch, first_end_s, later_s, live)

    def _ema(
        self,
        batch: RunningBatch,
        first_end_s: float,
        later_s: np.ndarray | None,
        live: np.ndarray | None,
    ) -> None:
        """The same gaps into each request's moving average."""
        ordinals = np.asarray(batch.ordinal[: batch.size], dtype=np.int64)
        start = 0
        for last_s, count in batch.cohorts:
            rows = ordinals[start : start + count]
            if live is not None:
                rows = rows[live[start : start + count]]
            self.ema.same_gap(rows, first_end_s - last_s)
            start += count
        if later_s is not None and len(later_s):
            self.ema.gap_run(ordinals if live is None else ordinals[live], later_s)

    def _by_class(
        self,
        batch: RunningBatch,
        first_end_s: float,
        later_s: np.ndarray | None,
        live: np.ndarray | None,
    ) -> None:
        """The same gaps per request class: cohorts are contiguous in admission order, so
        each cohort's rows give its class counts."""
        hists = self.by_class
        klass = np.asarray(batch.klass, dtype=np.int64)
        start = 0
        for last_s, count in batch.cohorts:
            rows = klass[start : start + count]
            if live is not None:
                rows = rows[live[start : start + count]]
            per_class = np.bincount(rows, minlength=len(hists))
            for c in np.flatnonzero(per_class):
                hists[c].add_value(first_end_s - last_s, int(per_class[c]))
            start += count
        if later_s is not None and len(later_s):
            n = batch.size
            rows = klass[:n] if live is None else klass[:n][live]
            per_class = np.bincount(rows, minlength=len(hists))
            for c in np.flatnonzero(per_class):
                hists[c].add(later_s, int(per_class[c]))
