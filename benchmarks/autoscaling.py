"""Autoscaling under a daily cycle: a fixed fleet sized for the peak against an autoscaled
one (GPU-hours, cost, SLO attainment), and rented autoscaled capacity against owned fixed
capacity. The day is compressed to six hours so the benchmark runs in minutes.

Run: ``python benchmarks/autoscaling.py``.
"""

from __future__ import annotations

import time

from simulator.api import run, scenario_from_dict
from simulator.planning import fewest_replicas
from simulator.planning.tco import (
    HOURS_PER_MONTH,
    Deployment,
    TokenVolume,
    cheapest_cloud_offer,
    default_owned_params,
    owned_option,
)

DAY_S = 6 * 3600
MEAN_RATE = 30.0
PEAK_TO_TROUGH = 4.0
#: Sinusoid between peak and peak / ratio: peak = 2 · mean · ratio / (1 + ratio).
PEAK_RATE = 2 * MEAN_RATE * PEAK_TO_TROUGH / (1 + PEAK_TO_TROUGH)

BASE = {
    "name": "daily-cycle-fleet",
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm", "replicas": 1},
    "workload": {
        "arrival": {
            "process": "diurnal",
            "mean_rate_per_s": MEAN_RATE,
            "peak_to_trough": PEAK_TO_TROUGH,
            "period_s": DAY_S,
            "peak_time_s": DAY_S / 2,
        },
        "prompt_tokens": {"distribution": "lognormal", "mean": 800, "sigma": 0.9, "max": 8000},
        "output_tokens": {"distribution": "lognormal", "mean": 250, "sigma": 0.7, "max": 2048},
        "duration_s": DAY_S,
        "seed": 0,
    },
    "slo": {"ttft_ms": {"p99": 2000}, "tpot_ms": {"p99": 60}},
    "cost": {"gpu_hour_usd": 2.5},
}


def scenario(**changes):
    data = {
        **BASE,
        **{k: {**BASE.get(k, {}), **v} if isinstance(v, dict) else v for k, v in changes.items()},
    }
    return scenario_from_dict(data)


def main() -> None:
    offer = cheapest_cloud_offer("h100-sxm")
    price = float(offer["price_per_gpu_hour"]) if offer else 2.5
    peak = scenario(
        workload={
            "arrival": {"process": "poisson", "rate_per_s": PEAK_RATE},
            "duration_s": None,
            "num_requests": 6000,
        }
    )
    t0 = time.perf_counter()
    sized = fewest_replicas(peak, PEAK_RATE)
    fixed_n = sized.replicas
    print(
        f"daily cycle: mean {MEAN_RATE:.0f} req/s, peak {PEAK_RATE:.0f} req/s, trough "
        f"{PEAK_RATE / PEAK_TO_TROUGH:.0f} req/s over a {DAY_S / 3600:.0f}-hour day; "
        f"Llama-3.1-8B on H100 SXM"
    )
    print(
        f"fleet for the peak: {fixed_n} replicas ({sized.simulations} simulations, "
        f"{time.perf_counter() - t0:.0f} s)"
    )
    # per-replica arrival rate to aim for: 70% of what one replica sustains at the peak mix
    per_replica = 0.7 * PEAK_RATE / fixed_n
    common = {
        "min_replicas": 1,
        "max_replicas": fixed_n + 1,
        "scale_up_delay_s": 120,
        "scale_down_after_s": 300,
        "evaluate_every_s": 10,
    }
    start = max(1, fixed_n // 2)
    runs = {
        f"fixed {fixed_n}": scenario(hardware={"replicas": fixed_n}),
        "auto: queue>8": scenario(
            hardware={"replicas": start, "autoscale": {**common, "metric": "queue", "target": 8}}
        ),
        f"auto: rate>{per_replica:.0f}": scenario(
            hardware={
                "replicas": start,
                "autoscale": {**common, "metric": "rate", "target": per_replica},
            }
        ),
    }
    print(
        f"\n  {'fleet':14s} {'GPU-h':>7s} {'mean GPUs':>10s} {'SLO met':>8s} "
        f"{'TTFT p99':>9s} {'TPOT p99':>9s} {'rented $':>9s} {'$/M out':>8s}"
    )
    results = {}
    for name, sc in runs.items():
        t0 = time.perf_counter()
        result = run(sc)
        s = result.summary
        fleet = result.records.fleet
        held_s = fleet.gpu_seconds_held if fleet is not None else fixed_n * result.records.end_s
        hours = held_s / 3600
        rented = hours * price
        out_tokens = s["output_tokens_per_s"] * s["duration_s"]
        results[name] = (s, hours, result.records.end_s)
        print(
            f"  {name:14s} {hours:7.1f} {hours * 3600 / result.records.end_s:10.2f} "
            f"{s['slo']['attainment']:8.1%} {s['ttft_ms']['p99']:9.0f} "
            f"{s['tpot_ms']['p99']:9.1f} {rented:9.2f} {rented / out_tokens * 1e6:8.3f}"
            f"{'  SATURATED' if s['saturated'] else ''}   ({time.perf_counter() - t0:.0f} s)"
        )
    # owned servers are paid whether busy or not: the fixed fleet for the day
    s, hours, end_s = results[f"fixed {fixed_n}"]
    owned = default_owned_params("h100-sxm")
    volume = TokenVolume.from_rate(s["throughput_rps"], 800, 250)
    deployment = Deployment("h100-sxm", fixed_n, s["gpu_busy_fraction"], 1.0)
    monthly = owned_option(deployment, volume, owned).monthly_usd
    owned_day = monthly / HOURS_PER_MONTH * end_s / 3600
    best = min(
        (k for k in results if k.startswith("auto")),
        key=lambda k: (-results[k][0]["slo"]["attainment"], results[k][1]),
    )
    auto_rented = results[best][1] * price
    print(
        f"\nrented at ${price:.2f}/GPU-hour ({offer['provider'] if offer else 'scenario price'}, "
        f"cheapest on-demand H100 in prices.yaml)"
    )
    print(f"  {best} (best SLO attainment), rented: ${auto_rented:8.2f} for the day")
    print(
        f"  fixed {fixed_n}, owned:    ${owned_day:8.2f} for the day "
        f"(servers amortised over {owned.life_years:g} years, power, hosting)"
    )
    cheaper = "owning the fixed fleet" if owned_day < auto_rented else "renting with autoscaling"
    ratio = max(owned_day, auto_rented) / min(owned_day, auto_rented)
    print(f"  cheaper: {cheaper} (ratio {ratio:.2f})")


if __name__ == "__main__":
    main()
