"""Workload layer: arrival processes, length distributions, request classes, sessions,
trace replay and recording. Requests are produced lazily by a ``RequestSource``."""

from simulator.workload.request import Request
from simulator.workload.source import (
    DEFAULT_NUM_REQUESTS,
    RequestSource,
    build_source,
    iterate_requests,
)
from simulator.workload.trace_io import TraceReader, write_trace

__all__ = [
    "DEFAULT_NUM_REQUESTS",
    "Request",
    "RequestSource",
    "TraceReader",
    "build_source",
    "iterate_requests",
    "write_trace",
]
