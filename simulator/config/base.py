"""Shared base for scenario models: unknown keys are errors."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A scenario section: unknown keys, wrong types and impossible values are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated again; fields given stay given, the others keep
        their defaults."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self).model_validate({**kept, **changes})


#: Latency metrics an SLO may constrain, and the statistics it may name.
SLO_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
SLO_PERCENTILES = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")
