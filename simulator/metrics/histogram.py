"""A fine log-binned histogram of inter-token gaps, cheap enough for the engine's hot loop.

Every gap between consecutive tokens of every request would be far too many values to keep
(a 100k-request run produces tens of millions), so gaps go into geometric bins whose width
is at most ``RELATIVE_RESOLUTION`` of their value. Quantiles are then accurate to that
relative resolution; the mean, the count, the minimum and the maximum are exact.

``add`` copies values into a preallocated buffer and bins them in batches when it fills:
one slice copy per call instead of several numpy passes plus a ``bincount`` over all bins.
"""

from __future__ import annotations

import math

import numpy as np

#: Smallest and largest gap (s) with a bin of their own; values outside go to the edge bins.
MIN_GAP_S = 1e-6
MAX_GAP_S = 1e5
#: Ratio of consecutive bin edges minus one: every bin spans at most 0.1% of its value.
RELATIVE_RESOLUTION = 1e-3
#: Values buffered before they are binned together (8 bytes value + 8 bytes count each).
BUFFER_SIZE = 32_768

_LOG_MIN = math.log(MIN_GAP_S)
_LOG_RATIO = math.log1p(RELATIVE_RESOLUTION)
_INV_LOG_RATIO = 1.0 / _LOG_RATIO
NUM_BINS = math.ceil((math.log(MAX_GAP_S) - _LOG_MIN) * _INV_LOG_RATIO)
#: Lower edge of every bin (s); bin ``i`` covers ``[edges[i], edges[i + 1])``.
BIN_EDGES_S = np.exp(_LOG_MIN + _LOG_RATIO * np.arange(NUM_BINS + 1))


