"""Shared base for scenario models: unknown keys, wrong types, infinite numbers and
impossible values are rejected (see ``simulator.specs.strict``)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field

from simulator.specs.strict import StrictModel as _InputModel


class StrictModel(_InputModel):
    """A scenario section: unknown keys, wrong types and impossible values are rejected;
    assignments are validated too."""

    model_config = ConfigDict(validate_assignment=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated again; fields given stay given, the others keep
        their defaults."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self).model_validate({**kept, **changes})


#: Upper bounds that keep a scenario's allocations sane: replicas of one group (each is a
#: process with its own state), GPUs of one replica along each parallel axis, sequences
#: one replica runs at once, tokens one step may take, tokens of one sequence.
MAX_REPLICAS = 10_000
MAX_PARALLEL = 1024
MAX_NUM_SEQS = 65_536
MAX_BATCHED_TOKENS = 1 << 24
MAX_TOKENS = 1 << 30
Replicas = Annotated[int, Field(gt=0, le=MAX_REPLICAS)]
Parallel = Annotated[int, Field(gt=0, le=MAX_PARALLEL)]
Tokens = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
#: Simulated seconds of a scenario setting (delays, intervals): at most about 32 years.
Seconds = Annotated[float, Field(ge=0.0, le=1e9)]

#: Latency metrics an SLO may constrain, and the statistics it may name.
SLO_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
SLO_PERCENTILES = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")
