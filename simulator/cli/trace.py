"""``servesim trace generate|stats``: write a scenario's workload as a trace; summarise a trace."""

from __future__ import annotations

import argparse
import math
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

from simulator.cli.common import add_budget_argument
from simulator.errors import UserError

GENERATE_HELP = """Write the workload of SCENARIO (its `workload:` section) as a trace in our
`servesim` layout (CSV, or JSONL if OUTPUT ends in .jsonl). Generation stops at the
workload's num_requests / duration_s. Closed-loop users and multi-turn sessions need
completions to schedule their next request: here every request is taken to finish at the
instant it arrives (zero service time), so think times alone separate a user's requests."""

STATS_HELP = """Print a trace's rate over time, prompt/output length percentiles and a small
histogram. Any supported layout (azure, burstgpt, servesim; CSV or JSONL) is accepted."""

BAR_WIDTH = 40
RATE_BINS = 12


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="generate a trace from a scenario, or summarise a trace",
        description="Generate or summarise request traces.",
    )
    commands = parser.add_subparsers(dest="trace_command", metavar="SUBCOMMAND", required=True)
    generate = commands.add_parser(
        "generate", help="write a scenario's workload as a trace", description=GENERATE_HELP
    )
    generate.add_argument("scenario", help="scenario YAML file (only `workload:` is read)")
    generate.add_argument("-o", "--output", required=True, help="trace file to write (.csv/.jsonl)")
    generate.add_argument("--num-requests", type=int, help="override workload.num_requests")
    generate.add_argument("--seed", type=int, help="override workload.seed")
    generate.add_argument(
        "--force", action="store_true", help="replace the output file if it exists"
    )
    add_budget_argument(generate)
    generate.set_defaults(func=run)
    stats = commands.add_parser("stats", help="summarise a trace", description=STATS_HELP)
    stats.add_argument("trace", help="trace file (.csv, .jsonl, optionally .gz)")
    stats.add_argument(
        "--format",
        choices=["azure", "burstgpt", "servesim"],
        help="column layout (default: inferred from the header)",
    )
    stats.add_argument("--time-unit", choices=["s", "ms"], help="unit of relative timestamps")
    stats.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="count and skip bad rows instead of stopping at the first",
    )
    stats.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.trace_command == "generate":
        return _generate(args)
    return _stats(args)


def load_workload_section(path: str | Path, overrides: dict | None = None):
    """The validated ``workload:`` section of a scenario file (a ``WorkloadConfig``)."""
    from pydantic import ValidationError

    from simulator.config.loader import read_scenario_file, validation_messages
    from simulator.workload.config import WorkloadConfig

    path = Path(path)
    data = read_scenario_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("workload"), dict):
        raise UserError(f"{path}: workload: required section is missing")
    section = dict(data["workload"], **(overrides or {}))
    try:
        return WorkloadConfig.model_validate(section)
    except ValidationError as exc:
        messages = validation_messages(exc, section, "workload")
        raise UserError([f"{path}: {m}" for m in messages]) from None


