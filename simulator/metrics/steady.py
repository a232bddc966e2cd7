"""Steady-state statistics of a run: where the warm-up ends, and how precise a percentile is.

**Warm-up (MSER-5).** A run starts empty, so its first requests see a shorter queue than the
steady state. ``mser_truncation`` applies the Marginal Standard Error Rule to a series in
arrival order (White 1997; Hoad, Robinson & Davies 2010): the series is averaged in batches of
``MSER_BATCH`` observations ``z_1..z_k``, and the warm-up is the ``d`` batches that minimise
``MSER(d) = sum_{j>d} (z_j - mean_{j>d} z)^2 / (k - d)^2``, the squared standard error of
the mean of what is kept, searched over the first half of the series. A minimum on the
half-way boundary means the series has not settled within the run: no steady state
(``steady`` False).

**Percentile intervals.** Latencies of consecutive requests are correlated (they share the
queue), so the textbook order-statistic interval, which assumes independent samples, is too
narrow. ``quantile_interval`` inverts an interval of the distribution function instead
(Woodruff's method): at the sample percentile ``q`` the fraction of requests at or below it,
``F(q) = p``, is a mean of indicators, whose standard error comes from *batch means* of those
indicators over ``BATCHES_PER_RUN`` consecutive batches of each run (every replication adds
its own batches). The interval is ``[Q(p - t se), Q(p + t se)]`` with ``Q`` the sample
quantile function and ``t`` Student's quantile with (batches - 1) degrees of freedom; it
never leaves the range of the data, and its upper end is unbounded (``inf``) when
``p + t se`` reaches 1: too few requests to bound that percentile from above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Observations averaged into one batch before MSER is applied (MSER-5).
MSER_BATCH = 5
#: Fewest batches of MSER-5 for the rule to be applied (shorter series: no warm-up removed).
MSER_MIN_BATCHES = 10
#: Batches each run is cut into for batch-means standard errors.
BATCHES_PER_RUN = 10
#: Fewest observations per batch; shorter runs get fewer batches.
MIN_BATCH_SIZE = 5
#: Two-sided confidence of every interval reported.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Truncation:
    """Where the steady state starts: keep observations ``index`` onwards."""

    index: int
    steady: bool


def mser_truncation(series: np.ndarray, batch: int = MSER_BATCH) -> Truncation:
    """MSER-``batch`` warm-up of ``series`` (see the module docstring)."""
    values = np.asarray(series, dtype=np.float64)
    k = len(values) // batch
    if k < MSER_MIN_BATCHES:
        return Truncation(0, True)
    z = values[: k * batch].reshape(k, batch).mean(axis=1)
    # sums over the kept tail z_d..z_{k-1} for every d, from reversed cumulative sums
    tail_sum = np.cumsum(z[::-1])[::-1]
    tail_sq = np.cumsum((z * z)[::-1])[::-1]
    kept = np.arange(k, 0, -1, dtype=np.float64)
    spread = np.maximum(tail_sq - tail_sum * tail_sum / kept, 0.0)
    # Only the first half is searched (the statistic of a short tail is unstable); a
    # minimum on that boundary means the series is still moving: no steady state.
    half = k // 2
    mser = spread[: half + 1] / kept[: half + 1] ** 2
    d = int(np.argmin(mser))
    return Truncation(d * batch, d < half)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval (``high`` may be ``inf``)."""

    estimate: float
    low: float
    high: float
    #: Observations and batches the interval rests on.
    n: int
    batches: int

    def as_list(self) -> list[float | None]:
        """``[low, high]`` for JSON (None for an unbounded end)."""
        return [_finite_or_none(self.low), _finite_or_none(self.high)]

    def decide(self, threshold: float) -> bool | None:
        """True when the whole interval is at or below ``threshold``, False when it is all
        above, None when it straddles it (or is empty)."""
        if math.isnan(self.estimate):
            return None
        if self.high <= threshold:
            return True
        if self.low > threshold:
            return False
        return None


