"""Workload layer: arrival processes, length distributions, request classes, sessions,
trace replay and recording. Requests are produced lazily by a ``RequestSource``."""

from simulator.workload.request import Request
from simulator.workload.source import (
    DEFAULT_NUM_REQUESTS,
    RequestSource,
    build_source,
    iterate_requests,
)

__all__ = ["DEFAULT_NUM_REQUESTS", "Request", "RequestSource", "build_source", "iterate_requests"]