#: Trace files ``trace generate`` writes, by the name's ending (before an optional .gz).
TRACE_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def _generate(args: argparse.Namespace) -> int:
    from simulator.cli.outputs import check_output_file, check_suffix, write_atomic
    from simulator.workload import build_source, iterate_requests
    from simulator.workload.budget import budget_problems, estimate_work, generation_budget
    from simulator.workload.trace_io import write_trace

    check_output_file(args.output, "-o", force=args.force)
    check_suffix(Path(args.output), "-o", TRACE_SUFFIXES, "CSV or JSON lines", gzipped=True)
    overrides = {}
    if args.num_requests is not None:
        overrides["num_requests"] = args.num_requests
    if args.seed is not None:
        overrides["seed"] = args.seed
    workload = load_workload_section(args.scenario, overrides)
    arrival = workload.arrival
    if (
        arrival is not None
        and arrival.process == "closed_loop"
        and arrival.think_time_s == 0
        and workload.num_requests is None
    ):
        raise UserError(
            f"{args.scenario}: workload.num_requests is required to generate a closed-loop "
            "trace with think_time_s 0: with instant completions its users would send "
            "endless requests at time 0"
        )
    base_dir = Path(args.scenario).resolve().parent
    estimate = estimate_work(workload.model_dump(), max_batched_tokens=1, base_dir=base_dir)
    problems = budget_problems(generation_budget(estimate), allow_long_run=args.allow_long_run)
    if problems:
        raise UserError([f"{args.scenario}: {p}" for p in problems])
    source = build_source(workload, base_dir=base_dir)
    flags = "".join(f" --{key.replace('_', '-')} {value}" for key, value in overrides.items())
    origin = (
        f"requests replayed from the trace {workload.trace}"
        if workload.trace
        else "synthetic trace (not recorded traffic)"
    )
    comment = (
        f"{origin}, generated by `servesim trace generate {args.scenario}{flags}` with seed "
        f"{workload.seed}; every request taken to finish on arrival. layout: servesim"
    )
    counted: list[int] = []
    write_atomic(
        args.output,
        lambda path: counted.append(
            write_trace(iterate_requests(source, finish_instantly=True), path, comment=comment)
        ),
        "-o",
    )
    count = counted[0]
    print(f"wrote {count} requests to {args.output}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from simulator.workload.trace_io import TraceReader

    reader = TraceReader(
        args.trace, layout=args.format, time_unit=args.time_unit, skip_bad_rows=args.skip_bad_rows
    )
    times, prompts, outputs = array("d"), array("q"), array("q")
    classes: Counter[str] = Counter()
    sessions = set()
    for row in reader:
        times.append(row.time_s)
        prompts.append(row.prompt_tokens)
        outputs.append(row.output_tokens)
        classes[row.class_name or "default"] += 1
        if row.session_id >= 0:
            sessions.add(row.session_id)
    if not times:
        summary = f"{args.trace}: no usable rows ({reader.bad_rows} bad of {reader.data_rows})"
        raise UserError([summary, *reader.bad_messages])
    for line in format_stats(
        np.frombuffer(times),
        np.frombuffer(prompts, dtype=np.int64),
        np.frombuffer(outputs, dtype=np.int64),
        classes,
        len(sessions),
        reader,
    ):
        print(line)
    return 0


def format_stats(times, prompts, outputs, classes, session_count, reader) -> list[str]:
    """Lines of the ``trace stats`` report."""
    span_s = float(times[-1] - times[0])
    lines = [
        f"trace: {reader.path}  layout: {reader.layout.name}",
        f"requests: {len(times)}  bad rows: {reader.bad_rows}  span: {span_s:.3f} s  "
        "mean rate: " + (f"{len(times) / span_s:.3f} req/s" if span_s > 0 else "n/a"),
        *(f"  skipped: {reason}" for reason in reader.bad_messages),
    ]
    if len(classes) > 1 or session_count:
        shares = ", ".join(
            f"{name} {count / len(times):.1%}" for name, count in classes.most_common()
        )
        lines.append(f"classes: {shares}  sessions: {session_count}")
    lines += ["", "rate over time (req/s):"]
    lines += _rate_lines(times)
    lines += ["", f"{'tokens':<8}{'mean':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    for name, values in (("prompt", prompts), ("output", outputs)):
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        lines.append(
            f"{name:<8}{values.mean():>10.1f}{p50:>9.0f}{p90:>9.0f}{p99:>9.0f}{values.max():>9d}"
        )
    for name, values in (("prompt", prompts), ("output", outputs)):
        lines += ["", f"{name} tokens histogram:"]
        lines += _histogram_lines(values)
    return lines


def _bar(fraction: float) -> str:
    return "#" * max(1 if fraction > 0 else 0, round(fraction * BAR_WIDTH))


def _rate_lines(times: np.ndarray) -> list[str]:
    start, end = float(times[0]), float(times[-1])
    if end <= start:
        return [f"  all {len(times)} requests at {start:.3f} s"]
    edges = np.linspace(start, end, RATE_BINS + 1)
    counts, _ = np.histogram(times, bins=edges)
    rates = counts / (edges[1] - edges[0])
    peak = rates.max()
    return [
        f"  {edges[i]:>10.1f} - {edges[i + 1]:>10.1f} s {rates[i]:>10.3f} {_bar(rates[i] / peak)}"
        for i in range(RATE_BINS)
    ]


def _histogram_lines(values: np.ndarray) -> list[str]:
    # Powers of two: token lengths span orders of magnitude.
    top = max(1, int(values.max()))
    edges = 2 ** np.arange(0, math.ceil(math.log2(top + 1)) + 1)
    counts, _ = np.histogram(values, bins=edges)
    first, last = np.flatnonzero(counts)[[0, -1]]
    peak = counts.max()
    return [
        f"  {edges[i]:>7d} - {edges[i + 1] - 1:>7d} {counts[i]:>9d} {_bar(counts[i] / peak)}"
        for i in range(first, last + 1)
    ]
