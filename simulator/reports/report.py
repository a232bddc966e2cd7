"""The procurement report: the question, the recommendation and why, the options, the
figures, the assumptions with sources and the scenario, as one self-contained HTML page.

``build_report(path)`` simulates (``gather``), prices (``costs``), draws (``plots``) and
returns a :class:`Report` whose ``html`` can be written anywhere; ``write_report`` also
prints it to PDF through headless Chromium when asked.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.config.loader import Overrides, override_items, refuse
from simulator.config.scenario import Scenario
from simulator.planning import PlanFile
from simulator.planning.plan import PLAN_SOURCE
from simulator.planning.points import check_replications
from simulator.reports import costs, plots, sections
from simulator.reports.gather import Simulated, simulate_for_report
from simulator.reports.html import esc, figure, page, usd

#: Figure ids in the order they appear; every report has all of them.
FIGURE_IDS = (
    "latency-vs-load",
    "latency-distributions",
    "cost-per-million",
    "cost-vs-traffic",
    "utilisation",
    "sensitivity",
)


@dataclass
class Report:
    """A built report: its HTML and the facts it states (for tests and the CLI)."""

    html: str
    recommendation: dict[str, Any]
    options: pd.DataFrame
    figures: dict[str, bytes]
    simulated: Simulated
    wall_s: dict[str, float] = field(default_factory=dict)

    def recommendation_line(self) -> str:
        """The recommendation in one line of text."""
        r = self.recommendation
        unit = f"{r['gpus']}× {r['gpu']}, " if r["kind"] != "api" else ""
        return (
            f"{r['option']} ({unit}{r['target_rate_per_s']:.4g} req/s): "
            f"{usd(r['monthly_usd'])}/month, {usd(r['usd_per_million_output_tokens'])} per "
            "million output tokens"
        )


def render(sim: Simulated) -> Report:
    """Price, draw and lay out a report from simulated results."""
    import time

    t0 = time.perf_counter()
    options = costs.options_at_target(sim)
    rec = costs.recommendation(sim, options)
    curve = costs.cost_against_traffic(sim)
    changes = costs.cheapest_changes(sim)
    sens = costs.sensitivity(sim)
    figures = _draw_figures(sim, options, curve, changes, sens)
    captions = _figure_captions(sim)
    wall = dict(sim.wall_s)
    wall["render_s"] = time.perf_counter() - t0
    s = sim.scenario
    generated = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>Capacity plan: {esc(s.name or 'scenario')}</h1>",
        f"<div class='meta'>{esc(s.description or '')} Generated {esc(generated)} by servesim "
        f"{esc(_version())}.</div>",
        sections.question(sim),
        sections.recommendation(sim, rec, options, changes),
        sections.options_table(options, rec["option"]),
        sections.break_even(sim, changes),
        sections.search(sim),
        "<h2>Figures</h2>",
    ]
    for fig_id in FIGURE_IDS:
        title, caption = captions[fig_id]
        body.append(figure(fig_id, figures[fig_id], title, caption))
        if fig_id == "sensitivity":
            body.append(sections.sensitivity_table(sens))
    body.append(sections.assumptions_section(sim, costs.price_options(sim)))
    wall["total_s"] = sim.wall_s.get("total_s", 0.0) + wall["render_s"]
    body.append(sections.appendix(s, sim, wall))
    html_text = page(f"Capacity plan: {s.name or 'scenario'}", "".join(body))
    return Report(html_text, rec, options, figures, sim, wall)


def _draw_figures(
    sim: Simulated,
    options: pd.DataFrame,
    curve: pd.DataFrame,
    changes: list[dict[str, Any]],
    sens: pd.DataFrame,
) -> dict[str, bytes]:
    """Every figure of the report by id (``FIGURE_IDS``), drawn from the simulated results
    and the prices."""
    slo = dict(sim.scenario.slo or {}) or None
    rate = sim.plan.rate
    return {
        "latency-vs-load": plots.latency_against_load(
            sim.load_curve, slo, rate.knee_per_s, rate.knee_ci95_per_s, rate.max_rate_per_s
        ),
        "latency-distributions": plots.latency_distributions(sim.latencies_ms(), slo),
        "cost-per-million": plots.cost_per_million(options),
        "cost-vs-traffic": plots.cost_against_traffic(curve, changes, sim.target_rate_per_s),
        "utilisation": plots.utilisation_over_time(
            sim.run.timeseries, sim.scenario.engine.max_num_seqs
        ),
        "sensitivity": plots.sensitivity(sens),
    }


def _figure_captions(sim: Simulated) -> dict[str, tuple[str, str]]:
    """Title and caption of every figure by id: what is drawn and how to read it."""
    return {
        "latency-vs-load": (
            "Latency against load",
            "TTFT and TPOT percentiles of the scenario's deployment at rising request rates "
            "(one simulation per rate, at fractions of the knee); dashed red: the SLO; grey: "
            "the knee and the bracket it lies in (the highest rate certified at 95% to meet the "
            "SLO and the lowest certified to miss); green: the highest rate certified to meet.",
        ),
        "latency-distributions": (
            "TTFT and TPOT distributions",
            f"Every request of a run of {sim.replicas} replica(s) at "
            f"{sim.target_rate_per_s:.4g} requests/s.",
        ),
        "cost-per-million": (
            "Cost per million tokens by option",
            "Dark bars: each option's whole monthly cost per million output tokens; light "
            "bars: per million input and output tokens.",
        ),
        "cost-vs-traffic": (
            "Monthly cost against traffic, with break-even points",
            "Rent (blue), own (green) and API (red). Self-hosted lines step with whole "
            "replicas, instances and servers; dots mark where the cheapest option changes.",
        ),
        "utilisation": (
            "Utilisation and KV-cache use over time",
            "Batch slots in use (running sequences over engine.max_num_seqs), KV-cache blocks "
            "in use and the queue, during the target-rate run.",
        ),
        "sensitivity": (
            "Sensitivity to ±30% traffic and ±30% price",
            "Monthly cost of every option; the fleet at ±30% traffic was re-planned by "
            "simulation. The outlined bar is the cheapest option of each case.",
        ),
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("servesim")
    except Exception:  # not installed as a distribution
        return "(source tree)"


def build_report(
    source: PlanFile | Scenario | str | Path,
    overrides: Overrides = None,
    *,
    replications: int | None = None,
    progress: bool = False,
) -> Report:
    """Simulate and render the report of a planning file (or scenario). ``overrides`` (of a
    file path only) take any form ``load_scenario`` takes; ``replications``: a whole number
    >= 1, or None for the plan's own."""
    if not isinstance(source, str | PathLike | PlanFile | Scenario):
        refuse("build_report", "source", PLAN_SOURCE, source)
    override_items(overrides)  # their form, checked before any simulation
    check_replications(replications, "build_report")
    sim = simulate_for_report(source, overrides, replications=replications, progress=progress)
    return render(sim)


def write_report(
    report: Report, html_path: str | Path, pdf_path: str | Path | None = None
) -> list[Path]:
    """Write the HTML (and, through headless Chromium, the PDF); returns the paths."""
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(report.html, encoding="utf-8")
    written = [html_path]
    if pdf_path is not None:
        from simulator.reports.browser import print_to_pdf

        written.append(print_to_pdf(html_path, Path(pdf_path)))
    return written