NO_DATA = Interval(math.nan, math.nan, math.nan, 0, 0)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _batch_starts(count: int) -> np.ndarray:
    """Start indices of the batches ``count`` values are cut into (as ``np.array_split``)."""
    batches = max(1, min(BATCHES_PER_RUN, count // MIN_BATCH_SIZE))
    base, extra = divmod(count, batches)
    sizes = np.full(batches, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate([[0], np.cumsum(sizes)[:-1]])


def _runs(runs: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(runs, np.ndarray):
        runs = [runs]
    return [r[np.isfinite(r)] for r in (np.asarray(x, dtype=np.float64) for x in runs)]


@lru_cache(maxsize=256)
def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student's t quantile for ``confidence`` with ``dof`` degrees of freedom."""
    # scipy.stats.t.ppf is this function of scipy.special (the same value), which loads in a
    # fraction of scipy.stats' time
    from scipy.special import stdtrit

    return float(stdtrit(max(dof, 1), 0.5 + confidence / 2))


def _batch_mean_se(runs: list[np.ndarray], fn) -> tuple[float, int]:
    """Standard error of the pooled mean of ``fn(values)`` from batch means, and the
    number of batches."""
    means, sizes = [], []
    for values in runs:
        if not len(values):
            continue
        starts = _batch_starts(len(values))
        counts = np.diff(np.append(starts, len(values)))
        means.append(np.add.reduceat(fn(values), starts) / counts)
        sizes.append(counts)
    if not means:
        return math.inf, 0
    means_arr = np.concatenate(means)
    sizes_arr = np.concatenate(sizes).astype(np.float64)
    b = len(means_arr)
    if b < 2:
        return math.inf, b
    pooled = float(np.dot(means_arr, sizes_arr) / sizes_arr.sum())
    # variance of a batch mean scaled to the mean batch size, over b batches
    scale = sizes_arr / sizes_arr.mean()
    var_batch = float(np.dot(scale, (means_arr - pooled) ** 2) / (b - 1))
    return math.sqrt(var_batch / b), b


def quantile_interval(
    runs: Sequence[np.ndarray] | np.ndarray, percentile: float, confidence: float = CONFIDENCE
) -> Interval:
    """``percentile`` (0-100) of the pooled values of ``runs`` (each run's values in time
    order), with a batch-means Woodruff interval (see the module docstring)."""
    parts = _runs(runs)
    pooled = np.concatenate(parts) if parts else np.empty(0)
    n = len(pooled)
    if n == 0:
        return NO_DATA
    p = percentile / 100.0
    estimate = float(np.quantile(pooled, p))
    if p >= 1.0:
        return Interval(estimate, estimate, math.inf, n, 0)
    se, b = _batch_mean_se(parts, lambda v: (v <= estimate).astype(np.float64))
    # Positive correlation only widens: never narrower than independent sampling.
    se = max(se if math.isfinite(se) else 0.0, math.sqrt(p * (1 - p) / n))
    t = t_quantile(confidence, b - 1)
    lo_p, hi_p = p - t * se, p + t * se
    low = float(np.quantile(pooled, lo_p)) if lo_p > 0 else float(pooled.min())
    high = float(np.quantile(pooled, hi_p)) if hi_p < 1 else math.inf
    return Interval(estimate, min(low, estimate), max(high, estimate), n, b)


def mean_interval(
    runs: Sequence[np.ndarray] | np.ndarray, confidence: float = CONFIDENCE
) -> Interval:
    """Mean of the pooled values with a batch-means Student-t interval, kept within the
    range of the data."""
    parts = _runs(runs)
    pooled = np.concatenate(parts) if parts else np.empty(0)
    if len(pooled) == 0:
        return NO_DATA
    estimate = float(pooled.mean())
    se, b = _batch_mean_se(parts, lambda v: v)
    if not math.isfinite(se):
        return Interval(estimate, float(pooled.min()), float(pooled.max()), len(pooled), b)
    half = t_quantile(confidence, b - 1) * se
    low = max(estimate - half, float(pooled.min()))
    high = min(estimate + half, float(pooled.max()))
    return Interval(estimate, low, high, len(pooled), b)


def statistic_interval(
    runs: Sequence[np.ndarray] | np.ndarray, key: str, confidence: float = CONFIDENCE
) -> Interval:
    """Interval of a statistic named as in an SLO: ``mean``, ``max`` or ``pNN``. A maximum
    has no interval (no amount of data bounds it): it is its own point estimate."""
    if key == "mean":
        return mean_interval(runs, confidence)
    if key == "max":
        found = quantile_interval(runs, 100.0, confidence)
        return Interval(found.estimate, found.estimate, found.estimate, found.n, 0)
    return quantile_interval(runs, float(key.removeprefix("p")), confidence)
