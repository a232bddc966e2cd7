"""``servesim simulate SCENARIO.yaml``: run a scenario and print its summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.cli.common import add_command, add_scenario_arguments

EXAMPLES = """examples:
  servesim simulate workloads/quickstart.yaml
  servesim simulate workloads/quickstart.yaml --set workload.arrival.rate_per_s=20
  servesim simulate workloads/quickstart.yaml --set hardware.gpu=h200 --json
  servesim simulate workloads/quickstart.yaml --out results/quickstart
  servesim simulate workloads/quickstart.yaml --replications 5
  servesim simulate workloads/quickstart.yaml --trace-out steps.json
"""


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "simulate",
        help="simulate a scenario: latency, throughput, goodput and cost",
        description="Simulate a scenario YAML and print latency percentiles, throughput, "
        "goodput under its SLO and cost per million output tokens.",
        examples=EXAMPLES,
    )
    add_scenario_arguments(
        p, "scenario YAML file", "override a scenario value by dotted key (repeatable)"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write summary.json, requests.csv and timeseries.csv to DIR",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--replications",
        type=int,
        default=1,
        metavar="N",
        help="run N seeds (workload.seed, +1, ...) and report each metric with a "
        "95%% confidence interval",
    )
    p.add_argument(
        "--trace-out",
        type=Path,
        metavar="FILE",
        help="write every step as Chrome/Perfetto trace events (JSON)",
    )
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
    from simulator.errors import UserError
    from simulator.metrics import format_summary_table, write_outputs
    from simulator.metrics.replications import combine, format_intervals

    if args.replications < 1:
        raise UserError(f"--replications: must be at least 1, got {args.replications}")
    scenario = load_scenario(args.scenario, args.overrides)
    simulation = build_simulation(scenario, trace_steps=args.trace_out is not None)
    per_run = scenario.workload.num_requests
    bar, update = _progress_bar(per_run * args.replications if per_run else None, args.quiet)

    def progress_from(base: int):
        return None if update is None else (lambda count: update(base + count))

    simulation._progress = progress_from(0)
    try:
        records = simulation.run()
        summary = summarize_run(scenario, records)
        summaries = [summary.to_dict()]
        for i in range(1, args.replications):
            seeded = scenario.with_seed_offset(i)
            again = build_simulation(seeded, progress=progress_from(i * (per_run or 0)))
            summaries.append(summarize_run(seeded, again.run()).to_dict())
    finally:
        if bar is not None:
            bar.close()
    result = Result(scenario, records, summary)
    if args.trace_out:
        args.trace_out.parent.mkdir(parents=True, exist_ok=True)
        args.trace_out.write_text(json.dumps(simulation.step_trace.to_json()))
        if not args.json:
            print(f"wrote {args.trace_out} (open in https://ui.perfetto.dev)", file=sys.stderr)
    if args.out:
        written = write_outputs(args.out, summary, records)
        if not args.json:
            print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    combined = combine(summaries) if args.replications > 1 else None
    if args.json:
        out = result.summary
        if combined is not None:
            out["replications"] = combined
        print(json.dumps(out, indent=2))
    else:
        hw = scenario.hardware
        print(
            f"scenario: {scenario.name}  model: {scenario.model}  hardware: {hw.replicas}× "
            f"{hw.tensor_parallel}× {hw.gpu}  batching: {scenario.engine.batching}"
        )
        print(format_summary_table(summary))
        if combined is not None:
            print()
            print(format_intervals(combined))
    return 0
