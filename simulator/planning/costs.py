"""The planned deployment's costs: every option at the target rate, where the cheapest
option changes with traffic, and what was assumed. ``servesim plan``, the report and the
notebooks all take these numbers from here (formulas in ``planning.tco``).

The traffic means come from the simulated fleet (output and prompt tokens per completed
request), so that the rented cost per million output tokens is the one ``servesim simulate``
reports for the same fleet, rate and GPU-hour price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.config.scenario import Scenario
from simulator.planning.bounds import busy_time_per_request_s, sample_lengths, scenario_memory_plan
from simulator.planning.config import PlanConfig
from simulator.planning.offers import replica_shape
from simulator.planning.tco import (
    HOURS_PER_MONTH,
    CostOption,
    Fleet,
    PriceOption,
    Traffic,
    break_evens,
    cost_at,
    price_options,
)

#: Range of traffic searched for break-even rates, as multiples of the planned rate.
BREAK_EVEN_RANGE = (0.02, 20.0)


@dataclass
class PlannedCosts:
    """Costs of a planned fleet (rates in requests/s, money in USD per month)."""

    rate_per_s: float
    traffic: Traffic
    fleet: Fleet
    options: list[PriceOption]
    at_rate: list[CostOption]
    break_evens: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return self.fleet.replicas_at(self.rate_per_s)

    def to_dict(self) -> dict[str, Any]:
        machine = next((o.machine for o in self.options if o.machine is not None), None)
        return {
            "rate_per_s": self.rate_per_s,
            "replicas": self.replicas,
            "gpus": self.replicas * self.fleet.shape.gpus_per_replica,
            "per_replica_rate_per_s": self.fleet.per_replica_rate_per_s,
            "utilisation": self.fleet.utilisation(self.rate_per_s),
            "peak_utilisation": self.fleet.utilisation(self.rate_per_s) * self.fleet.peak_factor,
            "peak_factor": self.fleet.peak_factor,
            "gpu_busy_fraction": self.fleet.busy_at(self.rate_per_s, self.replicas),
            "mean_prompt_tokens": self.traffic.mean_prompt_tokens,
            "mean_output_tokens": self.traffic.mean_output_tokens,
            "cached_input_fraction": self.traffic.cached_input_fraction,
            "input_time_share": self.traffic.input_time_share,
            "hours_per_month": HOURS_PER_MONTH,
            "options": [c.to_dict() for c in sorted(self.at_rate, key=lambda c: c.monthly_usd)],
            "break_even": self.break_evens,
            "owned_machine": None
            if machine is None
            else {
                "kind": machine.kind,
                "description": machine.description,
                "hosting": machine.hosting,
                "assumptions": list(machine.assumptions),
            },
            "notes": self.notes,
        }


def _mean(values: list[float]) -> float:
    found = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(found)) if found else float("nan")


def traffic_of(scenario: Scenario, summaries: list[dict[str, Any]], plan: PlanConfig) -> Traffic:
    """Token means per request from the simulated runs (else the workload's lengths), the
    cached share of prompts and the prefill share of GPU time."""
    lengths = sample_lengths(scenario)
    out = _mean([s["output_tokens_per_s"] / s["throughput_rps"] for s in summaries if _rate(s)])
    both = _mean([s["total_tokens_per_s"] / s["throughput_rps"] for s in summaries if _rate(s)])
    mean_out = out if np.isfinite(out) else lengths.mean_output_tokens
    mean_in = both - out if np.isfinite(both) else lengths.mean_prompt_tokens
    cached = plan.tco.cached_input_fraction
    if cached is None:
        cached = _mean([s.get("prefix_cache_hit_fraction") for s in summaries])
        cached = cached if np.isfinite(cached) else 0.0
    from simulator.api import build_cost_model

    mem = scenario_memory_plan(scenario)
    prefill_s, decode_s = busy_time_per_request_s(
        scenario, lengths, build_cost_model(scenario), mem.max_kv_tokens
    )
    return Traffic(mean_in, mean_out, cached, prefill_s / (prefill_s + decode_s))


def _rate(summary: dict[str, Any]) -> bool:
    return bool(summary.get("throughput_rps")) and summary.get("output_tokens_per_s") is not None


def planned_costs(
    scenario: Scenario,
    rate_per_s: float,
    replicas: int,
    per_replica_rate_per_s: float,
    summaries: list[dict[str, Any]],
    plan: PlanConfig,
    peak_factor: float = 1.0,
) -> PlannedCosts:
    """Every option for ``replicas`` replicas (simulated to serve ``rate_per_s``, or its
    peak window: ``peak_factor`` × it), fleets elsewhere growing in whole replicas of
    ``per_replica_rate_per_s``."""
    options, notes = price_options(scenario, plan.tco, replicas)
    busy = _mean([s.get("gpu_busy_fraction") for s in summaries])
    fleet = Fleet(
        shape=replica_shape(scenario),
        per_replica_rate_per_s=per_replica_rate_per_s,
        busy_fraction=busy if np.isfinite(busy) else 1.0,
        busy_at_rate_per_s=rate_per_s * peak_factor,
        busy_at_replicas=replicas,
        simulated=((rate_per_s, replicas),),
        peak_factor=peak_factor,
    )
    traffic = traffic_of(scenario, summaries, plan)
    at_rate = [cost_at(o, rate_per_s, traffic, fleet, replicas=replicas) for o in options]
    low, high = (f * rate_per_s for f in BREAK_EVEN_RANGE)
    found = break_evens(options, traffic, fleet, low, high)
    return PlannedCosts(rate_per_s, traffic, fleet, options, at_rate, found, notes)
