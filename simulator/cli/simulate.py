"""``servesim simulate SCENARIO.yaml``: run a scenario and print its summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = """examples:
  servesim simulate workloads/quickstart.yaml
  servesim simulate workloads/quickstart.yaml --set workload.arrival.rate_per_s=20
  servesim simulate workloads/quickstart.yaml --set hardware.gpu=h200 --json
  servesim simulate workloads/quickstart.yaml --out results/quickstart
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a scenario: latency, throughput, goodput and cost",
        description="Simulate a scenario YAML and print latency percentiles, throughput, "
        "goodput under its SLO and cost per million output tokens.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario value by dotted key (repeatable)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write summary.json, requests.csv and timeseries.csv to DIR",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _progress_bar(total: int | None, quiet: bool):
    if quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="req",
        desc="simulating",
        file=sys.stderr,
        disable=None,
        mininterval=0.5,
        leave=False,
    )
    state = {"last": 0}

    def update(count: int) -> None:
        bar.update(count - state["last"])
        state["last"] = count

    return bar, update


def run(args: argparse.Namespace) -> int:
    from simulator.api import Result, build_simulation, load_scenario, summarize_run
    from simulator.metrics import format_summary_table, write_outputs

    scenario = load_scenario(args.scenario, args.overrides)
    simulation = build_simulation(scenario)
    bar, update = _progress_bar(scenario.workload.num_requests, args.quiet)
    simulation._progress = update
    try:
        records = simulation.run()
    finally:
        if bar is not None:
            bar.close()
    summary = summarize_run(scenario, records)
    result = Result(scenario, records, summary)
    if args.out:
        written = write_outputs(args.out, summary, records)
        if not args.json:
            print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        print(
            f"scenario: {scenario.name}  model: {scenario.model}  "
            f"hardware: {scenario.hardware.replicas}× {scenario.hardware.tensor_parallel}× "
            f"{scenario.hardware.gpu}  batching: {scenario.engine.batching}"
        )
        print(format_summary_table(summary))
    return 0
