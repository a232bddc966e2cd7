"""The ``plan:`` and ``search:`` sections of a planning scenario file, and how to read them.

A planning file is a scenario YAML with two optional extra sections::

    plan:                       # what to find for the scenario's own deployment
      target_rate_per_s: 40     # fewest replicas serving this rate within the SLO
      replications: 3           # seeds per rate (the knee's confidence interval)
    search:                     # configurations to compare (cross product)
      gpus: [h100-sxm, h200, l40s]
      tensor_parallel: [1, 2]
      batching: [continuous]
      weight_dtype: [bf16, fp8]

Both sections are validated here (unknown keys are errors) and removed before the rest is
validated as a ``Scenario``, so every error of the file is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from simulator.config.loader import (
    apply_overrides,
    read_scenario_file,
    scenario_from_dict,
    scenario_path,
    validation_messages,
)
from simulator.config.planning import (  # noqa: F401  (re-exported)
    PRICE_KINDS,
    PlanConfig,
    SearchConfig,
    TcoConfig,
)
from simulator.config.scenario import Scenario
from simulator.errors import UserError


@dataclass
class PlanFile:
    """A planning file read: the scenario and its optional plan and search sections."""

    scenario: Scenario
    plan: PlanConfig
    search: SearchConfig | None
    path: Path | None = None


def _errors(exc: ValidationError, section: str, data: object) -> list[str]:
    return validation_messages(exc, data, section)


def split_sections(data: dict[str, Any]) -> tuple[dict, PlanConfig, SearchConfig | None, list]:
    """Remove ``plan``/``search`` from a scenario mapping; return (rest, plan, search, errors)."""
    rest = dict(data)
    errors: list[str] = []
    plan, search = PlanConfig(), None
    raw_plan = rest.pop("plan", None)
    raw_search = rest.pop("search", None)
    try:
        plan = PlanConfig.model_validate(raw_plan or {})
    except ValidationError as exc:
        errors += _errors(exc, "plan", raw_plan or {})
    if raw_search is not None:
        try:
            search = SearchConfig.model_validate(raw_search)
        except ValidationError as exc:
            errors += _errors(exc, "search", raw_search)
    return rest, plan, search, errors


def plan_file_from_dict(
    data: Any, *, source: str = "<scenario>", base_dir: Path | None = None
) -> PlanFile:
    """Validate a planning mapping (scenario keys plus ``plan``/``search``)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a scenario must be a mapping of keys")
    rest, plan, search, errors = split_sections(data)
    try:
        scenario = scenario_from_dict(rest, source=source, base_dir=base_dir)
    except UserError as exc:
        errors = [f"{source}: {e}" for e in errors] + exc.messages
        raise UserError(errors) from None
    if errors:
        raise UserError([f"{source}: {e}" for e in errors])
    return PlanFile(scenario, plan, search)


def load_plan_file(path: str | Path, overrides: list[str] | None = None) -> PlanFile:
    """Read a planning file; ``overrides`` (``dotted.key=value``) may set plan/search keys too."""
    path = scenario_path(path, "load_plan_file")
    data = read_scenario_file(path)
    if isinstance(data, dict):
        data = apply_overrides(data, overrides or [])
    loaded = plan_file_from_dict(data, source=str(path), base_dir=path.resolve().parent)
    loaded.path = path
    return loaded
