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
    naming_file,
)
from simulator.cli.outputs import add_force_argument, check_output_file, check_output_folder
from simulator.config.hardware import HardwareConfig

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
        help="write summary.json, requests.csv and timeseries.csv to DIR (the requests as "
        "the run settles them)",
    )
    p.add_argument(
        "--out-format",
        choices=("csv", "parquet"),
        default="csv",
        help="per-request records as CSV (default) or Parquet (requests.parquet; needs pyarrow)",
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


#: Files ``--out`` writes (the records in one of the two formats).
OUT_FILES = ("summary.json", "requests.csv", "requests.parquet", "timeseries.csv")


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


#: Largest workload seed (an unsigned 64-bit integer).
MAX_SEED = 2**64 - 1


class _OutFolder:
    """``--out``'s files, written into a temporary folder inside ``folder`` while the run
    goes on (the per-request records as they settle) and renamed into place at the end;
    removed if the command stops before."""

    def __init__(self, folder: Path, fmt: str):
        import shutil
        import tempfile

        from simulator.metrics.stream import RecordWriter

        created = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
        try:
            self.writer = RecordWriter(self.staging, fmt)
        except Exception:  # e.g. Parquet without pyarrow: leave no folder behind
            shutil.rmtree(created[-1] if created else self.staging, ignore_errors=True)
            raise

    def finish(self, summary, records) -> list[Path]:
        written = self.writer.close(summary, records)
        final = []
        for path in written:
            os.replace(path, self.folder / path.name)
            final.append(self.folder / path.name)
        return final

    def remove(self) -> None:
        import shutil

        self.writer.abandon()
        shutil.rmtree(self.staging, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    from simulator.api import load_scenario
    from simulator.errors import UserError

    if args.replications < 1:
        raise UserError(f"--replications: must be at least 1, got {args.replications}")
    if args.out:
        check_output_folder(args.out, "--out", OUT_FILES, force=args.force)
    if args.trace_out:
        check_output_file(args.trace_out, "--trace-out", force=args.force)
    scenario = load_scenario(args.scenario, args.overrides)
    last_seed = scenario.workload.seed + args.replications - 1
    if last_seed > MAX_SEED:  # replication i runs seed + i
        raise UserError(
            f"--replications {args.replications}: the seeds run from workload.seed "
            f"{scenario.workload.seed} to {last_seed}, past the largest, 2**64 - 1; lower "
            "workload.seed"
        )
    check_run_budget(
        scenario, args.scenario, runs=args.replications, allow_long_run=args.allow_long_run
    )
    from simulator.config.compile import reused_builds

    out = _OutFolder(args.out, args.out_format) if args.out else None
    try:
        with reused_builds(), naming_file(args.scenario):  # every seed: the same replicas
            return _simulate(args, scenario, out)
    finally:
        if out is not None:
            out.remove()


def _simulate(args: argparse.Namespace, scenario, out: _OutFolder | None) -> int:
    from simulator.api import Result, build_simulation, summarize_run
    from simulator.cli.outputs import write_atomic
    from simulator.metrics import format_summary_table
    from simulator.metrics.replications import combine, format_intervals

    records_out = out.writer if out is not None else None
    simulation = build_simulation(
        scenario, trace_steps=args.trace_out is not None, records_out=records_out
    )
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
    # the files hold one run's requests and steps: the first seed's, where several ran
    seed = (
        f" (seed {scenario.workload.seed}, the first of {args.replications} replications)"
        if args.replications > 1
        else ""
    )
    if args.trace_out:
        events = json.dumps(simulation.step_trace.to_json())
        write_atomic(args.trace_out, lambda path: path.write_text(events), "--trace-out")
        if not args.json:
            print(
                f"wrote {args.trace_out}{seed} (open in https://ui.perfetto.dev)", file=sys.stderr
            )
    if out is not None:
        written = out.finish(summary, records)
        if not args.json:
            print("wrote " + ", ".join(str(p) for p in written) + seed, file=sys.stderr)
    combined = combine(summaries) if args.replications > 1 else None
    if args.json:
        payload = result.summary
        if combined is not None:
            payload["replications"] = combined
        print(json.dumps(payload, indent=2))
    else:
        print(
            f"scenario: {scenario.name}  model: {scenario.model}  hardware: "
            f"{hardware_label(scenario)}  batching: {scenario.engine.batching}"
        )
        print(format_summary_table(summary))
        if combined is not None:
            print()
            print(format_intervals(combined))
    return 0


def hardware_label(scenario) -> str:
    """Replicas × GPUs per replica and the GPU of each group, with the layout where it spans
    more than tensor parallelism (``1× 3× h100-sxm (TP1 EP3)``); a fleet's groups and a
    disaggregated deployment's pools by name, with the GPUs in all."""
    groups = scenario.groups
    if len(groups) == 1 and groups[0].where == "hardware":
        return _group_label(groups[0].hardware, groups[0].count)
    parts = [f"{g.name}: {_group_label(g.hardware, g.count)}" for g in groups]
    gpus = sum(g.count * g.hardware.gpus_per_replica for g in groups)
    return f"{' + '.join(parts)} ({gpus} GPUs)"


def _group_label(hw: HardwareConfig, replicas: int) -> str:
    per_replica = hw.gpus_per_replica
    label = f"{replicas}× {per_replica}× {hw.gpu}"
    if per_replica != hw.tensor_parallel:
        parts = [f"TP{hw.tensor_parallel}"]
        parts += [f"PP{hw.pipeline_parallel}"] if hw.pipeline_parallel > 1 else []
        parts += [f"EP{hw.expert_parallel}"] if hw.expert_parallel > 1 else []
        label += f" ({' '.join(parts)})"
    return label
