"""Simulator speed and memory of one whole process: imports, build, event loop, summary, output.

Runs one scenario (default ``benchmarks/scenarios/speed_100k.yaml``: 100,000 requests of
Llama-3.1-8B on one H100, Poisson 20 req/s, 512 prompt and 128 output tokens) the way
``servesim simulate`` does, and prints where the time went (start-up and imports, build,
event loop, summarise, write) with simulated requests per wall-second of the loop and of
the whole process (from the interpreter's start, read from ``/proc`` where there is one),
the CPU seconds of the process, and its peak resident memory. Targets: at least 20,000
requests per wall-second for the whole process; peak memory under 300 MB for 1,000,000
requests (``benchmarks/scenarios/memory_1m.yaml``).

    python benchmarks/speed.py [SCENARIO.yaml] [--set KEY=VALUE ...] [--out DIR]

``--out DIR`` also writes the per-request and time-series files (CSV; ``--format parquet``
where pyarrow is installed) and times that. On a machine shared with other work, quote
the CPU seconds beside the wall time and the load (``uptime``).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT = Path(__file__).resolve().parent / "scenarios" / "speed_100k.yaml"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the servesim command sets it


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``), None where unknown."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        start_ticks = int(fields[19])  # field 22 of the whole line: starttime
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss / 1e3  # kB on Linux


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default=str(DEFAULT))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, help="also write the per-request files to DIR")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    args = parser.parse_args()
    age_at_start = process_age_s()

    t0 = time.perf_counter()
    from simulator.api import build_simulation, load_scenario, summarize_run

    scenario = load_scenario(args.scenario, args.overrides)
    t1 = time.perf_counter()
    out = None
    if args.out is not None:
        from simulator.metrics.stream import RecordWriter

        out = RecordWriter(args.out, args.format)
    simulation = build_simulation(scenario, records_out=out)
    t2 = time.perf_counter()
    records = simulation.run()
    t3 = time.perf_counter()
    summary = summarize_run(scenario, records)
    t4 = time.perf_counter()
    written = []
    if out is not None:
        written = out.close(summary, records)
    t5 = time.perf_counter()

    n = summary.requests_total
    whole_s = t5 - STARTED + (age_at_start or 0.0)
    steps = sum(r.steps for r in records.replicas)
    print(
        f"scenario            {Path(args.scenario).name} ({scenario.model} on "
        f"{scenario.hardware.gpu}, {scenario.engine.batching.policy})"
    )
    print(
        f"requests            {n:,} ({summary.requests_completed:,} completed, "
        f"saturated={summary.saturated})"
    )
    print(f"simulated           {records.end_s:,.0f} s, {steps:,} engine steps")
    if age_at_start is not None:
        print(f"interpreter start   {age_at_start:6.2f} s")
    print(f"imports + load      {t1 - t0:6.2f} s")
    print(f"build               {t2 - t1:6.2f} s")
    print(f"event loop          {t3 - t2:6.2f} s  -> {n / (t3 - t2):,.0f} requests per second")
    print(f"summarise           {t4 - t3:6.2f} s")
    if out is not None:
        print(f"write               {t5 - t4:6.2f} s  ({', '.join(p.name for p in written)})")
    print(f"whole process       {whole_s:6.2f} s  -> {n / whole_s:,.0f} requests per wall-second")
    print(f"CPU                 {cpu_s():6.2f} s  -> {n / cpu_s():,.0f} requests per CPU-second")
    print(f"peak memory         {peak_rss_mb():6.0f} MB (resident, whole process)")
    print(
        f"records             {records.requests_kept} kept exactly"
        if hasattr(records, "requests_kept")
        else "",
        end="",
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
