"""``docs/validation.md`` is what ``benchmarks/validation.py`` writes from stored inputs."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOC = ROOT / "docs" / "validation.md"
ROW = re.compile(
    r"^\| (.+?) \| (.+?) \| ([\d,.]+) (\S+) \| ([\d,.]+) \S+ \| ([+-][\d.]+) % "
    r"\| (fit|held out) \|(?: .* \|)?$"
)


def _load_validation():
    path = ROOT / "benchmarks" / "validation.py"
    spec = importlib.util.spec_from_file_location("servesim_validation", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("servesim_validation", module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def _rows(text: str) -> list[tuple[str, ...]]:
    return [m.groups() for line in text.splitlines() if (m := ROW.match(line))]


def test_committed_doc_rows_are_well_formed():
    text = DOC.read_text()
    rows = _rows(text)
    assert len(rows) > 500
    assert "## Summary: held-out rows" in text and "## Not expressible yet" in text
    for _config, _metric, measured, _unit, predicted, error, _status in rows:
        m, p = float(measured.replace(",", "")), float(predicted.replace(",", ""))
        assert m > 0 and p > 0
        # the error column is predicted / measured - 1 (to the printed precision)
        assert float(error) == pytest.approx((p / m - 1) * 100, abs=0.5 + 0.01 * abs(float(error)))
    assert {r[6] for r in rows} == {"fit", "held out"}


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "calibration").is_dir(), reason="shared data absent")
def test_regenerated_doc_has_the_same_measurements(tmp_path):
    validation = _load_validation()
    out = tmp_path / "validation.md"
    band = tmp_path / "error_band.yaml"
    args = ["-o", str(out), "--shared", str(SHARED), "--error-band", str(band), "--no-engines"]
    assert validation.main(args) == 0
    fresh, committed = _rows(out.read_text()), _rows(DOC.read_text())
    # Section K (benchmarks/data, minutes to simulate) is left out here; engine_rows.py
    # and its own tests cover it.
    committed = [r for r in committed if "(Offline, " not in r[1]]
    # Same configurations, metrics, measured values and fit/held-out marks; predictions may
    # move when the cost model changes, so they are regenerated, not compared.
    assert [(r[0], r[1], r[2], r[6]) for r in fresh] == [
        (r[0], r[1], r[2], r[6]) for r in committed
    ]


def test_summary_medians_follow_from_rows():
    validation = _load_validation()
    rows = [
        validation.Row("A. x", "c1", "step time", "ms", 1.0, 1.1, "held out"),
        validation.Row("A. x", "c2", "step time", "ms", 1.0, 0.7, "held out"),
        validation.Row("A. x", "c3", "step time", "ms", 1.0, 1.5, "fit"),
    ]
    [(metric, n, median, worst)] = validation.summarize(rows, lambda r: r.status == "held out")
    assert (metric, n) == ("step time", 2)
    assert median == pytest.approx(20.0) and worst == pytest.approx(30.0)


def test_every_published_serving_row_is_held_out():
    """No kernel factor is fitted on a serving row: every published serving row of the
    validation document is held out."""
    validation = _load_validation()
    cases = {c.config for c in validation.serving_cases()}
    serving = [r for r in _rows(DOC.read_text()) if r[1].startswith("output tok/s")]
    assert {r[0] for r in serving} >= cases
    assert {r[6] for r in serving} == {"held out"}


def test_max_entropy_lengths_match_the_stated_statistics():
    validation = _load_validation()
    spec = validation.max_entropy_lengths(48, 1021, 5_463_976 / 24_576)
    values = spec["histogram"]["values"]
    weights = spec["histogram"]["weights"]
    assert (values[0], values[-1], len(values)) == (48, 1021, 974)
    assert sum(v * w for v, w in zip(values, weights, strict=True)) == pytest.approx(
        222.33, abs=0.01
    )
    # mean below the middle: weights decrease with length
    assert all(a > b for a, b in itertools.pairwise(weights))
    flat = validation.max_entropy_lengths(1, 11, 6.0)["histogram"]["weights"]
    assert flat == pytest.approx([1 / 11] * 11)  # the middle as mean: uniform


def test_sustained_throughput_counts_tokens_generated_inside_the_window():
    import pandas as pd

    validation = _load_validation()
    # one request per second for 100 s, each 11 tokens over 10 s after a 1 s wait: a steady
    # 11 tokens/s once the pipeline is full, whatever the drain after the last arrival
    arrival = [float(i) for i in range(101)]
    requests = pd.DataFrame(
        {
            "arrival_s": arrival,
            "first_token_s": [a + 1.0 for a in arrival],
            "finish_s": [a + 11.0 for a in arrival],
            "output_tokens": [11] * 101,
            "rejected": [False] * 101,
        }
    )
    assert validation.sustained_output_tok_s(requests) == pytest.approx(11.0, rel=0.02)


@pytest.mark.slow
def test_the_llama_cpp_parameters_are_what_the_fit_gives():
    validation = _load_validation()
    from simulator.costmodel.profiles import load_profile

    shipped = load_profile("llama.cpp")
    for name, value in validation.fit_gguf_parameters().items():
        assert value == pytest.approx(getattr(shipped, name), rel=0.005), name
    from simulator.costmodel.ggml import ggml_format_speed

    for dtype, speed in validation.fit_format_speeds().items():
        assert speed == pytest.approx(ggml_format_speed(dtype), rel=0.005), dtype
