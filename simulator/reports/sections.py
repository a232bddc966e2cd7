"""The report's sections as HTML: the question, the recommendation and why, the options,
break-even points, the configuration search, sensitivity, assumptions and the appendix.
Each function takes simulated and priced results and returns a string of HTML."""

from __future__ import annotations

from typing import Any

import pandas as pd
import yaml

from simulator.config.scenario import Scenario
from simulator.reports import assumptions, costs
from simulator.reports.gather import Simulated
from simulator.reports.html import esc, fmt, kpi, table, usd

#: Candidates of a configuration search shown in the report (best first).
SEARCH_ROWS = 15


def question(sim: Simulated) -> str:
    s = sim.scenario
    w = costs.planned(sim).traffic
    slo_items = []
    for metric, targets in (s.slo or {}).items():
        if isinstance(targets, dict):
            slo_items += [f"{metric} {p} ≤ {v:g} ms" for p, v in targets.items()]
    volume_out = sim.target_rate_per_s * w.mean_output_tokens * 3600 * costs.HOURS_PER_MONTH
    volume_in = sim.target_rate_per_s * w.mean_prompt_tokens * 3600 * costs.HOURS_PER_MONTH
    arrival = s.workload.arrival.process if s.workload.arrival else "trace"
    target_note = (
        "the planning target (plan.target_rate_per_s)"
        if sim.plan.plan.target_rate_per_s
        else "the deployment's maximum sustainable rate (no plan.target_rate_per_s given)"
    )
    rows = [
        ("model", s.model),
        ("traffic", f"{sim.target_rate_per_s:.4g} requests/s ({arrival} arrivals), {target_note}"),
        (
            "request shape",
            f"{w.mean_prompt_tokens:,.0f} prompt tokens and {w.mean_output_tokens:,.0f} "
            "output tokens on average",
        ),
        (
            "monthly volume",
            f"{volume_in / 1e9:,.3g} billion input and {volume_out / 1e9:,.3g} billion "
            "output tokens",
        ),
        ("latency targets (SLO)", "; ".join(slo_items) or "none (saturation only)"),
        *_traffic_rows(sim),
        (
            "deployment unit",
            f"{sim.gpus_per_replica}× {s.hardware.gpu} per replica (tensor parallel "
            f"{s.hardware.tensor_parallel}), {s.engine.batching} batching, "
            f"weights {s.engine.weight_dtype}, KV cache {s.engine.kv_dtype}",
        ),
    ]
    return "<h2>The question</h2>" + table(None, rows, table_id="question")


def _traffic_rows(sim: Simulated) -> list[tuple[str, str]]:
    """Changing traffic: its peak window, and that window's simulated latencies."""
    shape = sim.plan.traffic
    if shape is None:
        return []
    summary = sim.run.summary
    peak = sim.target_rate_per_s * shape.peak_factor
    return [
        (
            "traffic over time",
            f"{shape.process}: mean {sim.target_rate_per_s:.4g} requests/s, busiest "
            f"{shape.window_s:g} s window {peak:.4g} requests/s (× {shape.peak_factor:.3g}); "
            "the fleet is sized for the busiest window, the bill for the mean",
        ),
        (
            "peak window latencies (simulated)",
            f"TTFT p99 {fmt(summary['ttft_ms']['p99'])} ms, TPOT p99 "
            f"{fmt(summary['tpot_ms']['p99'])} ms, E2E p99 {fmt(summary['e2e_ms']['p99'])} ms "
            f"({sim.replicas} replica(s), steady traffic at {peak:.4g} requests/s)",
        ),
    ]


def _knee_text(rate) -> str:
    bracket = rate.knee_ci95_per_s
    if not bracket:
        return f"knee {fmt(rate.knee_per_s, 4)} requests/s"
    high = f"{bracket[1]:.4g}" if bracket[1] is not None else "unbounded"
    return (
        f"knee {fmt(rate.knee_per_s, 4)} requests/s, between {bracket[0]:.4g} (certified to "
        f"meet) and {high} (certified to miss)"
    )


