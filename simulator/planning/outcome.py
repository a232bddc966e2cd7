"""A scenario sent to a worker and back, and one run judged on its point estimates.

A run *meets the SLO* on its point estimates when it is not saturated, every percentile
target of the scenario's ``slo:`` is met (an unobservable one counts as missed), at most
``max_rejected_fraction`` of its requests were rejected and, if asked, at least
``min_attainment`` of the requests met every threshold. The planner judges points on the
95% intervals of their pooled runs instead (``planning.evidence``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simulator.config.loader import scenario_from_dict
from simulator.config.scenario import Scenario
from simulator.planning.evidence import NO_CRITERIA, Criteria


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain JSON-ready data that validates back to an equal scenario
    (``scenario_from_data``)."""
    return scenario.model_dump(mode="json", exclude_unset=True)


def scenario_from_data(data: dict[str, Any], base_dir: str | Path) -> Scenario:
    """The scenario of ``scenario_data`` (sent to a worker), its paths resolving from
    ``base_dir``."""
    return scenario_from_dict(data, base_dir=Path(base_dir))


def judge(summary: dict[str, Any], criteria: Criteria = NO_CRITERIA) -> tuple[bool, str]:
    """(meets, reason) of one run's summary dict on its point estimates (a single run
    shown, as on the report's latency-against-load curve; the planner's verdicts use the
    intervals of ``planning.evidence``); the reason names what failed, with numbers."""
    if summary.get("saturated"):
        return False, f"saturated ({summary.get('saturation_reason') or 'queue still growing'})"
    total = summary.get("requests_total") or 0
    rejected = summary.get("requests_rejected") or 0
    if total and rejected / total > criteria.max_rejected_fraction:
        return False, f"{rejected} of {total} requests rejected"
    slo = summary.get("slo") or {}
    failed = []
    for c in slo.get("constraints", []):
        if c.get("met") is False:
            failed.append(
                f"{c['metric']} {c['percentile']} {c['observed_ms']:.1f} ms > "
                f"{c['threshold_ms']:g} ms"
            )
        elif c.get("met") is None:
            failed.append(f"{c['metric']} {c['percentile']} not observed")
    if failed:
        return False, "SLO missed: " + "; ".join(failed)
    attainment = slo.get("attainment")
    if criteria.min_attainment is not None:
        if attainment is None or (isinstance(attainment, float) and math.isnan(attainment)):
            return False, "SLO attainment not observed"
        if attainment < criteria.min_attainment:
            return False, f"SLO attainment {attainment:.3f} < {criteria.min_attainment:g}"
    return True, "meets the SLO"
