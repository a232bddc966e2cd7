"""Grouped expert GEMM efficiency curves: the YAML section, interpolation and lookup."""

from __future__ import annotations

import math

import pytest
import yaml

from simulator.costmodel.moe import (
    SECTION,
    GroupedGemmCurve,
    curve_for_calibration,
    expert_gemm_s,
    load_curve,
)
from simulator.errors import UserError

SECTION_BODY = {
    "source": "test rows",
    "bf16": {"tokens_per_expert": [1, 4, 64], "efficiency": [0.01, 0.04, 0.64]},
}


def curve() -> GroupedGemmCurve:
    return GroupedGemmCurve.from_section(SECTION_BODY, where="test")


def test_log_log_interpolation_and_clamping():
    c = curve()
    assert c.efficiency("bf16", 4) == pytest.approx(0.04)
    # Half-way in log(tokens) between 1 and 4 is 2: half-way in log(eff), the geometric mean.
    assert c.efficiency("bf16", 2) == pytest.approx(math.sqrt(0.01 * 0.04))
    assert c.efficiency("bf16", 16) == pytest.approx(0.16)
    assert c.efficiency("bf16", 0.25) == pytest.approx(0.01)  # held at the ends
    assert c.efficiency("bf16", 4096) == pytest.approx(0.64)
    assert c.efficiency("bfloat16", 4) == pytest.approx(0.04)  # aliases name the same format
    assert c.efficiency("fp8", 4) is None  # no curve: priced as a dense GEMM


def test_round_trip_through_yaml(tmp_path):
    path = tmp_path / "gpu-moe.yaml"
    path.write_text(yaml.safe_dump({"metadata": {"note": "x"}, SECTION: curve().to_section()}))
    again = load_curve(path)
    assert again is not None and again.source == "test rows"
    assert again.efficiency("bf16", 8) == pytest.approx(curve().efficiency("bf16", 8))


def test_calibration_finds_its_own_section_or_the_file_beside_it(tmp_path):
    calibration = tmp_path / "gpu.yaml"
    calibration.write_text(yaml.safe_dump({"params": {"gemm_efficiency": 0.7}}))
    assert curve_for_calibration(calibration) is None
    assert curve_for_calibration(None) is None
    (tmp_path / "gpu-moe.yaml").write_text(yaml.safe_dump({SECTION: SECTION_BODY}))
    assert curve_for_calibration(calibration).efficiency("bf16", 1) == pytest.approx(0.01)
    own = dict(SECTION_BODY, bf16={"tokens_per_expert": [1], "efficiency": [0.5]})
    calibration.write_text(yaml.safe_dump({"params": {}, SECTION: own}))
    assert curve_for_calibration(calibration).efficiency("bf16", 1) == pytest.approx(0.5)


def test_expert_gemm_time_is_flops_over_peak_times_efficiency():
    c = curve()
    # 64 rows on 16 active experts: 4 per expert, efficiency 0.04.
    t = expert_gemm_s(c, "bf16", 1e15, flops=4e12, rows=64, experts_active=16)
    assert t == pytest.approx(4e12 / (1e15 * 0.04))
    assert expert_gemm_s(c, "bf16", 1e15, flops=0.0, rows=0, experts_active=0) == 0.0
    assert expert_gemm_s(c, "fp8", 1e15, flops=1.0, rows=1, experts_active=1) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"bf16": SECTION_BODY["bf16"]}, "source"),
        ({"source": "s"}, "no curve"),
        ({"source": "s", "bf17": SECTION_BODY["bf16"]}, "bf17"),
        ({"source": "s", "bf16": {"tokens_per_expert": [1, 2]}}, "exactly"),
        ({"source": "s", "bf16": {"tokens_per_expert": [2, 1], "efficiency": [0.1, 0.2]}}, "incr"),
        ({"source": "s", "bf16": {"tokens_per_expert": [1, 2], "efficiency": [0.1]}}, "length"),
        ({"source": "s", "bf16": {"tokens_per_expert": [1], "efficiency": [2.0]}}, "(0, 1.5]"),
        ({"source": "s", "bf16": {"tokens_per_expert": ["a"], "efficiency": [0.1]}}, "number"),
        ({**SECTION_BODY, "latency_s": -1e-6}, "latency_s"),
        ({**SECTION_BODY, "routing": {"latency_s": 1e-5}}, "s_per_row_element"),
    ],
)
def test_bad_sections_name_the_field(body, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("]", r"\]")):
        GroupedGemmCurve.from_section(body, where="f.yaml")


def _synthetic_rows(latency_s: float, eff) -> list[dict]:
    """Grouped GEMM rows timed as ``latency + work / eff(tokens per expert)``."""
    from simulator.specs.catalog import load_gpu

    peak = load_gpu("h100-sxm").flops_for("bf16")
    rows = []
    for k, n in ((2048, 1536), (4096, 3072)):
        for groups, m, kind in [(64, 2**i, "grouped_gemm") for i in range(8)] + [
            (g, 1, "grouped_gemm_active") for g in (4, 8, 16)
        ]:
            flops = 2.0 * groups * m * k * n
            ms = (latency_s + flops / (peak * eff(m))) * 1e3
            rows.append(
                {"kind": kind, "rows": groups * m, "experts": groups, "tokens_per_expert": m}
                | {"k": k, "n": n, "ms": ms, "dtype": "bf16"}
            )
    return rows


def test_fit_recovers_a_known_curve_latency_and_routing():
    from simulator.calibrate.moe_fit import fit_curve
    from simulator.specs.catalog import load_gpu

    def eff(m):
        return min(0.0025 * m, 0.6)

    rows = _synthetic_rows(12e-6, eff)
    routing = (40e-6, 1e-11, 5e-11)
    for tokens, hidden, experts in ((1, 2048, 128), (64, 2048, 128), (4096, 4096, 8)):
        ms = 1e3 * (routing[0] + routing[1] * tokens * 8 * hidden + routing[2] * tokens * experts)
        rows.append(
            {"kind": "moe_routing", "tokens": tokens, "rows": tokens * 8, "hidden": hidden}
            | {"experts": experts, "ms": ms}
        )
    curve = fit_curve(rows, load_gpu("h100-sxm"), "synthetic")
    assert curve.latency_s == pytest.approx(12e-6, abs=0.05e-6)
    for m in (1, 8, 128):
        assert curve.efficiency("bf16", m) == pytest.approx(eff(m), rel=1e-3)
    got = curve.routing
    assert (got.latency_s, got.s_per_row_element, got.s_per_logit) == pytest.approx(routing)