def why(sim: Simulated, rec: dict[str, Any], options: pd.DataFrame, changes) -> list[str]:
    rate = sim.plan.rate
    who = (
        "One replica"
        if sim.scenario.hardware.replicas == 1
        else f"The scenario's {sim.scenario.hardware.replicas} replicas"
    )
    reasons = [
        f"{who} sustain(s) {rate.max_rate_per_s:.4g} requests/s within the SLO, certified at "
        f"95% confidence ({_knee_text(rate)}; {rate.simulations} simulations of "
        f"{rate.requests_simulated:,} requests).",
        f"{sim.replicas} replica(s) ({sim.gpus} GPUs) serve {sim.target_rate_per_s:.4g} "
        "requests/s within the SLO in simulation"
        + (f"; one fewer does not: {rec['fewer_reason']}." if rec["fewer_reason"] else "."),
    ]
    if rec["runner_up"]:
        saving = rec["runner_up_monthly_usd"] - rec["monthly_usd"]
        reasons.append(
            f"It is the cheapest of {len(options)} priced options at this traffic: "
            f"{usd(saving)} a month less than the runner-up ({rec['runner_up']})."
        )
    if rec["kind"] == "api":
        reasons.append(
            "An API's latency is not simulated: its providers' own service levels apply. "
            f"The cheapest self-hosted option is {rec['cheapest_self_hosted']}."
        )
    if rec.get("utilisation") is not None:
        reasons.append(
            f"Utilisation {rec['utilisation']:.0%}: the traffic's share of what the fleet "
            "sustains within the SLO."
        )
    if rec.get("marketplace") and rec["marketplace"] != rec["option"]:
        reasons.append(
            f"A marketplace rental ({rec['marketplace']}, {usd(rec['marketplace_monthly_usd'])} "
            "a month) is listed but not recommended: community hosts without a service "
            "agreement."
        )
    for change in changes:
        reasons.append(
            f"Near {change['rate_per_s']:.3g} requests/s the cheapest option changes from "
            f"{change['from']} to {change['to']} (figure: monthly cost against traffic)."
        )
    return reasons


def recommendation(sim, rec, options, changes) -> str:
    if rec["kind"] == "cloud":
        what = (
            f"Rent {rec['gpus']}× {rec['gpu']} ({rec['replicas']} replica(s)): "
            f"{rec['option'].removeprefix('rent ')}"
        )
    elif rec["kind"] == "owned":
        what = (
            f"Own {rec['gpus']}× {rec['gpu']} ({rec['replicas']} replica(s)): "
            f"{rec['option'].removeprefix('own ')}"
        )
    else:
        what = f"Use the API {rec['option'].removeprefix('api ')}"
    kpis = "".join(
        [
            kpi("per month", usd(rec["monthly_usd"])),
            kpi(
                "per million output tokens (whole cost / output tokens)",
                usd(rec["usd_per_million_output_tokens"]),
            ),
            kpi("per million tokens (in + out)", usd(rec["usd_per_million_tokens"])),
            kpi(
                "price sheet, in / out per million",
                f"{usd(rec['price_sheet_usd_per_million_input_tokens'])} / "
                f"{usd(rec['price_sheet_usd_per_million_output_tokens'])}",
            ),
            kpi("GPUs" if rec["kind"] != "api" else "GPUs if self-hosted", str(sim.gpus)),
        ]
    )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in why(sim, rec, options, changes))
    return (
        '<h2>Recommendation</h2><div class="recommendation" id="recommendation">'
        f'<div class="headline">{esc(what)}</div><div class="kpis">{kpis}</div>'
        f"<strong>Why</strong><ul>{reasons}</ul></div>"
    )


def options_table(options: pd.DataFrame, recommended: str) -> str:
    rows = [
        (
            r["name"],
            r["kind"],
            fmt(r["gpus"]) if r["kind"] != "api" else "–",
            usd(r["monthly_usd"]),
            usd(r["usd_per_million_output_tokens"]),
            usd(r["usd_per_million_tokens"]),
            f"{usd(r['price_sheet_usd_per_million_input_tokens'])} / "
            f"{usd(r['price_sheet_usd_per_million_output_tokens'])}",
            f"{r['utilisation']:.0%}" if r.get("utilisation") is not None else "–",
            fmt(r["energy_wh_per_output_token"] * 1e3 if r["energy_wh_per_output_token"] else None),
            r["notes"],
        )
        for r in options.to_dict("records")
    ]
    legend = (
        "<p class='note'>$/M out: the option's whole monthly cost divided by the output "
        "tokens of the month (× 10⁶), the number <code>servesim simulate</code> reports; $/M "
        "all: divided by input and output tokens; price sheet: a split into input and output "
        "prices to compare with API price sheets (self-hosted: the cost divided by the share "
        "of GPU time spent on prompts; API: its list prices); utilisation: the traffic's share "
        "of what the fleet sustains within the SLO; mWh/out token: facility energy per output "
        "token.</p>"
    )
    return (
        "<h2>Options at the target traffic</h2>"
        + table(
            [
                "option",
                "kind",
                "GPUs",
                "per month",
                "$/M out",
                "$/M all",
                "price sheet $/M in / out",
                "utilisation",
                "mWh/out token",
                "",
            ],
            rows,
            numeric=[False, False, True, True, True, True, True, True, True, False],
            highlight=[r["name"] == recommended for r in options.to_dict("records")],
            table_id="options",
        )
        + legend
    )


