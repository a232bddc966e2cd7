"""Prices applied to the simulated fleet: the report's options (rent, own, API), their
monthly cost against traffic, the points where the cheapest option changes, and the
sensitivity to ±30% traffic and ±30% price.

The options and their formulas are the planner's (``simulator.planning.tco``; the same
offers as ``deployment_costs``: the cheapest cloud row of the GPU, the cheapest whole
8-GPU instance, owning servers, and every API serving the model). Between simulated
points the fleet grows in whole replicas of the single-replica maximum rate, and GPU busy
time scales with the load per GPU from the simulated target run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import UserError
from simulator.planning.bounds import sample_lengths
from simulator.planning.tco import (
    HOURS_PER_MONTH,
    Deployment,
    OwnedParams,
    TokenVolume,
    api_option,
    cloud_offers_to_price,
    cloud_option,
    owned_option,
    owned_params_with,
)
from simulator.reports.gather import TRAFFIC_FACTORS, Simulated
from simulator.specs.prices import load_prices

#: Price multipliers of the sensitivity analysis (±30% on GPU-hours and server prices).
PRICE_FACTORS = (0.7, 1.0, 1.3)


@dataclass(frozen=True)
class PriceOption:
    """One way to pay for the traffic: a cloud offer, owned servers, or an API row."""

    name: str
    kind: str  # "cloud", "owned" or "api"
    offer: dict[str, Any] | None = None
    owned: OwnedParams | None = None
    api: dict[str, Any] | None = None


@dataclass(frozen=True)
class Workload:
    """Per-request token means and the shares the planner measured (from ``plan.costs``)."""

    mean_prompt_tokens: float
    mean_output_tokens: float
    cached_input_fraction: float
    input_time_share: float
    busy_fraction_at_target: float


def workload_of(sim: Simulated) -> Workload:
    lengths = sample_lengths(sim.scenario)
    costs = sim.plan.costs or {}
    return Workload(
        lengths.mean_prompt_tokens,
        lengths.mean_output_tokens,
        float(costs.get("cached_input_fraction") or 0.0),
        float(costs.get("input_time_share") or 0.5),
        float(costs.get("gpu_busy_fraction") or sim.run.summary.get("gpu_busy_fraction") or 1.0),
    )


def owned_params(sim: Simulated) -> OwnedParams | None:
    """Owned-server parameters of the scenario's GPU with the plan's ``tco`` overrides."""
    return owned_params_with(sim.scenario.hardware.gpu, sim.plan.plan.tco)


def price_options(sim: Simulated) -> list[PriceOption]:
    """The options the planner prices for this deployment (see the module docstring)."""
    kind = sim.plan.plan.tco.price_kind
    owned = owned_params(sim)
    chosen = cloud_offers_to_price(sim.scenario.hardware.gpu, kind)
    options = [
        PriceOption(f"cloud {o['provider']} {o['instance']} ({kind})", "cloud", offer=o)
        for o in chosen
    ]
    if owned is not None:
        options.append(PriceOption("owned", "owned", owned=owned))
    for api in load_prices()["api"]:
        if api.get("catalog_model") == sim.scenario.model:
            options.append(PriceOption(f"api {api['provider']} {api['model']}", "api", api=api))
    return options


def replicas_for_rate(sim: Simulated, rate_per_s: float) -> int:
    """Replicas serving ``rate_per_s``: simulated at the target and ±30%, otherwise whole
    replicas of the single-replica maximum rate."""
    for factor, found in sim.replicas_by_traffic.items():
        if found is not None and math.isclose(rate_per_s, factor * sim.target_rate_per_s):
            return found
    per_replica = sim.per_replica_rate_per_s or sim.target_rate_per_s / sim.replicas
    return max(1, math.ceil(rate_per_s / per_replica - 1e-9))


def price(
    sim: Simulated,
    option: PriceOption,
    rate_per_s: float,
    *,
    replicas: int | None = None,
    price_factor: float = 1.0,
    workload: Workload | None = None,
) -> dict[str, Any]:
    """Monthly cost and per-token costs of ``option`` serving ``rate_per_s`` (requests/s)
    with ``replicas`` replicas; ``price_factor`` scales GPU-hour and server prices."""
    w = workload or workload_of(sim)
    replicas = replicas or replicas_for_rate(sim, rate_per_s)
    gpus = replicas * sim.gpus_per_replica
    per_replica = sim.per_replica_rate_per_s or sim.target_rate_per_s / sim.replicas
    # Busy time per GPU follows the load per GPU of the simulated target run.
    load_per_gpu = rate_per_s / gpus
    target_load_per_gpu = sim.target_rate_per_s / sim.gpus
    busy = min(1.0, w.busy_fraction_at_target * load_per_gpu / target_load_per_gpu)
    deployment = Deployment(
        sim.scenario.hardware.gpu,
        gpus,
        busy,
        replicas * per_replica * w.mean_output_tokens,
        w.input_time_share,
    )
    volume = TokenVolume.from_rate(
        rate_per_s, w.mean_prompt_tokens, w.mean_output_tokens, w.cached_input_fraction
    )
    if option.kind == "cloud":
        offer = option.offer or {}
        found = cloud_option(
            deployment,
            volume,
            price_per_gpu_hour=offer["price_per_gpu_hour"] * price_factor,
            gpus_per_instance=offer["gpus_per_instance"],
            name=option.name,
            energy_params=owned_params(sim),
        )
    elif option.kind == "owned":
        params = option.owned
        params = replace(params, server_price_usd=params.server_price_usd * price_factor)
        found = owned_option(deployment, volume, params, name=option.name)
    else:
        found = api_option(volume, option.api)
    out = found.to_dict()
    tokens = volume.input_tokens_per_month + volume.output_tokens_per_month
    out.update(
        rate_per_s=rate_per_s,
        replicas=replicas if option.kind != "api" else None,
        gpus=gpus if option.kind != "api" else None,
        usd_per_million_tokens=out["monthly_usd"] / tokens * 1e6,
        output_tokens_per_month=volume.output_tokens_per_month,
    )
    return out


def options_at_target(sim: Simulated) -> pd.DataFrame:
    """Every option at the target rate, cheapest first."""
    w = workload_of(sim)
    rows = [
        price(sim, o, sim.target_rate_per_s, replicas=sim.replicas, workload=w)
        for o in price_options(sim)
    ]
    if not rows:
        raise UserError(f"prices.yaml: no price for {sim.scenario.hardware.gpu} or its model")
    frame = pd.DataFrame(rows).sort_values("monthly_usd", kind="stable")
    return frame.reset_index(drop=True)


#: Range of the monthly-cost-against-traffic curve, as multiples of the target rate; the
#: upper end stretches (up to ``TRAFFIC_MAX_FACTOR``) to include the planner's break-even
#: rates.
TRAFFIC_MIN_FACTOR, TRAFFIC_MAX_FACTOR, TRAFFIC_DEFAULT_FACTOR = 0.02, 20.0, 3.0


def traffic_rates(sim: Simulated, points: int = 60) -> np.ndarray:
    """Rates from 2% to 3× the target (requests/s) or past the planner's farthest break-even
    rate (at most 20×), geometric, plus the simulated ones."""
    found = [
        b.get("rate_per_s")
        for b in (sim.plan.costs or {}).get("break_even") or []
        if b.get("rate_per_s") and not b.get("notes")
    ]
    top = max([TRAFFIC_DEFAULT_FACTOR] + [1.3 * r / sim.target_rate_per_s for r in found])
    top = min(top, TRAFFIC_MAX_FACTOR)
    grid = np.geomspace(TRAFFIC_MIN_FACTOR, top, points) * sim.target_rate_per_s
    marks = [f * sim.target_rate_per_s for f in TRAFFIC_FACTORS]
    return np.unique(np.concatenate([grid, marks]))


def cost_against_traffic(sim: Simulated, rates: np.ndarray | None = None) -> pd.DataFrame:
    """Monthly cost (USD) of every option at each rate: one row per (rate, option)."""
    w = workload_of(sim)
    rates = traffic_rates(sim) if rates is None else rates
    rows = []
    for rate in rates:
        for option in price_options(sim):
            found = price(sim, option, float(rate), workload=w)
            rows.append(
                {
                    "rate_per_s": float(rate),
                    "output_tokens_per_month": found["output_tokens_per_month"],
                    "option": option.name,
                    "kind": option.kind,
                    "monthly_usd": found["monthly_usd"],
                }
            )
    return pd.DataFrame(rows)


def cheapest_changes(curve: pd.DataFrame) -> list[dict[str, Any]]:
    """Where, along the traffic curve, the cheapest option changes (break-even points)."""
    table = curve.pivot_table(index="rate_per_s", columns="option", values="monthly_usd")
    cheapest = table.idxmin(axis=1)
    changes = []
    previous = None
    for rate, name in cheapest.items():
        if previous is not None and name != previous:
            changes.append(
                {
                    "rate_per_s": float(rate),
                    "from": previous,
                    "to": name,
                    "monthly_usd": float(table.loc[rate, name]),
                }
            )
        previous = name
    return changes


def sensitivity(sim: Simulated) -> pd.DataFrame:
    """Monthly cost of every option at traffic ×0.7/1/1.3 (price ×1) and at price
    ×0.7/1/1.3 (traffic ×1): one row per (axis, factor, option), with the cheapest marked."""
    w = workload_of(sim)
    options = price_options(sim)
    rows = []
    cells = [("traffic", f, 1.0) for f in TRAFFIC_FACTORS] + [
        ("price", 1.0, f) for f in PRICE_FACTORS
    ]
    for axis, traffic, price_factor in cells:
        replicas = sim.replicas_by_traffic.get(traffic)
        rate = traffic * sim.target_rate_per_s
        priced = [
            price(
                sim,
                o,
                rate,
                replicas=replicas,
                price_factor=price_factor,
                workload=w,
            )
            for o in options
        ]
        best = min(p["monthly_usd"] for p in priced)
        for o, p in zip(options, priced, strict=True):
            rows.append(
                {
                    "axis": axis,
                    "factor": traffic if axis == "traffic" else price_factor,
                    "rate_per_s": rate,
                    "replicas": p["replicas"],
                    "replicas_simulated": replicas is not None and o.kind != "api",
                    "option": o.name,
                    "kind": o.kind,
                    "monthly_usd": p["monthly_usd"],
                    "cheapest": p["monthly_usd"] == best,
                }
            )
    return pd.DataFrame(rows)


def recommendation(sim: Simulated, options: pd.DataFrame) -> dict[str, Any]:
    """The cheapest option at the target and the facts that explain it."""
    best = options.iloc[0].to_dict()
    fewest = sim.plan.replicas
    self_hosted = options[options["kind"] != "api"]
    return {
        "option": best["name"],
        "kind": best["kind"],
        "gpu": sim.scenario.hardware.gpu,
        "replicas": sim.replicas,
        "gpus": sim.gpus,
        "monthly_usd": best["monthly_usd"],
        "usd_per_million_output_tokens": best["usd_per_million_output_tokens"],
        "usd_per_million_input_tokens": best["usd_per_million_input_tokens"],
        "usd_per_million_tokens": best["usd_per_million_tokens"],
        "target_rate_per_s": sim.target_rate_per_s,
        "fewer_reason": fewest.fewer_reason if fewest else "",
        "runner_up": options.iloc[1]["name"] if len(options) > 1 else None,
        "runner_up_monthly_usd": options.iloc[1]["monthly_usd"] if len(options) > 1 else None,
        "cheapest_self_hosted": self_hosted.iloc[0]["name"] if len(self_hosted) else None,
        "hours_per_month": HOURS_PER_MONTH,
    }
