"""Simulator speed: 100,000 requests of the quickstart scenario at ~80% of saturation.

Saturation is measured first (a shorter run under overload gives the maximum completed
request rate); the timed run then offers 80% of that rate. Prints wall time and
simulated requests per wall-second. Run: ``python benchmarks/speed.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator.api import build_simulation, load_scenario
from simulator.metrics import summarize

SCENARIO = Path(__file__).resolve().parent.parent / "workloads" / "quickstart.yaml"


def saturation_rps(overload_rate: float, requests: int) -> float:
    scenario = load_scenario(
        SCENARIO,
        [f"workload.arrival.rate_per_s={overload_rate}", f"workload.num_requests={requests}"],
    )
    records = build_simulation(scenario).run()
    return summarize(records, slo=None, gpu_hour_usd=None).throughput_rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--load", type=float, default=0.8, help="fraction of saturation")
    args = parser.parse_args()

    sat = saturation_rps(overload_rate=200.0, requests=10_000)
    rate = args.load * sat
    scenario = load_scenario(
        SCENARIO,
        [f"workload.arrival.rate_per_s={rate:.4f}", f"workload.num_requests={args.requests}"],
    )
    t0 = time.perf_counter()
    simulation = build_simulation(scenario)
    t1 = time.perf_counter()
    records = simulation.run()
    t2 = time.perf_counter()
    summary = summarize(records, slo=scenario.slo, gpu_hour_usd=scenario.cost.gpu_hour_usd)
    t3 = time.perf_counter()
    replica = records.replicas[0]
    print(f"scenario            {SCENARIO.name} ({scenario.model} on {scenario.hardware.gpu})")
    print(f"saturation          {sat:.2f} req/s (10,000 requests offered at 200 req/s)")
    print(f"offered load        {rate:.2f} req/s ({args.load:.0%} of saturation)")
    print(
        f"requests simulated  {len(records.requests):,} ({summary.requests_completed:,} "
        f"completed, saturated={summary.saturated})"
    )
    print(f"simulated time      {records.end_s:,.0f} s, {replica.steps:,} steps")
    print(f"build               {t1 - t0:.2f} s")
    print(
        f"run                 {t2 - t1:.2f} s  -> {len(records.requests) / (t2 - t1):,.0f} "
        f"simulated requests per wall-second"
    )
    print(f"summarise           {t3 - t2:.2f} s")
    print(
        f"end to end          {t3 - t0:.2f} s  -> {len(records.requests) / (t3 - t0):,.0f} "
        f"requests per wall-second"
    )


if __name__ == "__main__":
    main()