def break_even(sim: Simulated, changes) -> str:
    out = (
        "<h3>Where the cheapest option changes with traffic (break-even rates; fleets in "
        "whole replicas, instances and machines)</h3>"
    )
    out += table(
        ["requests/s", "output tokens / month", "replicas", "utilisation", "from", "to",
         "per month"],
        [
            (
                fmt(c["rate_per_s"]),
                fmt(c["output_tokens_per_month"]),
                fmt(c["replicas"]),
                f"{c['utilisation']:.0%}",
                c["from"],
                c["to"],
                usd(c["monthly_usd"]),
            )
            for c in changes
        ],
        numeric=[True, True, True, True, False, False, True],
        table_id="break-even",
    )  # fmt: skip
    return out


def search(sim: Simulated) -> str:
    search = sim.plan.search
    if search is None:
        return ""
    shown = search.candidates[:SEARCH_ROWS]
    # Only the settings that differ between candidates tell them apart.
    varying = [
        key
        for key in dict.fromkeys(k for c in shown for k in c.settings)
        if len({str(c.settings.get(key)) for c in search.candidates}) > 1
    ]
    rows = []
    for c in shown:
        rows.append(
            (
                fmt(c.rank),
                ", ".join(f"{k}={c.settings.get(k)}" for k in varying),
                c.status,
                fmt(c.max_rate_per_s),
                usd(c.cost_per_million_output_tokens_usd),
                fmt(c.latency_ms),
                "yes" if c.pareto else "",
                c.reason,
            )
        )
    return (
        "<h2>Configuration search</h2>"
        f"<p class='note'>{search.simulated} simulated, {search.pruned} pruned, "
        f"{search.infeasible} infeasible; the {len(shown)} best of {len(search.candidates)} "
        "candidates by cost per million output tokens (rented in whole instances of the "
        "cheapest offer each replica's shape fits; screening precision: one run per rate, "
        "point estimates). "
        "The costs above are for the scenario's own deployment; a cheaper configuration "
        "here is worth a plan of its own.</p>"
        + table(
            ["rank", "settings", "status", "max req/s", "$/M out", "latency ms", "Pareto", "why"],
            rows,
            numeric=[True, False, False, True, True, True, False, False],
        )
    )


def sensitivity_table(frame: pd.DataFrame) -> str:
    rows = []
    for (axis, factor), part in frame.groupby(["axis", "factor"], sort=False):
        best = part[part["cheapest"]].iloc[0]
        rows.append(
            (
                f"{axis} ×{factor:g}",
                fmt(best["rate_per_s"]),
                fmt(best["replicas"]) if best["kind"] != "api" else "–",
                "simulated" if best["replicas_simulated"] else "scaled",
                best["option"],
                usd(best["monthly_usd"]),
            )
        )
    return table(
        ["case", "requests/s", "replicas", "fleet", "cheapest option", "per month"],
        rows,
        numeric=[False, True, True, False, False, True],
        table_id="sensitivity",
    )


def assumptions_section(sim: Simulated, options: list[costs.PriceOption]) -> str:
    """What the numbers assume, with sources: prices, the cost model's efficiencies, its
    validated error band, the held-out validation, the planner's notes and modelling limits."""
    out = ['<h2 id="assumptions">Assumptions and sources</h2>', _prices_html(sim, options)]
    source, metadata, params = assumptions.efficiency_rows(sim.scenario)
    out.append(_efficiencies_html(source, metadata, params))
    out.append(_error_band_html(sim, assumptions.error_band(metadata)))
    out.append(_validation_html(assumptions.validation_summary()))
    notes = list(sim.plan.notes) + (list(sim.plan.costs.notes) if sim.plan.costs else [])
    if notes:
        out.append(
            "<h3>Planner notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
        )
    out.append(
        "<h3>Modelling limits</h3><ul>"
        "<li>Between simulated points (target and ±30% traffic) the fleet grows in whole "
        "replicas of the single-replica maximum rate.</li>"
        "<li>Owned-server electricity follows GPU busy time scaled from the target run.</li>"
        "<li>The ±30% price case scales GPU-hour and server prices; API prices stay.</li>"
        "</ul>"
    )
    return "".join(out)


