"""The procurement report: recommendation, every plot, the assumptions, consistency with the
planner, and the command line."""

from __future__ import annotations

import argparse
import base64
import html as html_lib
import io
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.config.loader import scenario_from_dict
from simulator.errors import UserError
from simulator.planning.outcome import judge
from simulator.reports import FIGURE_IDS, build_report, write_report
from simulator.reports import costs as report_costs

ROOT = Path(__file__).resolve().parents[1]
PLAN_CHAT = ROOT / "workloads" / "plan_chat.yaml"
#: Small runs and a small statistical budget keep the suite fast.
SMALL = [
    "workload.num_requests=300",
    "plan.min_requests_per_replica=300",
    "plan.max_requests_per_replica=1500",
]


@pytest.fixture(scope="module")
def built():
    start = time.perf_counter()
    report = build_report(PLAN_CHAT, SMALL)
    return report, time.perf_counter() - start


def _parser():
    from simulator.cli import listing, report, show

    parser = argparse.ArgumentParser(prog="servesim")
    sub = parser.add_subparsers()
    for module in (report, listing, show):
        module.register(sub)
    return parser


def test_report_states_the_recommendation(built):
    report, _ = built
    rec = report.recommendation
    html = report.html
    assert 'id="recommendation"' in html
    assert html_lib.escape(rec["option"]) in html
    # the headline numbers appear as written in the recommendation box
    box = html[html.index('id="recommendation"') : html.index("</div></div>", html.index("kpis"))]
    assert f"${rec['monthly_usd']:,.0f}" in box
    assert rec["gpus"] == rec["replicas"] * report.simulated.gpus_per_replica
    # the recommendation is the cheapest option that can run a production service (no
    # marketplace rental), and the options follow in order of monthly cost
    production = report.options[report.options["market"] != "marketplace"]
    assert rec["monthly_usd"] == production["monthly_usd"].min()
    assert rec["market"] != "marketplace"
    assert list(report.options["monthly_usd"]) == sorted(report.options["monthly_usd"])
    if rec["marketplace"]:
        assert "not recommended" in html
    assert 'id="options"' in html
    for name in report.options["name"]:
        assert html_lib.escape(name) in html


def test_report_has_every_plot_as_an_embedded_png(built):
    report, _ = built
    from PIL import Image

    for fig_id in FIGURE_IDS:
        match = re.search(
            rf'<img id="img-{fig_id}"[^>]*src="data:image/png;base64,([^"]+)"', report.html
        )
        assert match, fig_id
        image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
        assert image.width > 400 and image.height > 200
        pixels = np.asarray(image.convert("L"))
        assert (pixels < 200).mean() > 0.01, f"{fig_id} looks blank"
    assert len(re.findall(r"<img ", report.html)) == len(FIGURE_IDS)


def test_report_is_self_contained(built):
    report, _ = built
    # nothing to fetch: every src is inline, no external stylesheet or script
    srcs = re.findall(r'src="([^"]*)"', report.html)
    assert srcs and all(s.startswith("data:") for s in srcs)
    assert "<link " not in report.html
    assert "<script src" not in report.html
    assert "@media print" in report.html


def test_report_lists_assumptions_with_sources_and_dates(built):
    report, _ = built
    html = report.html
    assert 'id="assumptions"' in html and 'id="prices"' in html and 'id="efficiencies"' in html
    best = report.simulated
    for option in report_costs.price_options(best):
        if option.kind == "cloud":
            assert option.offer.date in html
            assert html_lib.escape(option.offer.source) in html
        if option.kind == "api":
            assert html_lib.escape(option.api["source"]) in html
    # the calibration's measured error band of the h100-sxm file is quoted, and the
    # held-out band that applies to this GPU and engine
    assert "median |error| %" in html
    assert "id='error-band'" in html and "held-out band for h100-sxm" in html
    assert "calibration/h100-sxm.yaml" in html
    # the validation results are quoted or honestly missing
    from simulator.reports.assumptions import validation_summary

    found = validation_summary()
    if found["available"] and found["rows"]:
        assert 'id="validation"' in html
        for row in found["rows"]:
            assert html_lib.escape(row[-1]) in html
    else:
        assert "Held-out validation results: not available" in html


