"""Does the planner's answer hold still when the scenario's run length changes?

A 70B chat service (Llama-3.1-70B, TP4 on H100, chunked prefill; lognormal prompts of
~1,000 tokens and answers of ~300; p99 TTFT 1 s and p99 TPOT 50 ms) planned for 40 req/s
with ``workload.num_requests`` at two values. A run length the user writes is a minimum:
the fewest replicas should agree within one and the maximum rate within 10 %.

Run: ``python benchmarks/plan_stability.py [--requests 1500 6000]`` (about a minute per
value on two cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = """\
name: chat70b
model: llama-3.1-70b
hardware: {gpu: h100-sxm, tensor_parallel: 4, replicas: 1, interconnect: nvlink4}
engine: {batching: chunked, max_num_seqs: 256, max_num_batched_tokens: 8192}
workload:
  arrival: {process: poisson, rate_per_s: 4}
  prompt_tokens: {distribution: lognormal, mean: 1000, sigma: 0.8}
  output_tokens: {distribution: lognormal, mean: 300, sigma: 0.5}
  num_requests: 1500
  seed: 0
slo: {ttft_ms: {p99: 1000}, tpot_ms: {p99: 50}}
cost: {gpu_hour_usd: 2.5}
plan:
  target_rate_per_s: 40
  replications: 3
"""


def plan(path: Path, requests: int) -> tuple[dict, float]:
    """The ``servesim plan --json`` answer at ``requests`` and its wall time (s)."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator.cli.main",
            "plan",
            str(path),
            "--json",
            "--quiet",
            "--set",
            f"workload.num_requests={requests}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[1500, 6000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat70b.yaml"
        path.write_text(SCENARIO)
        answers = {}
        print(
            f"{'num_requests':>12} {'replicas':>8} {'verdict':>10} {'max rate':>9} "
            f"{'knee [95 % bracket]':>24} {'wall s':>7}"
        )
        for n in args.requests:
            answer, wall = plan(path, n)
            fleet, search = answer["fewest_replicas"], answer["rate_search"]
            answers[n] = answer
            bracket = search.get("knee_ci95_per_s") or [float("nan")] * 2
            print(
                f"{n:>12,} {fleet['replicas']:>8} {fleet.get('verdict', ''):>10} "
                f"{answer['max_rate_per_s']:>9.3f} {search['knee_per_s']:>8.2f} "
                f"[{bracket[0]:.2f}, {bracket[1]:.2f}] {wall:>7.1f}"
            )
    first, *rest = args.requests
    for n in rest:
        a, b = answers[first], answers[n]
        dr = abs(a["fewest_replicas"]["replicas"] - b["fewest_replicas"]["replicas"])
        rate = abs(b["max_rate_per_s"] / a["max_rate_per_s"] - 1) * 100
        ok = dr <= 1 and rate <= 10
        print(
            f"{first} vs {n}: replicas differ by {dr}, max rate by {rate:.1f} % -> "
            f"{'holds still' if ok else 'MOVES'} (within one replica and 10 %)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
