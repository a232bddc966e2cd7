"""The speed and memory checks of the simulator, each timed as a whole ``servesim`` process.

- ``speed``: 100,000 requests of Llama-3.1-8B on one H100 (Poisson 20 req/s, 512/128
  tokens): at least 20,000 simulated requests per wall-second.
- ``memory``: 1,000,000 requests (lognormal 600/150 tokens, 20 req/s): peak memory at most
  300 MB and at least 20,000 requests per wall-second.
- ``daily``: a daily cycle of 1,000,000 requests (reported).
- ``startup``: ``servesim list gpus`` within 4x the start-up of ``python -c "import numpy"``.
- ``plan``: ``servesim plan workloads/plan_search.yaml`` within 30 s; with ``--plan-reference
  FILE`` (an earlier ``--json`` answer), the same candidates, statuses and numbers.

Each command runs ``--repeats`` times (the median is printed, with min and max); wall time,
CPU time (user + system) and peak resident memory come from the operating system's
accounting of the finished process (``os.wait4``). The machine's load (``/proc/loadavg``) is
printed before and after: on a shared machine, quote it with the figures.

    python benchmarks/checks.py [--only speed,startup] [--repeats 3] [--plan-reference F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "benchmarks" / "scenarios"
SERVESIM = [sys.executable, "-m", "simulator.cli.main"]


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def timed(argv: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak resident MB, exit status) of one whole process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss / (1e6 if sys.platform == "darwin" else 1e3)
    return wall, usage.ru_utime + usage.ru_stime, rss, process.returncode


def repeat(argv: list[str], times: int) -> dict[str, list[float]]:
    runs = [timed(argv) for _ in range(times)]
    if any(r[3] != 0 for r in runs):
        raise SystemExit(f"failed (exit {runs[0][3]}): {' '.join(argv)}")
    return {"wall": [r[0] for r in runs], "cpu": [r[1] for r in runs], "rss": [r[2] for r in runs]}


def spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}})"


def simulate_check(name: str, scenario: str, requests: int, repeats: int, memory_mb=None) -> bool:
    argv = [*SERVESIM, "simulate", str(SCENARIOS / scenario), "--quiet", "--allow-long-run"]
    runs = repeat(argv, repeats)
    rate = requests / statistics.median(runs["wall"])
    cpu_rate = requests / statistics.median(runs["cpu"])
    ok = rate >= 20_000 and (memory_mb is None or max(runs["rss"]) <= memory_mb)
    print(f"{name}: {requests:,} requests ({scenario})")
    print(f"  wall s        {spread(runs['wall'])}  -> {rate:,.0f} requests per wall-second")
    print(f"  CPU s         {spread(runs['cpu'])}  -> {cpu_rate:,.0f} requests per CPU-second")
    print(f"  peak MB       {spread(runs['rss'], '.0f')}")
    return ok


def startup_check(repeats: int) -> bool:
    listing = repeat([*SERVESIM, "list", "gpus"], repeats)
    numpy = repeat([sys.executable, "-c", "import numpy"], repeats)
    ratios = [a / b for a, b in zip(listing["wall"], numpy["wall"], strict=True)]
    ratio = statistics.median(ratios)
    print("startup: servesim list gpus against python -c 'import numpy'")
    print(f"  list gpus s   {spread(listing['wall'], '.3f')}  CPU {spread(listing['cpu'], '.3f')}")
    print(f"  numpy s       {spread(numpy['wall'], '.3f')}  CPU {spread(numpy['cpu'], '.3f')}")
    print(f"  ratio         {ratio:.2f} (target at most 4)")
    return ratio <= 4


def _answer(data: dict) -> dict:
    data = json.loads(json.dumps(data))
    data.get("search", {}).pop("wall_s", None)
    return data


def plan_check(repeats: int, reference: Path | None) -> bool:
    argv = [*SERVESIM, "plan", "workloads/plan_search.yaml", "--json", "--quiet"]
    walls, cpus, same = [], [], True
    for _ in range(repeats):
        with tempfile.TemporaryFile("w+") as out:
            wall, cpu, _, status = timed(argv, stdout=out)
            out.seek(0)
            answer = json.load(out)
        if status != 0:
            raise SystemExit("servesim plan failed")
        walls.append(wall)
        cpus.append(cpu)
        if reference is not None:
            same = same and _answer(answer) == _answer(json.loads(reference.read_text()))
    best = answer["candidates"][0]
    print("plan: servesim plan workloads/plan_search.yaml")
    print(f"  wall s        {spread(walls)}  (target at most 30)")
    print(f"  CPU s         {spread(cpus)}  (the process and its workers)")
    print(
        f"  best          {best['settings']['gpu']} tp{best['settings']['tensor_parallel']} "
        f"{best['settings']['batching']} w:{best['settings']['weight_dtype']}: "
        f"${best['cost_per_million_output_tokens_usd']:.4f}/M output tokens"
    )
    if reference is not None:
        print(f"  same answer as {reference}: {same}")
    return statistics.median(walls) <= 30 and same


CHECKS = ("speed", "memory", "daily", "startup", "plan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CHECKS), help="comma-separated checks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plan-reference", type=Path)
    args = parser.parse_args()
    chosen = args.only.split(",")
    python = sys.version.split()[0]
    print(f"load average before: {load()}; cores: {os.cpu_count()}; python {python}")
    results = {}
    if "speed" in chosen:
        results["speed"] = simulate_check("speed", "speed_100k.yaml", 100_000, args.repeats)
    if "memory" in chosen:
        results["memory"] = simulate_check(
            "memory", "memory_1m.yaml", 1_000_000, max(1, args.repeats // 2), memory_mb=300
        )
    if "daily" in chosen:
        results["daily"] = simulate_check("daily", "daily_1m.yaml", 1_000_000, 1)
    if "startup" in chosen:
        results["startup"] = startup_check(max(args.repeats, 10))
    if "plan" in chosen:
        results["plan"] = plan_check(max(1, args.repeats // 2), args.plan_reference)
    print(f"load average after: {load()}")
    for name, ok in results.items():
        print(f"{name:8s} {'met' if ok else 'NOT met'}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    if shutil.which("servesim") is None and not (ROOT / "simulator").is_dir():
        raise SystemExit("run from a checkout with simulator installed")
    sys.exit(main())
