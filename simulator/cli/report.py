"""``servesim report SCENARIO.yaml -o report.html [--pdf report.pdf]``: a procurement report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.cli.common import add_command, add_scenario_arguments

EXAMPLES = """examples:
  servesim report workloads/plan_chat.yaml -o report.html
  servesim report workloads/plan_chat.yaml -o report.html --pdf report.pdf
  servesim report workloads/plan_chat.yaml -o r.html --set plan.target_rate_per_s=80 --json
"""


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "report",
        help="procurement report: what to buy or rent, its cost, plots and assumptions (HTML)",
        description="Plan the scenario (maximum rate, fewest replicas for "
        "plan.target_rate_per_s), price it rented, owned and as an API, and write one "
        "self-contained HTML report with plots, sensitivity and sources; --pdf prints it "
        "through headless Chromium.",
        examples=EXAMPLES,
    )
    add_scenario_arguments(
        p,
        "scenario YAML, with optional plan: and search: sections",
        "override a value by dotted key, plan.* included (repeatable)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        metavar="HTML",
        help="where to write the HTML report (default: report.html)",
    )
    p.add_argument("--pdf", type=Path, metavar="PDF", help="also print the report to PDF")
    p.add_argument("--replications", type=int, metavar="N", help="seeds per simulated rate")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=run)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return value


def run(args: argparse.Namespace) -> int:
    from simulator.reports import build_report, write_report
    from simulator.reports.terminal import paint, use_colour

    progress = not args.quiet and not args.json and sys.stderr.isatty()
    report = build_report(
        args.scenario, args.overrides, replications=args.replications, progress=progress
    )
    written = write_report(report, args.output, args.pdf)
    rec = {k: _jsonable(v) for k, v in report.recommendation.items()}
    if args.json:
        out = {
            "recommendation": rec,
            "options": json.loads(report.options.to_json(orient="records", double_precision=15)),
            "files": [str(p) for p in written],
            "wall_s": report.wall_s,
        }
        print(json.dumps(out, indent=2))
        return 0
    if args.quiet:
        return 0
    colour = use_colour()
    print(
        paint("recommendation: ", "bold", colour)
        + paint(report.recommendation_line(), "green", colour)
    )
    costs = report.simulated.plan.costs
    machine = next((o.machine for o in costs.options if o.machine is not None), None)
    if machine is not None:
        print(f"owned option: {machine.description} ({machine.kind}, hosted: {machine.hosting})")
        for line in machine.assumptions:
            print(f"  {line}")
    for path in written:
        print(f"wrote {path}")
    return 0
