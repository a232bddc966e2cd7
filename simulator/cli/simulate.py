"""``servesim simulate SCENARIO.yaml``: run a scenario and print its summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from simulator.cli.common import (
    add_budget_argument,
    add_command,
    add_scenario_arguments,
    check_run_budget,
)
from simulator.cli.outputs import add_force_argument, check_output_file, check_output_folder

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
    add_force_argument(p)
    add_budget_argument(p)
    p.set_defaults(func=run)


#: Files ``--out`` writes.
OUT_FILES = ("summary.json", "requests.csv", "timeseries.csv")


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


def _write_out(folder: Path, summary, records) -> list[Path]:
    """``--out``'s files, each written whole: into a temporary folder beside ``folder``,
    then renamed into place."""
    import shutil
    import tempfile

    from simulator.metrics import write_outputs

    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
    try:
        written = write_outputs(staging, summary, records)
        final = []
        for path in written:
            os.replace(path, folder / path.name)
            final.append(folder / path.name)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    from simulator.api import Result, build_simulation, load_scenario, summarize_run
    from simulator.cli.outputs import write_atomic
    from simulator.errors import UserError
    from simulator.metrics import format_summary_table
    from simulator.metrics.replications import combine, format_intervals

    if args.replications < 1:
        raise UserError(f"--replications: must be at least 1, got {args.replications}")
    if args.out:
        check_output_folder(args.out, "--out", OUT_FILES, force=args.force)
    if args.trace_out:
        check_output_file(args.trace_out, "--trace-out", force=args.force)
    scenario = load_scenario(args.scenario, args.overrides)
    check_run_budget(
        scenario, args.scenario, runs=args.replications, allow_long_run=args.allow_long_run
    )
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
        events = json.dumps(simulation.step_trace.to_json())
        write_atomic(args.trace_out, lambda path: path.write_text(events), "--trace-out")
        if not args.json:
            print(f"wrote {args.trace_out} (open in https://ui.perfetto.dev)", file=sys.stderr)
    if args.out:
        written = _write_out(args.out, summary, records)
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
