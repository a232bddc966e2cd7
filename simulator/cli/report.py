"""``servesim report SCENARIO.yaml -o report.html [--pdf report.pdf]``: a procurement report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.cli.common import (
    add_budget_argument,
    add_command,
    add_scenario_arguments,
    check_run_budget,
    naming_file,
)
from simulator.cli.outputs import add_force_argument, check_output_file, check_suffix
from simulator.metrics.summary import jsonable

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
    add_force_argument(p)
    add_budget_argument(p)
    p.set_defaults(func=run)


def _write(report, html: Path, pdf: Path | None) -> list[Path]:
    """The HTML (and PDF) written whole: both renamed into place once both are done."""
    from simulator.cli.outputs import atomic_path

    with atomic_path(html, "-o") as html_tmp:
        html_tmp.write_text(report.html, encoding="utf-8")
        if pdf is None:
            return [html]
        from simulator.reports.browser import print_to_pdf

        with atomic_path(pdf, "--pdf") as pdf_tmp:
            print_to_pdf(html_tmp, pdf_tmp)
    return [html, pdf]


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UserError

    check_output_file(args.output, "-o", force=args.force)
    check_suffix(args.output, "-o", (".html", ".htm"), "an HTML page")
    if args.pdf is not None:
        if args.pdf.resolve() == args.output.resolve():
            raise UserError(f"--pdf {args.pdf}: the same file as -o; give another name")
        check_output_file(args.pdf, "--pdf", force=args.force)
        check_suffix(args.pdf, "--pdf", (".pdf",), "a PDF")
        from simulator.reports.browser import require_chromium

        require_chromium()
    if args.replications is not None and args.replications < 1:
        raise UserError(f"--replications: {args.replications} must be >= 1")
    from simulator.planning import load_plan_file
    from simulator.planning.rate import require_one_replica_kind
    from simulator.planning.work import fleet_requests
    from simulator.reports import build_report
    from simulator.reports.gather import TRAFFIC_FACTORS
    from simulator.reports.terminal import paint, use_colour

    loaded = load_plan_file(args.scenario, args.overrides)
    with naming_file(args.scenario):
        require_one_replica_kind(loaded.scenario, "servesim report")
    runs = args.replications or loaded.plan.replications
    searches = len(TRAFFIC_FACTORS)  # the plan's fleet and one per other traffic level
    check_run_budget(
        loaded.scenario,
        args.scenario,
        runs=runs,
        allow_long_run=args.allow_long_run,
        fleet_requests=fleet_requests(loaded.scenario, loaded.plan, searches),
    )
    progress = not args.quiet and not args.json and sys.stderr.isatty()
    with naming_file(args.scenario):
        report = build_report(loaded, replications=args.replications, progress=progress)
    written = _write(report, args.output, args.pdf)
    if args.json:
        out = {
            "recommendation": report.recommendation,
            "options": json.loads(report.options.to_json(orient="records", double_precision=15)),
            "files": [str(p) for p in written],
            "wall_s": report.wall_s,
        }
        print(json.dumps(jsonable(out), indent=2, allow_nan=False))
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
