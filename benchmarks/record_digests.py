"""Digests of every per-request record, inter-token gap histogram and summary of a set of
runs: two checkouts that print the same lines simulate the same thing, bit for bit.

Runs each shipped scenario (``workloads/*.yaml``, shortened to ``--requests``) and variants
that reach the other paths of the engine (every batching policy, several replicas under
each router, swap preemption, prefix caching with sessions, closed-loop users, offline
arrivals, autoscaling), and prints one line per run: a SHA-256 prefix of the request
columns (arrival, first token, finish, lengths, replica, rejections, preemptions, cached
tokens), of the time series, of the gap histogram's counts, and the run's end time.

    python benchmarks/record_digests.py > after.txt     # then diff against another checkout
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from simulator.api import build_simulation, load_scenario

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "workloads" / "quickstart.yaml"

#: (name, base scenario, overrides) of the variants beyond the shipped scenarios.
VARIANTS = [
    ("continuous-20rps", QUICKSTART, ["workload.arrival.rate_per_s=20"]),
    ("overload", QUICKSTART, ["workload.arrival.rate_per_s=60"]),
    ("chunked", QUICKSTART, ["engine.batching=chunked", "workload.arrival.rate_per_s=20"]),
    ("decode_priority", QUICKSTART, ["engine.batching=decode_priority"]),
    ("priority", QUICKSTART, ["engine.batching=priority"]),
    ("static", QUICKSTART, ["engine.batching=static", "workload.arrival.rate_per_s=4"]),
    (
        "fixed-lengths",
        QUICKSTART,
        [
            "workload.prompt_tokens={distribution: fixed, value: 512}",
            "workload.output_tokens={distribution: fixed, value: 128}",
            "workload.arrival.rate_per_s=20",
        ],
    ),
    (
        "constant-arrivals",
        QUICKSTART,
        [
            "workload.arrival={process: constant, interval_s: 0.1}",
        ],
    ),
    ("offline", QUICKSTART, ["workload.arrival={process: offline}"]),
    (
        "small-kv-recompute",
        QUICKSTART,
        [
            "engine.gpu_memory_utilization=0.24",
            "workload.arrival.rate_per_s=40",
        ],
    ),
    (
        "small-kv-swap",
        QUICKSTART,
        [
            "engine.gpu_memory_utilization=0.24",
            "workload.arrival.rate_per_s=40",
            "engine.preemption=swap",
            "engine.swap_space_gb=4",
        ],
    ),
    (
        "replicas-round-robin",
        QUICKSTART,
        [
            "hardware.replicas=3",
            "workload.arrival.rate_per_s=40",
        ],
    ),
    (
        "replicas-least-outstanding",
        QUICKSTART,
        [
            "hardware.replicas=3",
            "workload.arrival.rate_per_s=40",
            "routing.policy=least_outstanding",
        ],
    ),
    (
        "replicas-random",
        QUICKSTART,
        [
            "hardware.replicas=2",
            "workload.arrival.rate_per_s=30",
            "routing.policy=random",
        ],
    ),
    (
        "sessions-prefix-cache",
        QUICKSTART,
        [
            "engine.prefix_caching=true",
            "workload.sessions={turns: {distribution: uniform, min: 1, max: 4}, "
            "think_time_s: {distribution: exponential, mean: 5}}",
        ],
    ),
    (
        "autoscaled",
        QUICKSTART,
        [
            "hardware.autoscale={min_replicas: 1, max_replicas: 4, metric: queue, target: 4, "
            "scale_up_delay_s: 30, scale_down_after_s: 30, evaluate_every_s: 10}",
            "workload.arrival.rate_per_s=25",
        ],
    ),
    (
        "closed-loop",
        QUICKSTART,
        [
            "workload.arrival={process: closed_loop, users: 30, think_time_s: 1.0}",
        ],
    ),
    ("profile-vllm", QUICKSTART, ["engine.profile=vllm", "workload.arrival.rate_per_s=20"]),
    (
        "profile-trtllm-chunked",
        QUICKSTART,
        ["engine.profile=trtllm", "engine.batching=chunked", "workload.arrival.rate_per_s=20"],
    ),
]


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.asarray(a)
        if a.dtype == object:
            h.update("\x1f".join(map(str, a.tolist())).encode())
        else:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def run_digest(path: Path, overrides: list[str], requests: int) -> str:
    scenario = load_scenario(path, overrides)
    count = scenario.workload.num_requests
    if scenario.workload.trace is None and count is not None:
        scenario = load_scenario(
            path, [*overrides, f"workload.num_requests={min(requests, count)}"]
        )
    records = build_simulation(scenario).run()
    r = records.requests
    requests_digest = digest(
        r.request_id,
        r.arrival_s,
        r.first_token_s,
        r.finish_s,
        np.asarray(r.prompt_tokens, dtype=np.int64),
        np.asarray(r.output_tokens, dtype=np.int64),
        np.asarray(r.replica, dtype=np.int64),
        r.class_name,
        r.reject_reason,
        None if r.cached_prompt_tokens is None else np.asarray(r.cached_prompt_tokens, np.int64),
        None if r.preemptions is None else np.asarray(r.preemptions, np.int64),
    )
    t = records.timeseries
    series = digest(
        t.time_s,
        np.asarray(t.replica, np.int64),
        np.asarray(t.waiting, np.int64),
        np.asarray(t.running, np.int64),
        t.kv_used_fraction,
        np.asarray(t.batch_tokens, np.int64),
    )
    itl = records.itl
    gaps = digest(
        np.array([itl.count, itl.sum_s, itl.min(), itl.max()]), itl.quantile(np.linspace(0, 1, 101))
    )
    steps = sum(s.steps for s in records.replicas)
    busy = sum(s.busy_s for s in records.replicas)
    return (
        f"n={len(r)} requests={requests_digest} series={series} gaps={gaps} "
        f"steps={steps} busy={busy!r} end={records.end_s!r}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--only", help="run only names containing this text")
    args = parser.parse_args()
    runs = [(p.stem, p, []) for p in sorted((ROOT / "workloads").glob("*.yaml"))]
    runs += VARIANTS
    for name, path, overrides in runs:
        if args.only and args.only not in name:
            continue
        try:
            line = run_digest(path, overrides, args.requests)
        except Exception as exc:  # a variant a checkout does not support
            line = f"error {type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
        print(f"{name:<34} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
