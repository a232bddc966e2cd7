"""Metrics: what a run records, and the summary users read (percentiles, goodput, cost)."""

from simulator.metrics.histogram import GapHistogram
from simulator.metrics.output import format_summary_table, write_outputs
from simulator.metrics.records import ReplicaStats, RequestRecords, RunRecords, TimeSeries
from simulator.metrics.summary import Summary, littles_law_check, summarize

__all__ = [
    "GapHistogram",
    "ReplicaStats",
    "RequestRecords",
    "RunRecords",
    "Summary",
    "TimeSeries",
    "format_summary_table",
    "littles_law_check",
    "summarize",
    "write_outputs",
]