def _prices_html(sim: Simulated, options: list[costs.PriceOption]) -> str:
    """Every price used, with its date and source, and how months and instances count."""
    prices = assumptions.price_rows(options, sim.scenario.hardware.gpu)
    return (
        "<h3>Prices</h3>"
        + table(
            ["item", "value", "date", "source"],
            [(r["item"], r["value"], r["date"], r["source"]) for r in prices],
            table_id="prices",
        )
        + "<p class='note'>A month is 730 hours; rented instances are whole, fit the replica's "
        "shape (a tensor-parallel NVLink replica rents instances with that many NVLink-connected "
        "GPUs) and are held all month; owned machines are written off linearly. API latency is "
        "not simulated.</p>"
    )


def _efficiencies_html(source: str, metadata: dict[str, Any], params: list[dict[str, Any]]) -> str:
    """The cost model's efficiency parameters, the calibration file they come from and when
    it was written."""
    when = metadata.get("written_utc", "")
    return (
        f"<h3>Cost-model efficiencies</h3><p>Source: <code>{esc(source)}</code>"
        + (f", written {esc(when)}" if when else "")
        + "</p>"
        + table(
            ["parameter", "value", "origin"],
            [(r["parameter"], r["value"], r["origin"]) for r in params],
            numeric=[False, True, False],
            table_id="efficiencies",
        )
    )


def _error_band_html(sim: Simulated, band: list[dict[str, Any]]) -> str:
    """The held-out error band that applies to this GPU and engine, and the calibration's
    error on the rows it was fitted to (``band``), or warnings where either is missing."""
    out = ["<h3>Validated error band</h3>"]
    applies = sim.plan.error_band
    if applies:
        out.append(f"<p id='error-band'>The band that applies here: {esc(applies['text'])}.</p>")
    else:
        out.append("<p class='warn'>No validated error band recorded for this GPU.</p>")
    if band:
        out.append(
            "<p>Error of the calibration on the rows it was fitted to "
            "(a fit, not a held-out test):</p>"
        )
        out.append(
            table(
                ["rows", "n", "median |error| %", "worst |error| %"],
                [
                    (b["rows"], fmt(b["n"]), fmt(b["median_abs_pct"]), fmt(b["max_abs_pct"]))
                    for b in band
                ],
                numeric=[False, True, True, True],
            )
        )
    else:
        out.append(
            "<p class='warn'>No calibration fit: this GPU runs on datasheet defaults, not on "
            "measurements.</p>"
        )
    return "".join(out)


def _validation_html(validation: dict[str, Any]) -> str:
    """The held-out validation summary (``assumptions.validation_summary``), or a warning
    where the repository has none."""
    if validation["available"] and validation["rows"]:
        return (
            f"<p>Held-out validation (<code>{esc(validation['path'])}</code>): the simulator "
            "against measurements and published numbers it was not fitted on.</p>"
        ) + table(validation["header"], validation["rows"], table_id="validation")
    return (
        "<p class='warn'>Held-out validation results: not available "
        f"(<code>{esc(validation['path'])}</code> not found or without a summary).</p>"
    )


def appendix(scenario: Scenario, sim: Simulated, wall_s: dict[str, float]) -> str:
    given = scenario.model_dump(mode="json", exclude_unset=True)
    given["plan"] = sim.plan.plan.model_dump(mode="json", exclude_unset=True)
    resolved = scenario.model_dump(mode="json")
    resolved["plan"] = sim.plan.plan.model_dump(mode="json")
    timing = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in wall_s.items())
    return (
        '<h2 id="appendix">Appendix: the scenario</h2>'
        "<h3>As given (overrides applied); reload it with servesim</h3>"
        f"<pre id='scenario-yaml'>{esc(yaml.safe_dump(given, sort_keys=False))}</pre>"
        "<h3>Resolved, every default filled in</h3>"
        f"<pre id='scenario-resolved'>{esc(yaml.safe_dump(resolved, sort_keys=False))}</pre>"
        f"<p class='note'>Computing time: {esc(timing)}; "
        f"{sim.plan.rate.simulations} simulations in the rate search.</p>"
    )
