"""Prices applied to the simulated fleet for the report: the options at the target, their
monthly cost against traffic, where the cheapest option changes, and the sensitivity to ±30%
traffic and ±30% price.

Every number comes from the planner's costs (``simulator.planning.costs`` and
``planning.tco``): the same options, the same per-token definitions, the same break-even
rates and utilisation as ``servesim plan`` prints. Between simulated fleets the fleet grows in
whole replicas of one replica's sustainable rate.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import UserError
from simulator.planning.costs import PlannedCosts
from simulator.planning.tco import HOURS_PER_MONTH, PriceOption, cost_at
from simulator.reports.gather import TRAFFIC_FACTORS, Simulated

#: Price multipliers of the sensitivity analysis (±30% on GPU-hours and machine prices).
PRICE_FACTORS = (0.7, 1.0, 1.3)
#: Range of the monthly-cost-against-traffic curve, as multiples of the target rate; the
#: upper end stretches (up to ``TRAFFIC_MAX_FACTOR``) to include every break-even rate.
TRAFFIC_MIN_FACTOR, TRAFFIC_MAX_FACTOR, TRAFFIC_DEFAULT_FACTOR = 0.02, 20.0, 3.0


def planned(sim: Simulated) -> PlannedCosts:
    """The planner's costs of the simulated fleet, with the fleets simulated at ±30%
    traffic added."""
    costs = sim.plan.costs
    if costs is None:
        raise UserError(f"prices.yaml: no price for {sim.scenario.hardware.gpu} or its model")
    simulated = tuple(
        (factor * sim.target_rate_per_s, found)
        for factor, found in sim.replicas_by_traffic.items()
        if found is not None
    )
    return replace(costs, fleet=replace(costs.fleet, simulated=simulated))


def price_options(sim: Simulated) -> list[PriceOption]:
    """The options the planner priced for this deployment."""
    return planned(sim).options


def _row(found) -> dict[str, Any]:
    return found.to_dict()


def options_at_target(sim: Simulated) -> pd.DataFrame:
    """Every option at the target rate, cheapest first."""
    costs = planned(sim)
    rows = [_row(c) for c in costs.at_rate]
    if not rows:
        raise UserError(f"prices.yaml: no price for {sim.scenario.hardware.gpu} or its model")
    frame = pd.DataFrame(rows).sort_values("monthly_usd", kind="stable")
    return frame.reset_index(drop=True)


def traffic_rates(sim: Simulated, points: int = 60) -> np.ndarray:
    """Rates from 2% to 3× the target (requests/s) or past the farthest break-even rate (at
    most 20×), geometric, plus the simulated ones."""
    found = [b["rate_per_s"] for b in planned(sim).break_evens]
    top = max([TRAFFIC_DEFAULT_FACTOR] + [1.3 * r / sim.target_rate_per_s for r in found])
    top = min(top, TRAFFIC_MAX_FACTOR)
    grid = np.geomspace(TRAFFIC_MIN_FACTOR, top, points) * sim.target_rate_per_s
    marks = [f * sim.target_rate_per_s for f in TRAFFIC_FACTORS]
    return np.unique(np.concatenate([grid, marks]))


def cost_against_traffic(sim: Simulated, rates: np.ndarray | None = None) -> pd.DataFrame:
    """Monthly cost (USD) of every option at each rate: one row per (rate, option)."""
    costs = planned(sim)
    rates = traffic_rates(sim) if rates is None else rates
    rows = []
    for rate in rates:
        for option in costs.options:
            found = cost_at(option, float(rate), costs.traffic, costs.fleet)
            rows.append(
                {
                    "rate_per_s": float(rate),
                    "output_tokens_per_month": found.output_tokens_per_month,
                    "option": option.name,
                    "kind": option.kind,
                    "monthly_usd": found.monthly_usd,
                }
            )
    return pd.DataFrame(rows)


def cheapest_changes(sim: Simulated) -> list[dict[str, Any]]:
    """Where the cheapest option changes with traffic: the planner's break-even rates."""
    return planned(sim).break_evens


def sensitivity(sim: Simulated) -> pd.DataFrame:
    """Monthly cost of every option at traffic ×0.7/1/1.3 (price ×1) and at price
    ×0.7/1/1.3 (traffic ×1): one row per (axis, factor, option), with the cheapest marked."""
    costs = planned(sim)
    rows = []
    cells = [("traffic", f, 1.0) for f in TRAFFIC_FACTORS] + [
        ("price", 1.0, f) for f in PRICE_FACTORS
    ]
    for axis, traffic, price_factor in cells:
        replicas = sim.replicas_by_traffic.get(traffic)
        rate = traffic * sim.target_rate_per_s
        priced = [
            cost_at(o, rate, costs.traffic, costs.fleet, price_factor=price_factor)
            for o in costs.options
        ]
        best = min(p.monthly_usd for p in priced)
        for o, p in zip(costs.options, priced, strict=True):
            rows.append(
                {
                    "axis": axis,
                    "factor": traffic if axis == "traffic" else price_factor,
                    "rate_per_s": rate,
                    "replicas": p.replicas,
                    "replicas_simulated": replicas is not None and o.kind != "api",
                    "option": o.name,
                    "kind": o.kind,
                    "monthly_usd": p.monthly_usd,
                    "cheapest": p.monthly_usd == best,
                }
            )
    return pd.DataFrame(rows)


def recommendation(sim: Simulated, options: pd.DataFrame) -> dict[str, Any]:
    """The cheapest option at the target that can run a production service (marketplace
    rentals, community hosts without a service agreement, are shown but not recommended),
    and the facts that explain it."""
    eligible = options[options["market"] != "marketplace"]
    if eligible.empty:
        eligible = options
    best = eligible.iloc[0].to_dict()
    others = eligible.iloc[1:]
    self_hosted = options[options["kind"] != "api"]
    marketplace = options[options["market"] == "marketplace"]
    fewest = sim.plan.replicas
    return {
        "option": best["name"],
        "kind": best["kind"],
        "market": best["market"],
        "gpu": sim.scenario.hardware.gpu,
        "replicas": sim.replicas,
        "gpus": sim.gpus,
        "monthly_usd": best["monthly_usd"],
        "usd_per_million_output_tokens": best["usd_per_million_output_tokens"],
        "usd_per_million_tokens": best["usd_per_million_tokens"],
        "price_sheet_usd_per_million_input_tokens": best[
            "price_sheet_usd_per_million_input_tokens"
        ],
        "price_sheet_usd_per_million_output_tokens": best[
            "price_sheet_usd_per_million_output_tokens"
        ],
        "utilisation": best.get("utilisation"),
        "target_rate_per_s": sim.target_rate_per_s,
        "fewer_reason": fewest.fewer_reason if fewest else "",
        "runner_up": others.iloc[0]["name"] if len(others) else None,
        "runner_up_monthly_usd": others.iloc[0]["monthly_usd"] if len(others) else None,
        "cheapest_self_hosted": self_hosted.iloc[0]["name"] if len(self_hosted) else None,
        "marketplace": marketplace.iloc[0]["name"] if len(marketplace) else None,
        "marketplace_monthly_usd": marketplace.iloc[0]["monthly_usd"] if len(marketplace) else None,
        "hours_per_month": HOURS_PER_MONTH,
    }
