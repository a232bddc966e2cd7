"""``servesim plan SCENARIO.yaml``: maximum rate, fewest replicas, configuration search, costs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.cli.common import (
    add_budget_argument,
    add_command,
    add_scenario_arguments,
    available_cores,
    check_run_budget,
    naming_file,
)
from simulator.cli.outputs import add_force_argument, check_output_file, write_atomic
from simulator.metrics.summary import jsonable

EXAMPLES = """examples:
  servesim plan workloads/plan_chat.yaml
  servesim plan workloads/plan_chat.yaml --json --replications 5
  servesim plan workloads/plan_search.yaml --csv candidates.csv --workers 2
  servesim plan workloads/plan_chat.yaml --set plan.target_rate_per_s=40
"""


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "plan",
        help="capacity planning: maximum rate, fewest replicas, configuration search, costs",
        description="Find the scenario's maximum sustainable rate under its SLO, the fewest "
        "replicas for plan.target_rate_per_s, the cheapest configurations of its search: "
        "section, and what the deployment costs rented, owned or as an API.",
        examples=EXAMPLES,
    )
    add_scenario_arguments(
        p,
        "scenario YAML with optional plan: and search: sections",
        "override a value by dotted key, plan.* and search.* included (repeatable)",
    )
    p.add_argument("--replications", type=int, metavar="N", help="seeds per simulated rate")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the candidates as CSV")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local processes for the search (default: the cores available; the answer "
        "does not depend on it)",
    )
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="run the search on Dask")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_force_argument(p)
    add_budget_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UserError
    from simulator.planning import load_plan_file, plan
    from simulator.planning.rate import require_one_replica_kind
    from simulator.planning.work import fleet_requests
    from simulator.reports.plan_text import candidate_rows, format_plan

    if args.replications is not None and args.replications < 1:
        raise UserError(f"--replications: {args.replications} must be >= 1")
    if args.workers is None:
        args.workers = available_cores()
    if args.workers < 1:
        raise UserError(f"--workers: {args.workers} must be >= 1")
    if args.csv:
        check_output_file(args.csv, "--csv", force=args.force)
    loaded = load_plan_file(args.scenario, args.overrides)
    with naming_file(args.scenario):
        require_one_replica_kind(loaded.scenario, "servesim plan")
    if args.dask_scheduler and loaded.search is None:
        raise UserError(
            f"--dask-scheduler: only a configuration search runs on Dask, and "
            f"{args.scenario} has no search: section; drop the option or add a search"
        )
    check_run_budget(
        loaded.scenario,
        args.scenario,
        runs=args.replications or loaded.plan.replications,
        allow_long_run=args.allow_long_run,
        fleet_requests=fleet_requests(loaded.scenario, loaded.plan),
    )
    with naming_file(args.scenario):
        result = plan(
            loaded,
            replications=args.replications,
            workers=args.workers,
            dask_scheduler=args.dask_scheduler,
            progress=not args.quiet,
        ).to_dict()
    if args.csv:
        import pandas as pd

        rows = candidate_rows(result)
        if not rows:
            rows = [{"max_rate_per_s": result["max_rate_per_s"], **result["rate_search"]}]
        frame = pd.DataFrame(rows)
        for column in ("rank", "replicas_for_target", "gpus_for_target"):
            if column in frame:  # whole numbers with gaps: not floats
                frame[column] = frame[column].astype("Int64")
        write_atomic(args.csv, lambda path: frame.to_csv(path, index=False), "--csv")
        if not args.json:
            print(f"wrote {args.csv}", file=sys.stderr)
    if args.json:
        print(json.dumps(jsonable(result), indent=2, default=str, allow_nan=False))
    else:
        print(format_plan(result))
    return 0
