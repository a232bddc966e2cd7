"""Per-request exponential moving average of inter-token gaps, for generation-rate SLOs.

DeepSpeed-FastGen's effective throughput counts a request only if the exponential moving
average of its generation latency (the gaps between its tokens after the first) stays below
1 / (the floor in tokens/s) at every token. The average is pandas' ``ewm(span).mean()`` with
``adjust=True``: after gaps ``g_1..g_t``, ``sum_i w^(t-i) g_i / sum_i w^(t-i)`` with
``w = 1 - 2 / (span + 1)``. Each request keeps the running numerator and denominator and the
largest average it has reached (``worst_s``), updated where its tokens are produced.
"""

from __future__ import annotations

import numpy as np

#: Span of the moving average, as DeepSpeed-FastGen's benchmark uses it (``--ema_span`` 16,
#: DeepSpeedExamples benchmarks/inference/mii/src/plot_effective_throughput.py).
GAP_EMA_SPAN = 16
#: Steps of a decode run updated at once (w^-steps must stay finite in float64).
RUN_CHUNK = 256


class GapEma:
    """Running moving averages of inter-token gaps, one per request ordinal."""

    def __init__(self, span: int = GAP_EMA_SPAN):
        self.weight = 1.0 - 2.0 / (span + 1.0)
        self._num = np.zeros(1024)
        self._den = np.zeros(1024)
        self._worst = np.zeros(1024)

    def _grow(self, size: int) -> None:
        if size <= len(self._num):
            return
        new = max(size, 2 * len(self._num))
        for name in ("_num", "_den", "_worst"):
            old = getattr(self, name)
            grown = np.zeros(new)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def same_gap(self, ordinals: np.ndarray, gap_s: float) -> None:
        """Every request of ``ordinals`` got its next token ``gap_s`` after its previous."""
        if not len(ordinals):
            return
        self._grow(int(ordinals.max()) + 1)
        num = gap_s + self.weight * self._num[ordinals]
        den = 1.0 + self.weight * self._den[ordinals]
        self._num[ordinals], self._den[ordinals] = num, den
        self._worst[ordinals] = np.maximum(self._worst[ordinals], num / den)

    def gap_run(self, ordinals: np.ndarray, gaps_s: np.ndarray) -> None:
        """Every request of ``ordinals`` got one token after each of ``gaps_s`` in turn."""
        if not len(ordinals) or not len(gaps_s):
            return
        self._grow(int(ordinals.max()) + 1)
        for start in range(0, len(gaps_s), RUN_CHUNK):
            self._run(ordinals, gaps_s[start : start + RUN_CHUNK])

    def _run(self, ordinals: np.ndarray, gaps_s: np.ndarray) -> None:
        w = self.weight
        # after step j: num = S_j + w^j num_0, den = D_j + w^j den_0, with S_j, D_j the same
        # for every request (S_j = sum_i w^(j-i) g_i = w^j cumsum(g / w^i))
        powers = w ** np.arange(1, len(gaps_s) + 1)
        scaled = np.cumsum(gaps_s / powers) * powers
        ones = np.cumsum(1.0 / powers) * powers
        num0, den0 = self._num[ordinals], self._den[ordinals]
        num = scaled[:, None] + powers[:, None] * num0[None, :]
        den = ones[:, None] + powers[:, None] * den0[None, :]
        self._num[ordinals], self._den[ordinals] = num[-1], den[-1]
        self._worst[ordinals] = np.maximum(self._worst[ordinals], (num / den).max(axis=0))

    def worst_s(self, count: int) -> np.ndarray:
        """The largest moving average each of the first ``count`` requests reached (s; NaN
        for a request that never had a second token)."""
        self._grow(count)
        worst = self._worst[:count].copy()
        worst[self._den[:count] == 0] = np.nan
        return worst
