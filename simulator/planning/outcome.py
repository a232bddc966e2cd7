"""One simulated point of a search: derive a scenario, run it, judge it against the SLO.

A run *meets the SLO* when it is not saturated, every percentile target of the scenario's
``slo:`` is met (an unobservable one counts as missed), at most ``max_rejected_fraction`` of
its requests were rejected and, if asked, at least ``min_attainment`` of the requests met
every threshold. Without an ``slo:`` only saturation and rejections decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config.loader import scenario_from_dict
from simulator.config.scenario import Scenario
from simulator.errors import UserError

#: A sustainable run completes, over the second half of its arrival period, at least this
#: fraction of what arrives then (less two standard deviations of the Poisson arrival count).
#: A short run can end before a growing batch turns into a growing queue, so the saturation
#: detector alone would call a rate the replica cannot keep up with sustainable.
KEEP_UP_FRACTION = 0.9
#: Fewest arrivals in the tested half for the keep-up test to apply.
KEEP_UP_MIN_ARRIVALS = 10


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain JSON-ready data that validates back to an equal scenario
    (``scenario_from_data``)."""
    return scenario.model_dump(mode="json", exclude_unset=True)


def scenario_from_data(data: dict[str, Any], base_dir: str | Path) -> Scenario:
    """The scenario of ``scenario_data`` (sent to a worker), its paths resolving from
    ``base_dir``."""
    return scenario_from_dict(data, base_dir=Path(base_dir))


@dataclass(frozen=True)
class Criteria:
    """What counts as meeting the SLO besides the scenario's own ``slo:`` targets."""

    max_rejected_fraction: float = 0.0
    min_attainment: float | None = None


@dataclass
class Outcome:
    """A simulated run judged: does it meet the SLO, and if not, why."""

    meets: bool
    reason: str
    summary: dict[str, Any] = field(repr=False)


def judge(summary: dict[str, Any], criteria: Criteria = Criteria()) -> tuple[bool, str]:
    """(meets, reason) of a run's summary dict; the reason names what failed, with numbers."""
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


def keep_up(arrival_s: np.ndarray, finish_s: np.ndarray) -> tuple[bool, str]:
    """Did completions keep pace with arrivals over the second half of the arrival period?"""
    if len(arrival_s) == 0:
        return True, ""
    start, end = float(arrival_s.min()), float(arrival_s.max())
    mid = (start + end) / 2
    arrived = int(np.count_nonzero(arrival_s >= mid))
    if arrived < KEEP_UP_MIN_ARRIVALS or end <= mid:
        return True, ""
    done = finish_s[np.isfinite(finish_s)]
    completed = int(np.count_nonzero((done >= mid) & (done <= end)))
    needed = KEEP_UP_FRACTION * arrived - 2 * math.sqrt(arrived)
    if completed >= needed:
        return True, ""
    span = end - mid
    return False, (
        f"falls behind: {arrived / span:.4g} req/s arrive but {completed / span:.4g} req/s "
        f"complete over the second half of the arrivals"
    )


def simulate(scenario: Scenario, criteria: Criteria = Criteria()) -> Outcome:
    """Run ``scenario`` and judge it (``judge`` and ``keep_up``). A scenario that cannot run
    (does not fit) fails with the reason the simulator gives."""
    from simulator.api import run

    try:
        result = run(scenario)
    except UserError as exc:
        return Outcome(False, "; ".join(exc.messages), {})
    summary = result.summary
    meets, reason = judge(summary, criteria)
    if meets:
        req = result.records.requests
        meets, behind = keep_up(np.asarray(req.arrival_s), np.asarray(req.finish_s))
        reason = behind or reason
    return Outcome(meets, reason, summary)
