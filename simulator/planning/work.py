"""How many requests the fleets of a plan simulate, for the run budget checked before a
``plan`` or ``report`` starts.

A fewest-replicas search simulates fleets of ``plan.min_requests_per_replica`` requests per
replica, so a large target rate costs far more than the scenario's own workload. The
estimate starts from the roofline's least replicas for the target (a lower bound) and
counts the fleet sizes one search typically tries; like the run budget itself it is for
orders of magnitude.
"""

from __future__ import annotations

import math

from simulator.config.planning import PlanConfig
from simulator.config.scenario import Scenario

#: Fleet sizes one fewest-replicas search simulates (its bracketing steps and bisection),
#: typically: a 200-replica search tried 5 (Llama-3.1-8B on H100, 5,000 req/s).
FLEET_SIZES_PER_SEARCH = 5
#: Fleet found over the roofline's least replicas, typically (the same search: 203 for a
#: least of 94).
FLEET_OVER_ROOFLINE = 2.0


def fleet_requests(scenario: Scenario, plan: PlanConfig, searches: int = 1) -> float:
    """Requests that ``searches`` fewest-replicas searches for ``plan.target_rate_per_s``
    simulate, roughly (0 without a target, or when a replica does not fit)."""
    from simulator.planning.rate import deployment_rate_bound_per_s

    target = plan.target_rate_per_s
    if not target:
        return 0.0
    bound = deployment_rate_bound_per_s(scenario)
    if bound <= 0:
        return 0.0
    least = math.ceil(target * (1 + (plan.safety_margin or 0.0)) / bound)
    fleet = min(FLEET_OVER_ROOFLINE * least, plan.max_replicas)
    return searches * FLEET_SIZES_PER_SEARCH * fleet * plan.min_requests_per_replica
