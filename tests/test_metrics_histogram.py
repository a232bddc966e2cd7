"""GapHistogram: quantiles against numpy, counts, exact mean, merging, edge bins, speed."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.metrics import GapHistogram
from simulator.metrics.histogram import BUFFER_SIZE, MAX_GAP_S, MIN_GAP_S, RELATIVE_RESOLUTION

QS = np.array([0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0])


def _filled(values: np.ndarray, chunk: int = 256) -> GapHistogram:
    hist = GapHistogram()
    for i in range(0, len(values), chunk):
        hist.add(values[i : i + chunk])
    return hist


@pytest.mark.parametrize("n", [1, 2, 7, 100, 5_000, 300_000])
def test_quantiles_match_numpy_on_lognormal(n):
    values = np.random.default_rng(n).lognormal(mean=-4.0, sigma=1.2, size=n)
    hist = _filled(values)
    np.testing.assert_allclose(hist.quantile(QS), np.quantile(values, QS), rtol=2e-3)
    assert hist.count == n


def test_bin_resolution_is_within_spec():
    values = np.random.default_rng(3).lognormal(-3, 2, 100_000)
    rel_err = np.abs(_filled(values).quantile(QS) / np.quantile(values, QS) - 1)
    assert rel_err.max() <= RELATIVE_RESOLUTION


def test_scalar_quantile_is_a_float():
    hist = _filled(np.array([0.01, 0.02, 0.03]))
    assert isinstance(hist.quantile(0.5), float)
    assert hist.quantile(0.5) == pytest.approx(0.02, rel=1e-3)


def test_mean_count_min_max_are_exact():
    values = np.random.default_rng(0).uniform(0.001, 0.1, 10_001)
    hist = _filled(values, chunk=97)
    assert hist.count == len(values)
    assert hist.mean() == pytest.approx(values.mean(), rel=1e-12)
    assert hist.min() == values.min()
    assert hist.max() == values.max()
    assert hist.quantile(0.0) == values.min()
    assert hist.quantile(1.0) == values.max()


def test_counts_array_int_and_scalar_path_equal_repeated_values():
    rng = np.random.default_rng(5)
    values = rng.lognormal(-4, 0.5, 300)
    counts = rng.integers(0, 50, 300)
    expanded = np.repeat(values, counts)

    with_counts = GapHistogram()
    with_counts.add(values, counts)
    scalar = GapHistogram()
    for v, c in zip(values, counts, strict=True):
        scalar.add_value(float(v), int(c))
    int_count = GapHistogram()
    int_count.add(values, 3)

    for hist in (with_counts, scalar):
        assert hist.count == counts.sum()
        assert hist.mean() == pytest.approx(expanded.mean(), rel=1e-12)
        np.testing.assert_allclose(hist.quantile(QS), np.quantile(expanded, QS), rtol=2e-3)
    assert int_count.count == 900
    np.testing.assert_allclose(
        int_count.quantile(QS), np.quantile(np.repeat(values, 3), QS), rtol=2e-3
    )


def test_buffer_overflow_and_large_arrays():
    values = np.random.default_rng(9).lognormal(-4, 1, 3 * BUFFER_SIZE + 17)
    hist = GapHistogram()
    hist.add(values[:100])
    hist.add(values[100 : 2 * BUFFER_SIZE + 100])  # larger than the buffer
    for v in values[2 * BUFFER_SIZE + 100 :]:
        hist.add_value(float(v), 1)  # crosses a flush
    assert hist.count == len(values)
    np.testing.assert_allclose(hist.quantile(QS), np.quantile(values, QS), rtol=2e-3)


def test_merge_equals_adding_everything():
    rng = np.random.default_rng(1)
    a_values, b_values = rng.lognormal(-4, 1, 5000), rng.lognormal(-2, 1, 3000)
    a, b = _filled(a_values), _filled(b_values)
    a.merge(b)
    both = np.concatenate([a_values, b_values])
    assert a.count == len(both)
    assert b.count == len(b_values)
    assert a.mean() == pytest.approx(both.mean(), rel=1e-12)
    np.testing.assert_allclose(a.quantile(QS), np.quantile(both, QS), rtol=2e-3)


def test_values_outside_range_clamp_to_edge_bins():
    hist = GapHistogram()
    hist.add(np.array([0.0, 1e-9, 1e-6, 1.0, 1e6]))
    assert hist.count == 5
    assert hist.quantile(0.0) == 0.0
    assert hist.quantile(1.0) == 1e6
    # 1 ns falls in the first bin, which spans [1 µs, 1.001 µs): its estimate is clamped there.
    assert MIN_GAP_S <= hist.quantile(0.25) <= MIN_GAP_S * (1 + RELATIVE_RESOLUTION)
    assert hist.quantile(0.75) == pytest.approx(1.0, rel=RELATIVE_RESOLUTION)
    assert MAX_GAP_S < 1e6  # the largest value was clamped into the last bin, max stays exact


def test_empty_histogram_and_bad_input():
    hist = GapHistogram()
    assert hist.count == 0
    assert math.isnan(hist.mean())
    assert math.isnan(hist.quantile(0.5))
    assert np.isnan(hist.quantile(np.array([0.1, 0.9]))).all()
    with pytest.raises(ValueError, match="quantile"):
        hist.quantile(1.5)
    hist.add(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        hist.mean()


def test_zero_counts_are_ignored():
    hist = GapHistogram()
    hist.add(np.array([0.5, 100.0]), np.array([4, 0]))
    assert hist.count == 4
    assert hist.max() == 0.5


def test_add_does_not_bin_on_every_call(monkeypatch):
    """Adds only copy into the buffer; binning happens once per BUFFER_SIZE values. (Speed
    itself is measured by a benchmark, not asserted here: shared test machines vary.)"""
    calls = []
    original = GapHistogram._bin

    def counting_bin(self, values, counts):
        calls.append(len(values))
        original(self, values, counts)

    monkeypatch.setattr(GapHistogram, "_bin", counting_bin)
    values = np.random.default_rng(0).lognormal(-4, 1, 256)
    hist = GapHistogram()
    adds = 4 * BUFFER_SIZE // 256
    for _ in range(adds):
        hist.add(values, 2)
    assert calls == [BUFFER_SIZE] * 3  # the fourth buffer-full is still waiting
    assert hist.count == adds * 256 * 2  # reading flushes it
    assert calls == [BUFFER_SIZE] * 4


def test_pickle_round_trip_is_small_and_equal():
    import pickle

    values = np.random.default_rng(2).lognormal(-4, 0.3, 10_000)
    hist = _filled(values)
    hist.add(values[:10])  # still in the buffer when pickled
    data = pickle.dumps(hist)
    assert len(data) < 100_000
    restored = pickle.loads(data)
    assert restored.count == hist.count == 10_010
    assert restored.mean() == hist.mean()
    np.testing.assert_array_equal(restored.quantile(QS), hist.quantile(QS))
    restored.add_value(1.0, 1)
    assert restored.max() == 1.0
    assert pickle.loads(pickle.dumps(GapHistogram())).count == 0


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=MIN_GAP_S, max_value=MAX_GAP_S, allow_nan=False),
        min_size=1,
        max_size=300,
    ),
    counts=st.integers(min_value=1, max_value=5),
)
def test_property_quantiles_monotone_bounded_and_accurate(values, counts):
    array = np.array(values)
    hist = GapHistogram()
    hist.add(array, counts)
    got = hist.quantile(QS)
    assert np.all(np.diff(got) >= 0)
    assert got[0] == array.min() and got[-1] == array.max()
    expected = np.quantile(np.repeat(array, counts), QS)
    # Each order statistic is placed within its 0.1%-wide bin; interpolation between two of
    # them is then off by at most 0.1% of the larger.
    assert np.all(
        np.abs(got - expected) <= RELATIVE_RESOLUTION * np.maximum(got, expected) * 1.0001
    )