class GapHistogram:
    """Counts of gaps (s) in log-spaced bins, with an exact running count, sum, min and max.

    ``add(values, counts)`` records each ``values[i]`` ``counts[i]`` times (``counts`` may be
    one int for all). ``quantile`` follows numpy's default (linear interpolation between
    order statistics), each order statistic placed geometrically inside its bin.
    """

    __slots__ = (
        "_bins",
        "_buf_counts",
        "_buf_values",
        "_count",
        "_cum",
        "_fill",
        "_max",
        "_min",
        "_sum",
    )

    def __init__(self) -> None:
        self._bins = np.zeros(NUM_BINS, dtype=np.float64)  # float64: exact counts below 2**53
        self._buf_values = np.empty(BUFFER_SIZE, dtype=np.float64)
        self._buf_counts = np.empty(BUFFER_SIZE, dtype=np.float64)
        self._fill = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._cum: np.ndarray | None = None  # cached cumulative counts for quantiles

    # ---------------------------------------------------------------- recording
    def add(self, values: np.ndarray, counts: np.ndarray | int = 1) -> None:
        """Record every gap in ``values`` (s), each ``counts`` times (an int or one per value)."""
        n = len(values)
        fill = self._fill
        if fill + n > BUFFER_SIZE:
            self._flush()
            fill = 0
            if n > BUFFER_SIZE:
                self._bin(np.asarray(values, dtype=np.float64), counts)
                return
        end = fill + n
        self._buf_values[fill:end] = values
        self._buf_counts[fill:end] = counts
        self._fill = end

    def add_value(self, value: float, count: int = 1) -> None:
        """Record one gap ``value`` (s) ``count`` times, without allocating an array."""
        fill = self._fill
        if fill == BUFFER_SIZE:
            self._flush()
            fill = 0
        self._buf_values[fill] = value
        self._buf_counts[fill] = count
        self._fill = fill + 1

    def merge(self, other: GapHistogram) -> None:
        """Add every gap recorded by ``other`` to this histogram (``other`` is unchanged)."""
        self._flush()
        other._flush()
        self._bins += other._bins
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        self._cum = None

    def _flush(self) -> None:
        if self._fill:
            fill = self._fill
            self._fill = 0
            self._bin(self._buf_values[:fill], self._buf_counts[:fill])

    def _bin(self, values: np.ndarray, counts: np.ndarray | int) -> None:
        if np.isnan(values).any():
            raise ValueError("GapHistogram: NaN gap recorded")
        weights = np.broadcast_to(np.asarray(counts, dtype=np.float64), values.shape)
        if (weights < 0).any():
            raise ValueError("GapHistogram: negative count recorded")
        keep = weights > 0
        if not keep.all():
            values, weights = values[keep], weights[keep]
        if len(values) == 0:
            return
        # Clip before the log: zero or negative gaps land in the first bin, huge ones in the last.
        logs = np.log(np.clip(values, MIN_GAP_S, MAX_GAP_S))
        index = ((logs - _LOG_MIN) * _INV_LOG_RATIO).astype(np.int64)
        np.clip(index, 0, NUM_BINS - 1, out=index)
        self._bins += np.bincount(index, weights=weights, minlength=NUM_BINS)
        self._count += int(weights.sum())
        self._sum += float(np.dot(values, weights))
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))
        self._cum = None

    # ---------------------------------------------------------------- reading
    @property
    def count(self) -> int:
        """Number of gaps recorded (with their counts)."""
        self._flush()
        return self._count

    @property
    def sum_s(self) -> float:
        """Sum of all gaps recorded (s), exact up to float rounding."""
        self._flush()
        return self._sum

    def mean(self) -> float:
        """Exact mean gap (s); NaN when empty."""
        self._flush()
        return self._sum / self._count if self._count else math.nan

    def min(self) -> float:
        """Smallest gap recorded (s); NaN when empty."""
        self._flush()
        return self._min if self._count else math.nan

    def max(self) -> float:
        """Largest gap recorded (s); NaN when empty."""
        self._flush()
        return self._max if self._count else math.nan

    def quantile(self, q: float | np.ndarray) -> float | np.ndarray:
        """Gap (s) at quantile(s) ``q`` in [0, 1], accurate to ``RELATIVE_RESOLUTION``.

        Same convention as ``numpy.quantile``'s default: rank ``q × (count − 1)``, linear
        interpolation between the two order statistics around it. NaN when empty.
        """
        self._flush()
        q_arr = np.asarray(q, dtype=np.float64)
        if np.any((q_arr < 0) | (q_arr > 1)):
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        if self._count == 0:
            result = np.full(q_arr.shape, math.nan)
        else:
            rank = q_arr * (self._count - 1)
            low = np.floor(rank)
            high = np.minimum(low + 1, self._count - 1)
            v_low = self._order_statistic(low)
            v_high = self._order_statistic(high)
            result = v_low + (rank - low) * (v_high - v_low)
        return float(result) if result.ndim == 0 else result

    def _order_statistic(self, k: np.ndarray) -> np.ndarray:
        """Estimated value of the ``k``-th smallest gap (0-based), exact at both ends."""
        if self._cum is None:
            self._cum = np.cumsum(self._bins)
        cum = self._cum
        b = np.searchsorted(cum, k, side="right")
        before = np.where(b > 0, cum[np.maximum(b - 1, 0)], 0.0)
        # The c gaps of a bin sit at evenly spaced fractions (j + 0.5) / c of its log-width.
        fraction = (k - before + 0.5) / self._bins[b]
        value = BIN_EDGES_S[b] * np.exp(fraction * _LOG_RATIO)
        value = np.clip(value, self._min, self._max)
        value = np.where(k <= 0, self._min, value)
        return np.where(k >= self._count - 1, self._max, value)

    def __getstate__(self) -> dict:
        # Pickled (e.g. sent back from a sweep worker) without the buffer, and only the
        # occupied range of bins: a typical gap distribution spans a few hundred bins.
        self._flush()
        nonzero = np.flatnonzero(self._bins)
        first, last = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)
        return {
            "first_bin": first,
            "bins": self._bins[first:last].copy(),
            "count": self._count,
            "sum": self._sum,
            "min": self._min,
            "max": self._max,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        first = state["first_bin"]
        self._bins[first : first + len(state["bins"])] = state["bins"]
        self._count, self._sum = state["count"], state["sum"]
        self._min, self._max = state["min"], state["max"]

    def __repr__(self) -> str:
        return f"GapHistogram(count={self.count}, mean_s={self.mean():.6g})"
