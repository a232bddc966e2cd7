"""Procurement reports (HTML with embedded plots, optional PDF through headless Chromium).

Notebook use::

    from simulator.reports import build_report, write_report
    report = build_report("workloads/plan_chat.yaml", ["workload.num_requests=400"])
    report.recommendation["option"], report.recommendation["monthly_usd"]
    write_report(report, "report.html")
"""

import importlib

#: Public names, imported from ``simulator.reports.report`` on first use: the terminal
#: helpers of this package are used by commands that draw no plot (and need no matplotlib).
_REPORT_NAMES = ("FIGURE_IDS", "Report", "build_report", "render", "write_report")


def __getattr__(name: str):
    if name in _REPORT_NAMES:
        return getattr(importlib.import_module("simulator.reports.report"), name)
    raise AttributeError(f"module 'simulator.reports' has no attribute {name!r}")


__all__ = ["FIGURE_IDS", "Report", "build_report", "render", "write_report"]