def test_appendix_holds_the_resolved_scenario(built):
    report, _ = built
    text = re.search(r"<pre id='scenario-yaml'>(.*?)</pre>", report.html, re.S).group(1)
    data = yaml.safe_load(html_lib.unescape(text))
    assert data["plan"]["target_rate_per_s"] == 40
    data.pop("plan")
    again = scenario_from_dict(data)
    assert again.model_dump() == report.simulated.scenario.model_dump()
    assert again.workload.num_requests == 300
    resolved = re.search(r"<pre id='scenario-resolved'>(.*?)</pre>", report.html, re.S).group(1)
    resolved = yaml.safe_load(html_lib.unescape(resolved))
    assert resolved["engine"]["kv_block_size"] == report.simulated.scenario.engine.kv_block_size


def test_costs_agree_with_the_planner(built):
    report, _ = built
    planned = report.simulated.plan.to_dict()["costs"]["options"]
    planner = {o["name"]: o["monthly_usd"] for o in planned}
    ours = dict(zip(report.options["name"], report.options["monthly_usd"], strict=True))
    assert set(planner) == set(ours)
    for name, monthly in planner.items():
        assert ours[name] == pytest.approx(monthly, rel=1e-9), name


def test_recommended_fleet_meets_the_slo_and_one_fewer_does_not(built):
    report, _ = built
    sim = report.simulated
    meets, reason = judge(sim.run.summary)
    assert meets, reason
    assert sim.replicas == sim.plan.replicas.replicas
    assert sim.plan.replicas.fewer_reason  # why one fewer replica fails, from simulation


def test_load_curve_rises_and_crosses_the_knee(built):
    report, _ = built
    curve = report.simulated.load_curve
    assert curve["rate_per_s"].is_monotonic_increasing
    # latency at the highest rate exceeds latency at the lowest
    assert curve["tpot_ms_p99"].iloc[-1] > curve["tpot_ms_p99"].iloc[0]
    assert curve["meets_slo"].iloc[0]
    knee = report.simulated.plan.rate.knee_per_s
    assert curve["rate_per_s"].iloc[0] < knee < curve["rate_per_s"].iloc[-1]


def test_traffic_curve_and_break_even_points(built):
    report, _ = built
    sim = report.simulated
    curve = report_costs.cost_against_traffic(sim)
    api = curve[curve["kind"] == "api"]
    for _, group in api.groupby("option"):
        per_request = group["monthly_usd"] / group["rate_per_s"]
        assert np.allclose(per_request, per_request.iloc[0])  # linear in traffic
    # the planner's break-even rates: just below, the old option is the cheapest; just
    # above, the new one
    costs = report_costs.planned(sim)

    def cheapest(rate):
        found = [report_costs.cost_at(o, rate, costs.traffic, costs.fleet) for o in costs.options]
        return min(found, key=lambda c: c.monthly_usd).name

    changes = report_costs.cheapest_changes(sim)
    assert changes == sim.plan.to_dict()["costs"]["break_even"]
    for change in changes:
        assert cheapest(change["rate_per_s"] * 0.999) == change["from"]
        assert cheapest(change["rate_per_s"] * 1.001) == change["to"]
    # owned and rented fleets never shrink as traffic grows
    for _, group in curve[curve["kind"] != "api"].groupby("option"):
        assert group["monthly_usd"].is_monotonic_increasing


