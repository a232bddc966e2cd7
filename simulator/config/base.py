"""Shared base for scenario models: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A scenario section: unknown keys, wrong types and impossible values are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
