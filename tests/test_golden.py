"""Golden summaries: every shipped scenario gives the stored result for its seed.

A change meant to move results regenerates them (``python tests/golden/regenerate.py``)
and says why in its commit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.golden.regenerate import GOLDEN, ROOT, golden_summary

SCENARIOS = sorted((ROOT / "workloads").glob("*.yaml"))
#: Shipped scenarios whose run takes several seconds (a simulated day of traffic).
SLOW = {"daily_cycle"}


def _differences(expected, actual, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing" for k in expected.keys() - actual.keys()]
        out += [f"{path}.{k}: new" for k in actual.keys() - expected.keys()]
        for key in expected.keys() & actual.keys():
            out += _differences(expected[key], actual[key], f"{path}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(actual)} items, expected {len(expected)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += _differences(e, a, f"{path}[{i}]")
        return out
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        if math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(expected) and math.isnan(actual)
        ):
            return []
        return [f"{path}: {actual!r}, expected {expected!r}"]
    return [] if expected == actual else [f"{path}: {actual!r}, expected {expected!r}"]


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in SCENARIOS],
    ids=[p.stem for p in SCENARIOS],
)
def test_shipped_scenario_matches_its_golden_summary(scenario: Path):
    expected = json.loads((GOLDEN / f"{scenario.stem}.json").read_text())
    diffs = _differences(expected, golden_summary(scenario))
    assert not diffs, "\n".join(diffs[:20])
