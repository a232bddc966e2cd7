"""``servesim plan`` as readable text: every number with its unit and what it means."""

from __future__ import annotations

import math
from typing import Any

#: Columns of the configuration-search table and CSV.
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
    "offer",
    "replicas_for_target",
    "gpus_for_target",
    "monthly_cloud_usd_for_target",
    "simulations",
    "reason",
)


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, ``-`` for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _interval(ci: list | None, unit: str) -> str:
    if not ci:
        return ""
    high = fmt(ci[1]) if ci[1] is not None else "unbounded"
    return f"[{fmt(ci[0])}, {high}] {unit}"


def _intervals_line(intervals: dict[str, Any]) -> str:
    parts = [
        f"{name} {fmt(v['estimate_ms'])} ms {_interval(v['ci95_ms'], 'ms')} "
        f"(≤ {fmt(v['threshold_ms'])}: {v['verdict']})"
        for name, v in (intervals or {}).items()
    ]
    return "; ".join(parts)


def candidate_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows of the search candidates (settings spread into columns)."""
    rows = []
    for cand in result.get("candidates") or []:
        row = {**cand["settings"], **{k: v for k, v in cand.items() if k != "settings"}}
        rows.append({k: row.get(k) for k in CANDIDATE_COLUMNS})
    return rows


def traffic_lines(traffic: dict[str, Any] | None) -> list[str]:
    """How changing traffic is planned (empty for steady traffic)."""
    if not traffic:
        return []
    return [
        f"traffic: {traffic['process']}, mean {fmt(traffic['mean_rate_per_s'])} req/s; busiest "
        f"{traffic['window_s']:g} s window {fmt(traffic['peak_window_rate_per_s'])} req/s "
        f"(× {traffic['peak_factor']:.3g}). The fleet is sized for {traffic['sized_for']}; "
        "the rate search and fleet sizes below are in peak-window req/s, costs at the mean",
    ]


def rate_lines(result: dict[str, Any]) -> list[str]:
    """The maximum-rate section."""
    dep = result["deployment"]
    rate = result["rate_search"]
    lines = [f"maximum sustainable rate of {dep['replicas']} replica(s)"]
    if rate["max_rate_per_s"] is None:
        return [*lines, f"  none: {rate['reason']}"]
    if rate.get("max_rate_verdict") == "uncertain":
        how = "meeting the SLO on its point estimates (UNCERTAIN: the budget could not tell)"
    else:
        how = "certified (95%) to meet the SLO"
    lines += [
        f"  {fmt(rate['max_rate_per_s'])} req/s: highest rate {how}",
        f"  {fmt(rate['knee_per_s'])} req/s: knee, where the SLO statistics reach their "
        "thresholds (pooled point estimates)",
    ]
    if rate.get("knee_ci95_per_s"):
        lines.append(
            f"  {_interval(rate['knee_ci95_per_s'], 'req/s')}: the knee lies between the "
            "highest rate certified to meet and the lowest certified to miss"
        )
    if rate.get("uncertain_rates_per_s"):
        shown = ", ".join(fmt(r) for r in rate["uncertain_rates_per_s"])
        lines.append(f"  uncertain within the budget at {shown} req/s")
    if rate["failing_rate_per_s"] is not None:
        lines.append(
            f"  {fmt(rate['failing_rate_per_s'])} req/s: lowest rate above it that does not "
            f"meet the SLO: {rate['failing_reason']}"
        )
    lines.append(f"  {fmt(rate['rate_bound_per_s'])} req/s: roofline upper bound (no simulation)")
    if result.get("safety_margin"):
        lines.append(
            f"  {fmt(result['max_rate_with_margin_per_s'])} req/s: the certified rate less "
            f"{result['safety_margin']:.1%} headroom for the model's error "
            f"({(result.get('error_band') or {}).get('kind', 'validated')} error band, median)"
        )
    if rate.get("intervals_at_max_rate"):
        lines.append(f"  at the certified rate: {_intervals_line(rate['intervals_at_max_rate'])}")
    lines.append(
        f"  {rate['simulations']} simulations, {rate.get('requests_simulated', 0):,} requests; "
        f"{rate.get('precision', '')}"
    )
    return lines


def replica_lines(result: dict[str, Any]) -> list[str]:
    """The fewest-replicas section (empty without a target)."""
    fewest = result.get("fewest_replicas")
    if not fewest:
        return []
    margin = result.get("safety_margin") or 0.0
    sized = fewest["target_rate_per_s"]
    headroom = f" (sized for {fmt(sized)} req/s: {margin:.1%} headroom)" if margin else ""
    lines = ["", f"fewest replicas for {fmt(sized / (1 + margin))} req/s{headroom}"]
    if fewest["replicas"] is None:
        return [*lines, f"  none: {fewest['reason']}"]
    how = (
        "meeting the SLO on point estimates (UNCERTAIN: the budget could not tell)"
        if fewest.get("verdict") == "uncertain"
        else "certified (95%) to meet the SLO"
    )
    lines += [
        f"  {fewest['replicas']} replicas = {fewest['gpus']} GPUs: fewest {how}; each replica "
        "simulated with as much traffic as one alone",
        f"  one fewer: {fewest['fewer_reason']}",
    ]
    if fewest.get("intervals"):
        lines.append(f"  at the answer: {_intervals_line(fewest['intervals'])}")
    if fewest.get("uncertain_replicas"):
        lines.append(f"  uncertain within the budget: {fewest['uncertain_replicas']} replicas")
    lines.append(
        f"  {fewest['simulations']} simulations, {fewest.get('requests_simulated', 0):,} requests"
    )
    return lines


def cost_lines(costs: dict[str, Any] | None) -> list[str]:
    """The monthly-cost section."""
    if not costs:
        return []
    hours = costs["hours_per_month"]
    lines = [
        "",
        f"monthly cost of {costs['replicas']} replica(s) = {costs['gpus']} GPUs at "
        f"{fmt(costs['rate_per_s'])} req/s ({hours:g} h/month)",
        f"  utilisation {costs['utilisation']:.0%}: the traffic's share of what the fleet "
        f"sustains within the SLO ({costs['replicas']} × {fmt(costs['per_replica_rate_per_s'])} "
        "req/s)"
        + (
            f"; {costs['peak_utilisation']:.0%} in the peak window"
            if costs.get("peak_factor", 1.0) != 1.0
            else ""
        ),
        f"  GPU busy {costs['gpu_busy_fraction']:.0%}: share of time the GPUs execute steps "
        "(sets the electricity)",
        f"  {fmt(costs['mean_prompt_tokens'])} prompt and {fmt(costs['mean_output_tokens'])} "
        "output tokens per request (simulated)",
        f"  {'option':<58} {'$/month':>10} {'$/M out':>8} {'$/M all':>8} "
        f"{'sheet in/out':>13} {'util':>5}",
    ]
    for o in costs["options"]:
        sheet = (
            f"{fmt(o['price_sheet_usd_per_million_input_tokens'], 3)}/"
            f"{fmt(o['price_sheet_usd_per_million_output_tokens'], 3)}"
        )
        util = f"{o['utilisation']:.0%}" if o.get("utilisation") is not None else "-"
        lines.append(
            f"  {o['name'][:58]:<58} {o['monthly_usd']:>10,.0f} "
            f"{fmt(o['usd_per_million_output_tokens'], 3):>8} "
            f"{fmt(o['usd_per_million_tokens'], 3):>8} {sheet:>13} {util:>5}"
        )
    lines += [
        "  $/M out: the option's whole monthly cost / output tokens × 10⁶ (what simulate "
        "reports); $/M all: / input + output tokens; sheet in/out: the price-sheet split "
        "(self-hosted: cost divided by prefill time share; API: list prices); util: "
        "utilisation",
    ]
    machine = costs.get("owned_machine")
    if machine:
        lines.append(f"  owned machine: {machine['description']} ({machine['kind']})")
        lines += [f"    {a}" for a in machine["assumptions"]]
    if costs["break_even"]:
        lines.append(
            "  where the cheapest option changes with traffic (fleets in whole replicas, "
            "instances and machines):"
        )
        for b in costs["break_even"]:
            lines.append(
                f"    above {fmt(b['rate_per_s'], 3)} req/s "
                f"({fmt(b['output_tokens_per_month'], 3)} output tokens/month, "
                f"{b['replicas']} replica(s) at utilisation {b['utilisation']:.0%}): "
                f"{b['to']} instead of {b['from']}"
            )
    lines += [f"  note: {n}" for n in costs.get("notes") or []]
    return lines


def _layout(candidate: dict[str, Any]) -> str:
    """Tensor, pipeline and expert parallel sizes of a candidate's replica (``2/1/1``)."""
    keys = ("tensor_parallel", "pipeline_parallel", "expert_parallel")
    return "/".join(str(candidate.get(key) or 1) for key in keys)


