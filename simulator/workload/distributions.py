"""Length and think-time distributions, sampled through their inverse CDF.

Every distribution is expressed as an inverse CDF (``quantile(u)`` for ``u`` in [0, 1)),
so one uniform draw gives one value and a Gaussian copula can correlate prompt and output
lengths without caring which distributions they follow.

Specs are plain mappings (a dumped ``LengthConfig``): ``{"distribution": "lognormal",
"mean": 1000, "sigma": 0.8, "min": 16, "max": 8192}``. Token lengths are rounded to whole
tokens, clipped to ``[min, max]`` (bounds rounded inwards to whole tokens) and never below
one; durations (think times) stay real-valued and never below zero. ``normal`` is
*truncated* (conditioned) at that floor rather than clipped, so it has no pile of mass at
the floor; ``min``/``max`` clip.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import UserError
from simulator.specs.files import input_file

Quantile = Callable[[np.ndarray], np.ndarray]


def _ndtr(x):
    """The standard normal CDF (scipy.special, loaded by the workloads that need it)."""
    from scipy.special import ndtr

    return ndtr(x)


def _ndtri(p):
    """The standard normal quantile function (scipy.special, loaded when needed)."""
    from scipy.special import ndtri

    return ndtri(p)


#: Ceiling of any token length: far beyond every model's context (the engine rejects what
#: does not fit), but keeps heavy tails (lognormal with a large sigma) from overflowing int64.
TOKEN_LENGTH_CEILING = 1_000_000_000


class LengthSampler:
    """Draws token lengths (integers >= 1) or durations (floats >= 0) from one distribution."""

    def __init__(
        self, quantile: Quantile, *, minimum: float, maximum: float, integer: bool, mean: float
    ):
        self._quantile = quantile
        self.minimum, self.maximum, self.integer = minimum, maximum, integer
        #: Mean of the distribution before rounding and clipping (for documentation and tests).
        self.nominal_mean = mean

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """Values for uniforms ``u`` in [0, 1): int64 tokens or float64 seconds."""
        values = self._quantile(np.asarray(u, dtype=np.float64))
        if self.integer:
            values = np.rint(values)
        values = np.clip(values, self.minimum, self.maximum)
        return values.astype(np.int64) if self.integer else values

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` independent values."""
        return self.from_uniform(rng.random(count))


def _quantile_fixed(spec: Mapping[str, Any], floor: float) -> tuple[Quantile, float]:
    value = float(spec["value"])
    return (lambda u: np.full(u.shape, value)), value


def _quantile_uniform(spec: Mapping[str, Any], integer: bool) -> tuple[Quantile, float]:
    low, high = float(spec["min"]), float(spec["max"])
    if integer:  # every whole number in [min, max] equally likely
        low, high = _whole_bounds(low, high)
        return (lambda u: low + np.floor(u * (high - low + 1))), (low + high) / 2
    return (lambda u: low + u * (high - low)), (low + high) / 2


def _quantile_normal(spec: Mapping[str, Any], floor: float) -> tuple[Quantile, float]:
    mean, std = float(spec["mean"]), float(spec["std"])
    # Truncate below at the floor: condition on X > floor by mapping u into the survival
    # range above it. Survival (not CDF) form, so a floor far in the upper tail keeps
    # its precision (1 - cdf would round to 0).
    alpha = (floor - mean) / std
    survival_floor = float(_ndtr(-alpha))
    if survival_floor == 0.0:  # floor beyond ~37 std: all the mass sits at the floor
        return (lambda u: np.full(u.shape, floor)), floor
    truncated_mean = mean + std * _phi(alpha) / survival_floor
    return (
        lambda u: mean - std * _ndtri((1.0 - u) * survival_floor),
        truncated_mean,
    )


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _quantile_lognormal(spec: Mapping[str, Any], floor: float) -> tuple[Quantile, float]:
    mean, sigma = float(spec["mean"]), float(spec["sigma"])
    mu = math.log(mean) - 0.5 * sigma * sigma  # so that the distribution's mean is `mean`
    return (lambda u: np.exp(mu + sigma * _ndtri(u))), mean


def _quantile_exponential(spec: Mapping[str, Any], floor: float) -> tuple[Quantile, float]:
    mean = float(spec["mean"])
    return (lambda u: -mean * np.log1p(-u)), mean


def _quantile_zipf(spec: Mapping[str, Any], floor: float) -> tuple[Quantile, float]:
    exponent = float(spec["exponent"])
    low = max(1, math.ceil(float(spec.get("min") or 1)))
    high = math.floor(float(spec["max"]))
    support = np.arange(low, high + 1, dtype=np.float64)
    weights = support ** (-exponent)
    cdf = np.cumsum(weights)
    total = cdf[-1]
    cdf /= total
    mean = float((support * weights).sum() / total)
    return (
        lambda u: support[np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)]
    ), mean


def _quantile_empirical(
    spec: Mapping[str, Any], floor: float, base_dir: Path | None
) -> tuple[Quantile, float]:
    histogram = spec.get("histogram")
    if histogram:
        if histogram.get("edges") is not None:
            return _quantile_binned(histogram["edges"], histogram["counts"])
        values = np.asarray(histogram["values"], dtype=np.float64)
        weights = np.asarray(histogram["weights"], dtype=np.float64)
        order = np.argsort(values)
        values, weights = values[order], weights[order]
        cdf = np.cumsum(weights) / weights.sum()
        mean = float((values * weights).sum() / weights.sum())
        return (
            lambda u: values[np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)]
        ), mean
    if spec.get("samples") is not None:
        samples = np.sort(np.asarray(spec["samples"], dtype=np.float64))
    else:
        samples = np.sort(load_samples_file(spec["file"], spec.get("column"), base_dir))
    count = len(samples)
    # Resampling with replacement: each recorded value equally likely.
    return (lambda u: samples[np.minimum((u * count).astype(np.int64), count - 1)]), float(
        samples.mean()
    )


