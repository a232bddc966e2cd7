"""Procurement reports (HTML with embedded plots, optional PDF through headless Chromium).

Notebook use::

    from simulator.reports import build_report, write_report
    report = build_report("workloads/plan_chat.yaml", ["workload.num_requests=400"])
    report.recommendation["option"], report.recommendation["monthly_usd"]
    write_report(report, "report.html")
"""

from simulator.reports.report import FIGURE_IDS, Report, build_report, render, write_report

__all__ = ["FIGURE_IDS", "Report", "build_report", "render", "write_report"]
