"""How well measured fused-MoE curves extrapolate past their largest measured token count.

Attention-data-parallel steps send every rank's tokens through one MoE layer: 8 ranks with
a 9,216-token budget each make 73,728 tokens, 4.5 times the largest count AIConfigurator's
``moe_perf`` tables measure (16,384). Past the last point a curve grows in proportion to the
tokens (``costmodel/fused_moe.py``); this script judges from what level, on the kernel rows
alone: every curve of the shipped engine calibrations (``moe_measured``) is cut before its
last ``--cut`` measured points, extrapolated to them, and compared with what was measured.

Two rules: ``last point`` (the level of the last measured point kept) and ``tail line``
(servesim's: the log-log least-squares line through the last ``TAIL_POINTS`` points sets
the level, never below the last measured time). Reported: median and p90 |error| and the
median signed error, over all cut points and over those whose kept curve ends at 512 or
more tokens per expert (the compute-bound end that long prefills reach).

    python benchmarks/moe_extrapolation.py [--cut 2]

Runtime: about 20 s (reads 28 calibration files).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator.costmodel.fused_moe import TAIL_POINTS, FusedMoeCurve  # noqa: E402

ENGINES = ROOT / "hardware_specs" / "calibration" / "engines"
#: Tokens per expert at the end of the kept curve from which a point counts as compute-bound.
SATURATED_TOKENS_PER_EXPERT = 512


def _curves(path: Path):
    """(layout key, [(tokens, seconds)]) of every measured curve in one calibration file."""
    section = (yaml.safe_load(path.read_text()) or {}).get("moe_measured") or {}
    for dtype, by_routing in section.items():
        if dtype == "source" or not isinstance(by_routing, dict):
            continue
        for body in by_routing.values():
            for key, values in body["curves_us"].items():
                points = [
                    (float(t), v * 1e-6) for t, v in zip(body["tokens"], values, strict=False) if v
                ]
                yield key, points


def _tokens_per_expert(key: str, tokens: float) -> float:
    top, experts = map(int, re.search(r"top(\d+)/(\d+)", key).groups())
    return tokens * top / experts


def errors(cut: int) -> dict[str, dict[str, list[float]]]:
    """Signed % errors per rule, for all cut points and the compute-bound ones."""
    out: dict[str, dict[str, list[float]]] = {"all": {}, "compute-bound": {}}
    for path in sorted(ENGINES.glob("*/*/*.yaml")):
        for key, points in _curves(path):
            if len(points) < TAIL_POINTS + cut + 1:
                continue
            kept, held = points[:-cut], points[-cut:]
            curve = FusedMoeCurve.from_points([t for t, _ in kept], [s for _, s in kept])
            last_t, last_s = kept[-1]
            groups = ["all"]
            if _tokens_per_expert(key, last_t) >= SATURATED_TOKENS_PER_EXPERT:
                groups.append("compute-bound")
            for t, measured in held:
                predictions = {
                    "last point": last_s * t / last_t,
                    "tail line": curve.seconds(t),
                }
                for rule, predicted in predictions.items():
                    for group in groups:
                        out[group].setdefault(rule, []).append((predicted / measured - 1) * 100)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cut", type=int, default=2, help="measured points cut from each end")
    args = parser.parse_args(argv)
    print(f"curves cut before their last {args.cut} points; tail line over {TAIL_POINTS} points")
    print(f"{'points':<14} {'rule':<11} {'n':>6} {'median |e|':>11} {'p90 |e|':>8} {'signed':>8}")
    for group, by_rule in errors(args.cut).items():
        for rule, values in by_rule.items():
            e = np.asarray(values)
            med, p90 = np.median(np.abs(e)), np.percentile(np.abs(e), 90)
            signed = np.median(e)
            print(f"{group:<14} {rule:<11} {len(e):>6} {med:>10.1f}% {p90:>7.1f}% {signed:>+7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
