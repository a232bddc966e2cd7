"""Length distributions: sample moments and percentiles against analytical values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from scipy import stats

from simulator.workload.config import LengthConfig
from simulator.workload.distributions import build_sampler, correlated_uniforms

SAMPLES = 200_000
LENGTH = TypeAdapter(LengthConfig)


def draw(spec: dict, *, integer: bool = True, seed: int = 1, count: int = SAMPLES) -> np.ndarray:
    dumped = LENGTH.validate_python(spec).model_dump()
    return build_sampler(dumped, integer=integer).draw(np.random.default_rng(seed), count)


def assert_mean_close(values: np.ndarray, expected: float, std: float) -> None:
    """Within 5 standard errors of the mean (a fixed seed makes the test deterministic)."""
    tolerance = 5 * std / math.sqrt(len(values))
    assert abs(values.mean() - expected) < tolerance, (values.mean(), expected, tolerance)


def assert_percentiles_close(values: np.ndarray, dist, rel: float = 0.02) -> None:
    for q in (0.1, 0.5, 0.9, 0.99):
        assert np.quantile(values, q) == pytest.approx(dist.ppf(q), rel=rel, abs=1.0), q


def test_fixed_is_constant():
    values = draw({"distribution": "fixed", "value": 200})
    assert values.dtype == np.int64
    assert (values == 200).all()


def test_uniform_integer_moments():
    values = draw({"distribution": "uniform", "min": 100, "max": 300})
    assert values.min() == 100 and values.max() == 300
    dist = stats.randint(100, 301)
    assert_mean_close(values, dist.mean(), dist.std())
    assert values.var() == pytest.approx(dist.var(), rel=0.02)
    # Every whole number is equally likely, the end points included.
    counts = np.bincount(values - 100)
    assert counts.min() > 0.8 * SAMPLES / 201


def test_normal_far_from_floor_matches_normal():
    values = draw({"distribution": "normal", "mean": 1000, "std": 200})
    dist = stats.norm(1000, 200)
    assert_mean_close(values, dist.mean(), dist.std())
    assert values.std() == pytest.approx(200, rel=0.01)
    assert_percentiles_close(values, dist)


def test_normal_is_truncated_at_one_token():
    values = draw({"distribution": "normal", "mean": 20, "std": 30})
    assert values.min() >= 1
    # Truncation (not clipping): no pile of mass at the floor, mean of the truncated normal.
    dist = stats.truncnorm((1 - 20) / 30, np.inf, loc=20, scale=30)
    assert_mean_close(values, dist.mean(), dist.std())
    assert (values == 1).mean() < 0.02


def test_lognormal_mean_is_the_mean_in_tokens():
    values = draw({"distribution": "lognormal", "mean": 1000, "sigma": 0.5})
    mu = math.log(1000) - 0.5**2 / 2
    dist = stats.lognorm(s=0.5, scale=math.exp(mu))
    assert dist.mean() == pytest.approx(1000)
    assert_mean_close(values, 1000, dist.std())
    assert values.var() == pytest.approx(dist.var(), rel=0.03)
    assert_percentiles_close(values, dist)


def test_exponential_duration_is_real_valued():
    values = draw({"distribution": "exponential", "mean": 3.0}, integer=False)
    assert values.dtype == np.float64 and values.min() >= 0
    assert_mean_close(values, 3.0, 3.0)
    assert_percentiles_close(values, stats.expon(scale=3.0), rel=0.03)


def test_zipf_matches_bounded_zipf():
    values = draw({"distribution": "zipf", "exponent": 1.2, "max": 1000})
    support = np.arange(1, 1001)
    pmf = support**-1.2 / (support**-1.2).sum()
    mean = (support * pmf).sum()
    std = math.sqrt(((support - mean) ** 2 * pmf).sum())
    assert_mean_close(values, mean, std)
    assert (values == 1).mean() == pytest.approx(pmf[0], abs=5 * math.sqrt(pmf[0] / SAMPLES))
    assert values.max() <= 1000


def test_clipping_bounds_are_respected():
    values = draw(
        {"distribution": "lognormal", "mean": 1000, "sigma": 1.0, "min": 200, "max": 4000}
    )
    assert values.min() == 200 and values.max() == 4000
    # Clipping piles the tails onto the bounds: P(X < 200) of the lognormal lands on 200.
    dist = stats.lognorm(s=1.0, scale=math.exp(math.log(1000) - 0.5))
    assert (values == 200).mean() == pytest.approx(dist.cdf(199.5), abs=0.005)


def test_empirical_samples_resamples_recorded_values():
    recorded = [10, 20, 20, 50]
    values = draw({"distribution": "empirical", "samples": recorded})
    assert set(values.tolist()) == {10, 20, 50}
    assert (values == 20).mean() == pytest.approx(0.5, abs=0.01)
    assert_mean_close(values, np.mean(recorded), np.std(recorded))


def test_empirical_histogram_bins_and_discrete(tmp_path):
    binned = draw(
        {"distribution": "empirical", "histogram": {"edges": [0, 100, 1000], "counts": [1, 3]}}
    )
    assert (binned <= 100).mean() == pytest.approx(0.25, abs=0.01)
    # Uniform within a bin: mean of bin centres weighted by counts.
    assert binned.mean() == pytest.approx((50 * 1 + 550 * 3) / 4, rel=0.01)
    discrete = draw(
        {"distribution": "empirical", "histogram": {"values": [5, 7], "weights": [1, 1]}}
    )
    assert set(discrete.tolist()) == {5, 7}


def test_empirical_file_with_column(tmp_path):
    path = tmp_path / "lengths.csv"
    path.write_text("# recorded prompt lengths\nid,prompt\n1,100\n2,300\n")
    dumped = LENGTH.validate_python(
        {"distribution": "empirical", "file": "lengths.csv", "column": "prompt"}
    ).model_dump()
    values = build_sampler(dumped, base_dir=tmp_path).draw(np.random.default_rng(0), 10_000)
    assert set(values.tolist()) == {100, 300}


def test_copula_correlation_orders_lengths_together():
    u_prompt, u_output = correlated_uniforms(np.random.default_rng(0), SAMPLES, 0.8)
    rho = stats.spearmanr(u_prompt, u_output).statistic
    # Spearman's rho of a Gaussian copula: (6/pi) asin(r/2).
    assert rho == pytest.approx(6 / math.pi * math.asin(0.4), abs=0.01)
    independent = correlated_uniforms(np.random.default_rng(0), SAMPLES, 0.0)
    assert abs(stats.spearmanr(*independent).statistic) < 0.01


LENGTH_SPECS = st.one_of(
    st.builds(lambda v: {"distribution": "fixed", "value": v}, st.floats(0.5, 1e5)),
    st.builds(
        lambda a, w: {"distribution": "uniform", "min": a, "max": a + w},
        st.floats(0, 1e4),
        st.floats(0.01, 1e4),
    ),
    st.builds(
        lambda m, s: {"distribution": "normal", "mean": m, "std": s},
        st.floats(0.1, 1e4),
        st.floats(0.1, 1e4),
    ),
    st.builds(
        lambda m, s: {"distribution": "lognormal", "mean": m, "sigma": s},
        st.floats(0.1, 1e4),
        st.floats(0.05, 3),
    ),
    st.builds(lambda m: {"distribution": "exponential", "mean": m}, st.floats(0.1, 1e4)),
    st.builds(
        lambda e, top: {"distribution": "zipf", "exponent": e, "max": top},
        st.floats(0.1, 3),
        st.integers(1, 5000),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    spec=LENGTH_SPECS,
    low=st.none() | st.integers(0, 50),
    high=st.none() | st.integers(60, 10**5),
    seed=st.integers(0, 2**32 - 1),
)
def test_token_lengths_are_whole_within_bounds_and_reproducible(spec, low, high, seed):
    spec = (
        {**spec, "min": low, "max": high}
        if spec["distribution"] not in ("uniform", "zipf")
        else spec
    )
    dumped = LENGTH.validate_python(spec).model_dump()
    sampler = build_sampler(dumped)
    values = sampler.draw(np.random.default_rng(seed), 512)
    assert values.dtype == np.int64 and values.min() >= 1
    # Documented bounds: rounded inwards to whole tokens; the lower one wins if they cross.
    lowest = max(1, math.ceil(dumped.get("min") or 0))
    assert values.min() >= lowest
    if dumped.get("max") is not None:
        assert values.max() <= max(lowest, math.floor(dumped["max"]))
    assert np.array_equal(values, sampler.draw(np.random.default_rng(seed), 512))
