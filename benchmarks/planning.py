"""Planning search speed and executor determinism.

Searches 5 GPUs × 3 parallel layouts (tensor parallel 1, 2, 4) × 3 batching policies for
Llama-3.1-8B chat-like traffic (``workloads/plan_search.yaml``'s workload and SLO): every
point is checked for memory and roofline feasibility, the rest simulated in order of their
cost bound (a maximum-rate search each) unless an already simulated point beats their
bounds. Prints how many points were simulated, pruned and infeasible, the simulations run
and the wall time (target: under 10 minutes on a 2-core machine), then runs the same search
on a Dask ``LocalCluster`` and checks that every candidate's numbers are identical.

Run: ``python benchmarks/planning.py [--policies continuous,chunked,decode_priority]
[--dask-workers 2] [--no-dask] [--unpruned]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from simulator.planning import PlanConfig, SearchConfig, load_plan_file, search_configurations
from simulator.policies import known_policies

SCENARIO = Path(__file__).resolve().parent.parent / "workloads" / "plan_search.yaml"
GPUS = ["h100-sxm", "h200", "a100-sxm-80gb", "l40s", "l4"]
LAYOUTS = [1, 2, 4]
#: Candidates simulated between pruning decisions; the same in both runs so that they prune
#: the same points (and the Dask run has two tasks at a time to spread).
BATCH_SIZE = 2
#: Numbers compared between the local and the Dask search.
COMPARED = (
    "status",
    "max_rate_per_s",
    "cost_per_million_output_tokens_usd",
    "latency_ms",
    "pareto",
    "rank",
    "simulations",
)


def build_search(policies: list[str]) -> SearchConfig:
    return SearchConfig(
        gpus=GPUS,
        tensor_parallel=LAYOUTS,
        batching=policies,
        price_kind="on_demand",
        latency="e2e_ms.p50",
        replications=1,
        batch_size=BATCH_SIZE,
    )


def run_search(loaded, search, **executor):
    started = time.perf_counter()
    result = search_configurations(
        loaded.scenario, search, PlanConfig(rate_tolerance=0.05), progress=True, **executor
    )
    return result, time.perf_counter() - started


def table(result) -> dict[tuple, tuple]:
    return {
        tuple(sorted(c.settings.items())): tuple(getattr(c, k) for k in COMPARED)
        for c in result.candidates
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default = [p for p in ("continuous", "chunked", "decode_priority") if p in known_policies()]
    parser.add_argument("--policies", default=",".join(default))
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument(
        "--unpruned", action="store_true", help="also run without pruning, for comparison"
    )
    args = parser.parse_args()
    policies = args.policies.split(",")
    loaded = load_plan_file(SCENARIO)
    search = build_search(policies)
    print(
        f"workload: {loaded.scenario.model}, {loaded.scenario.workload.num_requests} requests "
        f"per run; {len(GPUS)} GPUs × {len(LAYOUTS)} layouts (tp {LAYOUTS}) × "
        f"{len(policies)} policies ({', '.join(policies)})"
    )
    local, local_s = run_search(loaded, search)
    points = len(local.candidates)
    print(
        f"local:  {points} points: {local.simulated} simulated, {local.pruned} pruned, "
        f"{local.infeasible} infeasible; {local.simulations} simulations; {local_s:.1f} s wall"
    )
    print(
        f"{'rank':>4} {'gpu':<14} {'tp':>2} {'batching':<16} {'req/s':>7} {'$/M out':>8} "
        f"{'e2e p50 ms':>10} pareto"
    )
    for c in local.feasible:
        print(
            f"{c.rank:>4} {c.settings['gpu']:<14} {c.settings['tensor_parallel']:>2} "
            f"{c.settings['batching']:<16} {c.max_rate_per_s:>7.3g} "
            f"{c.cost_per_million_output_tokens_usd:>8.3g} {c.latency_ms:>10.4g} "
            f"{'*' if c.pareto else ''}"
        )
    by_reason: dict[str, int] = {}
    for c in local.candidates:
        if not c.feasible:
            key = c.reason.split(":")[0]
            by_reason[key] = by_reason.get(key, 0) + 1
    print("not ranked: " + "; ".join(f"{n} {k}" for k, n in sorted(by_reason.items())))
    if args.unpruned:
        started = time.perf_counter()
        full = search_configurations(
            loaded.scenario, search, PlanConfig(rate_tolerance=0.05), prune=False
        )
        same_best = full.best.settings == local.best.settings
        print(
            f"without pruning: {full.simulated} simulated, {full.simulations} simulations; "
            f"{time.perf_counter() - started:.1f} s wall; same best point: {same_best}"
        )
    if args.no_dask:
        return 0

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=args.dask_workers, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        on_dask, dask_s = run_search(loaded, search, dask_scheduler=client)
    same = table(on_dask) == table(local)
    print(
        f"dask:   {on_dask.simulated} simulated, {on_dask.pruned} pruned on a LocalCluster of "
        f"{args.dask_workers} worker processes; {dask_s:.1f} s wall; numbers identical to "
        f"the local search: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