def _quantile_binned(edges: list[float], counts: list[float]) -> tuple[Quantile, float]:
    edges_arr = np.asarray(edges, dtype=np.float64)
    counts_arr = np.asarray(counts, dtype=np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(counts_arr) / counts_arr.sum()])
    mean = float(((edges_arr[:-1] + edges_arr[1:]) / 2 * counts_arr).sum() / counts_arr.sum())
    # Uniform within each bin: piecewise-linear inverse CDF.
    return (lambda u: np.interp(u, cdf, edges_arr)), mean


#: Most values read from an empirical samples file, and the largest value accepted.
MAX_SAMPLES = 10_000_000
MAX_SAMPLE_VALUE = 1e9


def load_samples_file(path: str, column: str | None, base_dir: Path | None) -> np.ndarray:
    """Numbers from a UTF-8 text/CSV file: one per line, or the named ``column`` of a CSV
    with header. Blank lines and lines starting with ``#`` are skipped; at most
    ``MAX_SAMPLES`` values, each from 0 to ``MAX_SAMPLE_VALUE``."""
    file = Path(path)
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    input_file(file, "empirical samples file")
    values = array("d")
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            rows = csv.reader(line for line in handle if line.strip() and not line.startswith("#"))
            col_index = 0
            for line_number, row in enumerate(rows, start=1):
                if line_number == 1 and column is not None:
                    if column not in row:
                        raise UserError(
                            f"{file}: column {column!r} not in header; columns: {', '.join(row)}"
                        )
                    col_index = row.index(column)
                    continue
                values.append(_sample_value(file, line_number, row, col_index))
                if len(values) > MAX_SAMPLES:
                    raise UserError(f"{file}: more than {MAX_SAMPLES:,} samples")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from None
    except csv.Error as exc:
        raise UserError(f"{file}: not valid CSV ({exc})") from None
    if not values:
        raise UserError(f"{file}: no samples found")
    return np.frombuffer(values, dtype=np.float64).copy()


def _sample_value(file: Path, line_number: int, row: list[str], col_index: int) -> float:
    try:
        value = float(row[col_index])
    except (ValueError, IndexError):
        raise UserError(
            f"{file}: data line {line_number}: {row[col_index : col_index + 1]!r} is not a "
            "number (give `column:` for a CSV with a header)"
        ) from None
    if not 0 <= value <= MAX_SAMPLE_VALUE:
        raise UserError(
            f"{file}: data line {line_number}: {value} must be from 0 to {MAX_SAMPLE_VALUE:g}"
        )
    return value


def build_sampler(
    spec: Mapping[str, Any] | float | int, *, integer: bool = True, base_dir: Path | None = None
) -> LengthSampler:
    """A sampler for a dumped ``LengthConfig`` (a bare number means ``fixed``).

    ``integer=True`` gives token lengths (rounded, >= 1); ``False`` gives durations (>= 0).
    """
    if isinstance(spec, int | float):
        spec = {"distribution": "fixed", "value": float(spec)}
    floor = 1.0 if integer else 0.0
    kind = spec["distribution"]
    if kind == "fixed":
        quantile, mean = _quantile_fixed(spec, floor)
    elif kind == "uniform":
        quantile, mean = _quantile_uniform(spec, integer)
    elif kind == "normal":
        quantile, mean = _quantile_normal(spec, floor)
    elif kind == "lognormal":
        quantile, mean = _quantile_lognormal(spec, floor)
    elif kind == "exponential":
        quantile, mean = _quantile_exponential(spec, floor)
    elif kind == "zipf":
        quantile, mean = _quantile_zipf(spec, floor)
    elif kind == "empirical":
        quantile, mean = _quantile_empirical(spec, floor, base_dir)
    else:
        raise UserError(
            f"distribution: {kind!r} is not one of fixed, uniform, normal, "
            "lognormal, exponential, zipf, empirical"
        )
    minimum = max(floor, float(spec.get("min") or 0.0))
    maximum = math.inf if spec.get("max") is None else float(spec["max"])
    if integer:
        minimum, maximum = _whole_bounds(minimum, min(maximum, TOKEN_LENGTH_CEILING))
    return LengthSampler(
        quantile, minimum=minimum, maximum=max(minimum, maximum), integer=integer, mean=mean
    )


def _whole_bounds(low: float, high: float) -> tuple[float, float]:
    """Token bounds rounded inwards to whole tokens, at least 1; if no whole number lies
    in [low, high], the lower bound wins."""
    whole_low = max(1, math.ceil(low))
    whole_high = high if math.isinf(high) else math.floor(high)
    return whole_low, max(whole_low, whole_high)


def correlated_uniforms(
    rng: np.random.Generator, count: int, correlation: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform arrays joined by a Gaussian copula with the given normal correlation."""
    if correlation == 0.0:
        return rng.random(count), rng.random(count)
    first = rng.standard_normal(count)
    second = correlation * first + math.sqrt(1.0 - correlation**2) * rng.standard_normal(count)
    # ndtr(z) can round to exactly 1.0 far in the tail; keep u strictly below 1.
    top = np.nextafter(1.0, 0.0)
    return np.minimum(_ndtr(first), top), np.minimum(_ndtr(second), top)