def test_sensitivity_scales_prices_and_replans_traffic(built):
    report, _ = built
    sim = report.simulated
    frame = report_costs.sensitivity(sim)
    assert sim.replicas_by_traffic[0.7] <= sim.replicas <= sim.replicas_by_traffic[1.3]
    price = frame[frame["axis"] == "price"].set_index(["option", "factor"])["monthly_usd"]
    for option in report_costs.price_options(sim):
        if option.kind == "cloud":
            assert price[(option.name, 1.3)] == pytest.approx(1.3 * price[(option.name, 1.0)])
        if option.kind == "api":
            assert price[(option.name, 1.3)] == pytest.approx(price[(option.name, 1.0)])
    for (_, _), part in frame.groupby(["axis", "factor"]):
        assert part["cheapest"].sum() >= 1
        assert part.loc[part["cheapest"], "monthly_usd"].iloc[0] == part["monthly_usd"].min()
    assert 'id="sensitivity"' in report.html


def test_small_report_is_fast(built):
    _, wall_s = built
    assert wall_s < 60


def test_report_without_a_target_plans_the_maximum_rate():
    report = build_report(ROOT / "workloads" / "quickstart.yaml", SMALL, replications=1)
    sim = report.simulated
    assert sim.target_rate_per_s == pytest.approx(sim.plan.max_rate_per_s)
    assert "maximum sustainable rate" in report.html
    assert math.isfinite(report.recommendation["monthly_usd"])


def test_an_unreachable_slo_is_a_user_error():
    with pytest.raises(UserError, match="no rate meets the SLO"):
        build_report(PLAN_CHAT, [*SMALL, "slo.ttft_ms.p99=0.001", "plan.replications=1"])


def test_cli_writes_html_and_prints_json(tmp_path, capsys):
    out = tmp_path / "sub" / "report.html"
    args = _parser().parse_args(
        [
            "report",
            str(PLAN_CHAT),
            "-o",
            str(out),
            "--json",
            "--replications",
            "1",
            *[arg for setting in SMALL for arg in ("--set", setting)],
        ]
    )
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["files"] == [str(out)]
    assert html_lib.escape(printed["recommendation"]["option"]) in out.read_text()
    production = [o for o in printed["options"] if o["market"] != "marketplace"]
    assert production[0]["monthly_usd"] == printed["recommendation"]["monthly_usd"]


def test_write_report_without_browser_for_pdf(tmp_path, monkeypatch, built):
    report, _ = built
    monkeypatch.delenv("SERVESIM_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(UserError, match="needs Chromium"):
        write_report(report, tmp_path / "r.html", tmp_path / "r.pdf")
    assert (tmp_path / "r.html").is_file()


def test_a_browser_that_cannot_run_is_named_not_the_output(tmp_path, monkeypatch, built):
    """SERVESIM_CHROMIUM naming nothing, or a file that is no program, is the browser's
    problem: the message names the setting or the browser, not the PDF being written."""
    report, _ = built
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("SERVESIM_CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(UserError, match=r"SERVESIM_CHROMIUM=.* is neither a file nor a program"):
        write_report(report, tmp_path / "a.html", tmp_path / "a.pdf")
    not_a_program = tmp_path / "browser.txt"
    not_a_program.write_text("not a program")
    monkeypatch.setenv("SERVESIM_CHROMIUM", str(not_a_program))
    with pytest.raises(UserError, match="cannot run the browser") as info:
        write_report(report, tmp_path / "b.html", tmp_path / "b.pdf")
    assert "b.pdf" not in str(info.value)


def test_report_with_a_search_lists_the_ranked_candidates():
    report = build_report(
        PLAN_CHAT,
        [
            *SMALL,
            "search.gpus=[h100-sxm,h200]",
            "search.batching=[continuous,chunked]",
            "plan.replications=1",
        ],
    )
    search = report.simulated.plan.search
    html = report.html
    assert "Configuration search" in html
    section = html[html.index("Configuration search") : html.index("<h2>Figures</h2>")]
    ranked = [c for c in search.candidates if c.feasible]
    assert ranked
    # candidates appear best first, each with its varying settings and its cost
    positions = [
        section.index(f"gpu={c.settings['gpu']}, batching={c.settings['batching']}") for c in ranked
    ]
    assert positions == sorted(positions)
    costs = [c.cost_per_million_output_tokens_usd for c in ranked]
    assert costs == sorted(costs)
