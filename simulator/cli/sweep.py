"""``servesim sweep SCENARIO.yaml --grid key=v1,v2 ...``: the cross product, as a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulator.cli.common import add_budget_argument, add_command, add_scenario_arguments
from simulator.cli.outputs import add_force_argument, check_output_file

EXAMPLES = """examples:
  servesim sweep workloads/quickstart.yaml --grid workload.arrival.rate_per_s=5,10,20 -o rates.csv
  servesim sweep workloads/quickstart.yaml --grid hardware.gpu=h100-sxm,h200 \\
      --grid engine.max_num_seqs=64,256 -o grid.parquet --workers 2
  servesim sweep workloads/quickstart.yaml --grid hardware.gpu=h100-sxm,h200 -o g.csv \\
      --dask-scheduler tcp://scheduler:8786
  servesim sweep workloads/quickstart.yaml --grid 'slo.ttft_ms=[{p99: 500}, {p99: 1000}]' -o s.csv
"""


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "sweep",
        help="simulate the cross product of scenario settings into one CSV/Parquet table",
        description="Simulate every combination of the --grid values and write one row of "
        "summary numbers per point. Finished points are cached (by scenario hash) in "
        ".servesim-cache/ next to the output, so a rerun or an interrupted sweep only "
        "simulates what is missing.",
        examples=EXAMPLES,
    )
    add_scenario_arguments(
        p, "scenario YAML file", "override a scenario value for every point (repeatable)"
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="a dotted scenario key and its values (repeatable; the cross product is run); "
        "values with commas of their own as one YAML list: 'slo.ttft_ms=[{p99: 500}, {p99: 1000}]'",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="results .csv or .parquet")
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="a Dask scheduler to run on")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_force_argument(p)
    add_budget_argument(p)
    p.set_defaults(func=run)


def _check_set_and_grid_apart(overrides: list[str], grid: dict) -> None:
    """A key both --set and --grid would take the grid's values without a word: refused."""
    from simulator.config.loader import parse_override
    from simulator.errors import UserError

    both = [key for key in (".".join(parse_override(o)[0]) for o in overrides) if key in grid]
    if both:
        raise UserError(
            f"--set {both[0]}: also given by --grid, whose values every point takes; drop one"
        )


def run(args: argparse.Namespace) -> int:
    from simulator.api import load_scenario
    from simulator.errors import UserError
    from simulator.planning.sweep import check_output, parse_grid, sweep, write_table

    if args.workers < 1:
        raise UserError(f"--workers: {args.workers} must be >= 1")
    check_output(args.output)
    check_output_file(args.output, "-o", force=args.force)
    grid = parse_grid(args.grid)
    _check_set_and_grid_apart(args.overrides, grid)
    scenario = load_scenario(args.scenario, args.overrides)
    cache_dir = None if args.no_cache else args.output.parent / ".servesim-cache"
    frame = sweep(
        scenario,
        grid,
        workers=args.workers,
        dask_scheduler=args.dask_scheduler,
        cache_dir=cache_dir,
        progress=not args.quiet,
        allow_long_run=args.allow_long_run,
        source=args.scenario,
    )
    path = write_table(frame, args.output)
    failed = int((frame["error"] != "").sum())
    print(
        f"wrote {path}: {len(frame)} points ({frame.attrs['simulated']} simulated, "
        f"{frame.attrs['cached']} from cache, {failed} failed)",
        file=sys.stderr,
    )
    if failed == len(frame):
        # the table is written (it holds each point's error), but nothing was simulated
        first = " ".join(str(frame["error"].iloc[0]).split())
        raise UserError(f"sweep: all {failed} points failed; the first: {first}")
    return 0
