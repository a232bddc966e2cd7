"""Shared base for scenario models: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A scenario section: unknown keys, wrong types and impossible values are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: Latency metrics an SLO may constrain, and the statistics it may name.
SLO_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
SLO_PERCENTILES = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")
