"""``servesim plan SCENARIO.yaml``: maximum rate, fewest replicas, configuration search, costs."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import (
    add_budget_argument,
    add_command,
    add_scenario_arguments,
    available_cores,
    check_run_budget,
)
from simulator.cli.outputs import add_force_argument, check_output_file, write_atomic

EXAMPLES = """examples:
  servesim plan workloads/plan_chat.yaml
  servesim plan workloads/plan_chat.yaml --json --replications 5
  servesim plan workloads/plan_search.yaml --csv candidates.csv --workers 2
  servesim plan workloads/plan_chat.yaml --set plan.target_rate_per_s=40
"""

#: Columns of the candidates table and CSV.
CANDIDATE_COLUMNS = (
    "rank",
    "gpu",
    "tensor_parallel",
    "pipeline_parallel",
    "expert_parallel",
    "batching",
    "weight_dtype",
    "kv_dtype",
    "max_num_seqs",
    "feasible",
    "pareto",
    "status",
    "max_rate_per_s",
    "cost_per_million_output_tokens_usd",
    "latency_ms",
    "gpu_hour_usd",
    "replicas_for_target",
    "gpus_for_target",
    "monthly_cloud_usd_for_target",
    "simulations",
    "reason",
)


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


def candidate_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows of the search candidates (settings spread into columns)."""
    rows = []
    for cand in result.get("candidates") or []:
        row = {**cand["settings"], **{k: v for k, v in cand.items() if k != "settings"}}
        rows.append({k: row.get(k) for k in CANDIDATE_COLUMNS})
    return rows


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def format_plan(result: dict[str, Any]) -> str:
    """The plan as readable text."""
    dep = result["deployment"]
    rate = result["rate_search"]
    lines = [
        f"scenario: {result['scenario']}  model: {result['model']}  deployment: "
        f"{dep['replicas']}× {dep['tensor_parallel']}× {dep['gpu']}  batching: {dep['batching']}",
        "",
        "maximum sustainable rate",
    ]
    if rate["max_rate_per_s"] is None:
        lines.append(f"  none: {rate['reason']}")
    else:
        ci = rate["knee_ci95_per_s"]
        lines += [
            f"  max rate meeting the SLO   {_fmt(rate['max_rate_per_s'])} req/s "
            f"(all {rate['replications']} replications)",
            f"  first failing rate         {_fmt(rate['failing_rate_per_s'])} req/s: "
            f"{rate['failing_reason']}",
            f"  knee (mean of replications) {_fmt(rate['knee_per_s'])} req/s"
            + (f", 95% CI [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""),
            f"  roofline bound             {_fmt(rate['rate_bound_per_s'])} req/s; "
            f"{rate['simulations']} simulations",
        ]
        if result.get("safety_margin"):
            lines.append(
                f"  with {result['safety_margin']:.1%} headroom for model error: "
                f"{_fmt(result['max_rate_with_margin_per_s'])} req/s"
            )
    fewest = result.get("fewest_replicas")
    if fewest:
        margin = result.get("safety_margin") or 0.0
        sized = fewest["target_rate_per_s"]
        headroom = (
            f" (sized for {_fmt(sized)} req/s: {margin:.1%} headroom for model error)"
            if margin
            else ""
        )
        lines += ["", f"fewest replicas for {_fmt(sized / (1 + margin))} req/s{headroom}"]
        if fewest["replicas"] is None:
            lines.append(f"  none: {fewest['reason']}")
        else:
            lines += [
                f"  {fewest['replicas']} replicas = {fewest['gpus']} GPUs "
                f"({fewest['simulations']} simulations)",
                f"  one fewer: {fewest['fewer_reason']}",
            ]
    costs = result.get("costs")
    if costs:
        lines += [
            "",
            f"monthly cost at {_fmt(costs['rate_per_s'])} req/s on {costs['gpus']} GPUs "
            f"(busy {costs['gpu_busy_fraction']:.0%}; "
            f"{costs['output_tokens_per_month']:.3g} output tokens/month)",
            f"  {'option':<48} {'$/month':>12} {'$/M in':>9} {'$/M out':>9} {'Wh/out tok':>11}",
        ]
        for o in costs["options"]:
            lines.append(
                f"  {o['name'][:48]:<48} {o['monthly_usd']:>12,.0f} "
                f"{_fmt(o['usd_per_million_input_tokens'], 3):>9} "
                f"{_fmt(o['usd_per_million_output_tokens'], 3):>9} "
                f"{_fmt(o['energy_wh_per_output_token'], 3):>11}"
            )
        for b in costs["break_even"]:
            what = b["comparison"] + (f" ({b.get('api')})" if b.get("api") else "")
            lines.append(
                f"  break-even {what}, {b['cloud']}: {_fmt(b['output_tokens_per_month'], 3)} "
                f"output tokens/month = {_fmt(b['rate_per_s'], 3)} req/s "
                f"(utilisation {_fmt(b['utilisation'], 3)}); "
                f"{b['cheaper_above']} cheaper above. {b['notes']}".rstrip()
            )
        if costs["notes"]:
            lines.append(f"  {costs['notes']}")
    if result.get("search"):
        s = result["search"]
        lines += [
            "",
            f"configuration search: {s['points']} points, {s['simulated']} simulated, "
            f"{s['pruned']} pruned, {s['infeasible']} infeasible; {s['simulations']} "
            f"simulations in {s['wall_s']:.1f} s; latency = {s['latency_metric']}",
            f"  {'#':>3} {'gpu':<14} {'tp':>2} {'batching':<15} {'w/kv':<10} {'seqs':>4} "
            f"{'rate/rep':>9} {'$/M out':>8} {'latency':>8} {'P':>1}  reason",
        ]
        for c in candidate_rows(result):
            lines.append(
                f"  {_fmt(c['rank']):>3} {c['gpu']:<14} {c['tensor_parallel']:>2} "
                f"{c['batching']:<15} {c['weight_dtype'] + '/' + c['kv_dtype']:<10} "
                f"{c['max_num_seqs']:>4} {_fmt(c['max_rate_per_s']):>9} "
                f"{_fmt(c['cost_per_million_output_tokens_usd'], 3):>8} "
                f"{_fmt(c['latency_ms']):>8} {'*' if c['pareto'] else ' '}  {c['reason']}"
            )
        checked = result["search"].get("best_fewest_replicas")
        if checked:
            lines.append(
                f"  best point at {_fmt(checked['target_rate_per_s'])} req/s, simulated: "
                + (
                    f"{checked['replicas']} replicas = {checked['gpus']} GPUs; one fewer: "
                    f"{checked['fewer_reason']}"
                    if checked["replicas"]
                    else f"none: {checked['reason']}"
                )
            )
    for note in result.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UserError
    from simulator.planning import load_plan_file, plan

    if args.replications is not None and args.replications < 1:
        raise UserError(f"--replications: {args.replications} must be >= 1")
    if args.workers is None:
        args.workers = available_cores()
    if args.workers < 1:
        raise UserError(f"--workers: {args.workers} must be >= 1")
    if args.csv:
        check_output_file(args.csv, "--csv", force=args.force)
    loaded = load_plan_file(args.scenario, args.overrides)
    check_run_budget(
        loaded.scenario,
        args.scenario,
        runs=args.replications or loaded.plan.replications,
        allow_long_run=args.allow_long_run,
    )
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
        print(json.dumps(result, indent=2, default=_json_default))
    else:
        print(format_plan(result))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
