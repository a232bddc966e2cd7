"""Memory and speed of request generation: 1,000,000 requests, generated lazily.

Pulls every request of synthetic workloads, and of a trace replay, through their source
(as the engine does) and prints peak Python heap (tracemalloc, a separate pass because
tracing slows allocation), peak resident memory of the process, and requests generated
per wall second. Target: peak memory under 300 MB for 1,000,000 requests.

    python benchmarks/workload_memory.py [--requests N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from simulator.workload import build_source, iterate_requests
from simulator.workload.config import WorkloadConfig
from simulator.workload.trace_io import write_trace

WORKLOADS = {
    "poisson + lognormal": {
        "arrival": {"process": "poisson", "rate_per_s": 50},
        "prompt_tokens": {"distribution": "lognormal", "mean": 1000, "sigma": 0.8},
        "output_tokens": {"distribution": "normal", "mean": 200, "std": 80},
    },
    "on/off bursts, 3 classes, correlated lengths": {
        "arrival": {
            "process": "on_off",
            "on_rate_per_s": 40,
            "off_rate_per_s": 4,
            "on_duration_s": 20,
            "off_duration_s": 60,
            "random_durations": True,
        },
        "prompt_tokens": {"distribution": "lognormal", "mean": 800, "sigma": 0.9},
        "output_tokens": {"distribution": "lognormal", "mean": 250, "sigma": 0.7},
        "length_correlation": 0.4,
        "classes": [
            {"name": "chat", "weight": 0.6},
            {
                "name": "rag",
                "weight": 0.25,
                "prompt_tokens": {"distribution": "uniform", "min": 2000, "max": 8000},
            },
            {
                "name": "code",
                "weight": 0.15,
                "output_tokens": {"distribution": "zipf", "exponent": 1.1, "max": 512},
            },
        ],
    },
    "diurnal + sessions (instant completions)": {
        "arrival": {"process": "diurnal", "mean_rate_per_s": 20, "peak_to_trough": 4},
        "prompt_tokens": {"distribution": "lognormal", "mean": 600, "sigma": 0.9},
        "output_tokens": {"distribution": "lognormal", "mean": 250, "sigma": 0.7},
        "sessions": {
            "turns": {"distribution": "uniform", "min": 1, "max": 6},
            "think_time_s": {"distribution": "exponential", "mean": 20},
        },
    },
}


def drain(spec: WorkloadConfig) -> tuple[int, float]:
    """Pull every request (finishing each on arrival); return the count and wall seconds."""
    source = build_source(spec)
    start = time.perf_counter()
    count = 0
    while not source.exhausted:
        request = source.pop()
        source.on_finish(request, request.arrival_s)
        count += 1
    return count, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"{'workload':<46}{'requests':>10}{'req/s':>12}{'us/req':>8}{'peak heap MB':>14}")
    worst_mb = 0.0
    for name, workload in WORKLOADS.items():
        spec = WorkloadConfig(**workload, num_requests=args.requests)
        count, wall_s = drain(spec)
        tracemalloc.start()
        drain(spec)
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        worst_mb = max(worst_mb, peak_bytes / 1e6)
        print(
            f"{name:<46}{count:>10,}{count / wall_s:>12,.0f}{wall_s / count * 1e6:>8.2f}"
            f"{peak_bytes / 1e6:>14.2f}"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.csv"
        first = next(iter(WORKLOADS.values()))
        spec = WorkloadConfig(**first, num_requests=args.requests)
        write_trace(iterate_requests(build_source(spec)), path)
        replay_spec = WorkloadConfig(trace=str(path))
        count, wall_s = drain(replay_spec)
        tracemalloc.start()
        drain(replay_spec)
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{'replay of the first as a CSV trace':<46}{count:>10,}{count / wall_s:>12,.0f}"
            f"{wall_s / count * 1e6:>8.2f}{peak_bytes / 1e6:>14.2f}"
        )
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 1e6 if sys.platform == "darwin" else rss / 1e3
    print(
        f"peak resident memory of the whole process: {rss_mb:.0f} MB "
        f"(includes Python, numpy, scipy, pydantic)"
    )
    ok = rss_mb < 300
    print(f"target peak memory < 300 MB: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