def search_lines(result: dict[str, Any]) -> list[str]:
    """The configuration-search section (empty without a search)."""
    s = result.get("search")
    if not s:
        return []
    lines = [
        "",
        f"configuration search: {s['points']} points, {s['simulated']} simulated, "
        f"{s['pruned']} pruned, {s['infeasible']} infeasible; {s['simulations']} "
        f"simulations in {s['wall_s']:.1f} s; latency = {s['latency_metric']}",
        f"  precision: {s.get('precision', '')}",
        "  rate/rep: req/s one replica sustains; $/M out: rented cost per replica-hour "
        "(whole instances its shape fits) / output tokens at that rate × 10⁶",
        f"  {'#':>3} {'gpu':<14} {'tp/pp/ep':>8} {'batching':<15} {'w/kv':<10} {'seqs':>4} "
        f"{'rate/rep':>9} {'$/M out':>8} {'latency':>8} {'P':>1}  reason",
    ]
    for c in candidate_rows(result):
        lines.append(
            f"  {fmt(c['rank']):>3} {c['gpu']:<14} {_layout(c):>8} "
            f"{c['batching']:<15} {c['weight_dtype'] + '/' + c['kv_dtype']:<10} "
            f"{c['max_num_seqs']:>4} {fmt(c['max_rate_per_s']):>9} "
            f"{fmt(c['cost_per_million_output_tokens_usd'], 3):>8} "
            f"{fmt(c['latency_ms']):>8} {'*' if c['pareto'] else ' '}  {c['reason']}"
        )
    checked = s.get("best_fewest_replicas")
    if checked:
        lines.append(
            f"  best point at {fmt(checked['target_rate_per_s'])} req/s, simulated: "
            + (
                f"{checked['replicas']} replicas = {checked['gpus']} GPUs; one fewer: "
                f"{checked['fewer_reason']}"
                if checked["replicas"]
                else f"none: {checked['reason']}"
            )
        )
    return lines


def format_plan(result: dict[str, Any]) -> str:
    """The plan as readable text."""
    dep = result["deployment"]
    lines = [
        f"scenario: {result['scenario']}  model: {result['model']}  deployment: "
        f"{dep['replicas']}× {dep['tensor_parallel']}× {dep['gpu']}  batching: {dep['batching']}",
        *traffic_lines(result.get("traffic")),
        "",
        *rate_lines(result),
        *replica_lines(result),
        *cost_lines(result.get("costs")),
        *search_lines(result),
    ]
    if result.get("error_band"):
        band = result["error_band"]
        lines += ["", f"model error: {band['text']}"]
    lines += [f"note: {note}" for note in result.get("notes") or []]
    return "\n".join(lines)
