"""Per-request outcomes of a run, indexed by the order in which requests arrived."""

from __future__ import annotations

import math

import numpy as np

from simulator.metrics.records import RequestRecords
from simulator.workload.request import Request

NAN = math.nan


class RequestLedger:
    """Append-only columns, one entry per arrived request (ordinal = arrival order)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.first_token_s: list[float] = []
        self.finish_s: list[float] = []
        self.replica: list[int] = []
        self.reject_reason: list[str] = []
        self.preemptions: list[int] = []
        self.cached_prompt_tokens: list[int] = []
        #: Request class of each request, as an index into ``class_names``.
        self.klass: list[int] = []
        self.class_names: list[str] = []
        self._class_index: dict[str, int] = {}

    def add(self, request: Request) -> int:
        """Record an arrival; returns its ordinal."""
        self.requests.append(request)
        self.first_token_s.append(NAN)
        self.finish_s.append(NAN)
        self.replica.append(-1)
        self.reject_reason.append("")
        self.preemptions.append(0)
        self.cached_prompt_tokens.append(0)
        index = self._class_index.get(request.class_name)
        if index is None:
            index = self._class_index[request.class_name] = len(self.class_names)
            self.class_names.append(request.class_name)
        self.klass.append(index)
        return len(self.requests) - 1

    def reject(self, ordinal: int, reason: str) -> None:
        self.reject_reason[ordinal] = reason

    def __len__(self) -> int:
        return len(self.requests)

    def to_records(self) -> RequestRecords:
        reqs = self.requests
        reasons = np.array(self.reject_reason, dtype=object)
        return RequestRecords(
            request_id=np.fromiter((r.request_id for r in reqs), np.int64, len(reqs)),
            arrival_s=np.fromiter((r.arrival_s for r in reqs), np.float64, len(reqs)),
            first_token_s=np.array(self.first_token_s, dtype=np.float64),
            finish_s=np.array(self.finish_s, dtype=np.float64),
            prompt_tokens=np.fromiter((r.prompt_tokens for r in reqs), np.int64, len(reqs)),
            output_tokens=np.fromiter((r.output_tokens for r in reqs), np.int64, len(reqs)),
            replica=np.array(self.replica, dtype=np.int64),
            class_name=np.array([r.class_name for r in reqs], dtype=object),
            rejected=reasons != "",
            reject_reason=reasons,
            cached_prompt_tokens=np.array(self.cached_prompt_tokens, dtype=np.int64),
            preemptions=np.array(self.preemptions, dtype=np.int64),
        )
