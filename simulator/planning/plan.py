"""``plan``: everything ``servesim plan`` reports for one planning file.

1. the maximum sustainable rate of the scenario's own deployment (``rate``);
2. with ``plan.target_rate_per_s``: the fewest replicas that serve it;
3. with a ``search:`` section: the ranked configuration search (``search``);
4. the monthly cost of the planned deployment rented, owned, or replaced by an API, with the
   break-even volumes (``tco``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.config.compile import reused_builds
from simulator.config.scenario import Scenario
from simulator.planning.bounds import (
    busy_time_per_request_s,
    gpus_per_replica,
    sample_lengths,
    scenario_memory_plan,
)
from simulator.planning.config import PlanConfig, PlanFile, SearchConfig, load_plan_file
from simulator.planning.rate import RateSearch, ReplicaSearch, fewest_replicas, max_sustainable_rate
from simulator.planning.search import SearchResult, search_configurations
from simulator.planning.tco import (
    HOURS_PER_MONTH,
    Deployment,
    TokenVolume,
    api_option,
    break_even_cloud_vs_api,
    break_even_owned_vs_cloud,
    cloud_offers_to_price,
    cloud_option,
    owned_option,
    owned_params_with,
)


@dataclass
class PlanResult:
    """What the planner found (see the module docstring)."""

    scenario: Scenario
    plan: PlanConfig
    rate: RateSearch
    replicas: ReplicaSearch | None = None
    search: SearchResult | None = None
    costs: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: Headroom applied for the cost model's error (fraction of capacity).
    safety_margin: float = 0.0

    @property
    def max_rate_per_s(self) -> float | None:
        return self.rate.max_rate_per_s

    def to_dict(self) -> dict[str, Any]:
        hw = self.scenario.hardware
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "model": self.scenario.model,
            "deployment": {
                "gpu": hw.gpu,
                "tensor_parallel": hw.tensor_parallel,
                "gpus_per_replica": gpus_per_replica(self.scenario),
                "replicas": hw.replicas,
                "batching": self.scenario.engine.batching.policy,
            },
            "max_rate_per_s": self.rate.max_rate_per_s,
            "safety_margin": self.safety_margin,
            "max_rate_with_margin_per_s": (
                self.rate.max_rate_per_s / (1 + self.safety_margin)
                if self.rate.max_rate_per_s is not None
                else None
            ),
            "rate_search": self.rate.to_dict(),
            "fewest_replicas": self.replicas.to_dict() if self.replicas else None,
            "costs": self.costs,
            "notes": self.notes,
        }
        if self.search is not None:
            found = self.search.to_dict()
            out["candidates"] = found.pop("candidates")
            out["search"] = found
        return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def deployment_costs(
    scenario: Scenario,
    rate_per_s: float,
    replicas: int,
    capacity_rate_per_s: float,
    summaries: list[dict[str, Any]],
    plan: PlanConfig,
) -> dict[str, Any]:
    """Monthly cost options for ``replicas`` replicas serving ``rate_per_s`` requests/s;
    ``capacity_rate_per_s`` is what they could sustain (for break-even volumes)."""
    tco = plan.tco
    lengths = sample_lengths(scenario)
    gpu = scenario.hardware.gpu
    gpus = replicas * gpus_per_replica(scenario)
    from simulator.api import build_cost_model

    mem = scenario_memory_plan(scenario)
    prefill_s, decode_s = busy_time_per_request_s(
        scenario, lengths, build_cost_model(scenario), mem.max_kv_tokens
    )
    cached = tco.cached_input_fraction
    if cached is None:
        hits = [s.get("prefix_cache_hit_fraction") for s in summaries]
        cached = _mean([h for h in hits if h is not None]) if any(hits) else 0.0
    volume = TokenVolume.from_rate(
        rate_per_s, lengths.mean_prompt_tokens, lengths.mean_output_tokens, cached
    )
    busy = min(1.0, _mean([s.get("gpu_busy_fraction", float("nan")) for s in summaries]))
    deployment = Deployment(
        gpu=gpu,
        gpus=gpus,
        gpu_busy_fraction=busy,
        capacity_output_tokens_per_s=capacity_rate_per_s * lengths.mean_output_tokens,
        input_time_share=prefill_s / (prefill_s + decode_s),
    )
    owned = owned_params_with(gpu, tco)
    options, break_even = [], []
    chosen = cloud_offers_to_price(gpu, tco.price_kind)
    for offer in chosen:
        name = f"cloud {offer['provider']} {offer['instance']} ({tco.price_kind})"
        options.append(
            cloud_option(
                deployment,
                volume,
                price_per_gpu_hour=offer["price_per_gpu_hour"],
                gpus_per_instance=offer["gpus_per_instance"],
                name=name,
                energy_params=owned,
            )
        )
        if owned is not None:
            break_even.append(
                {
                    "cloud": name,
                    **break_even_owned_vs_cloud(
                        deployment, owned, offer["price_per_gpu_hour"]
                    ).to_dict(),
                }
            )
    if owned is not None:
        options.append(owned_option(deployment, volume, owned))
    from simulator.specs.prices import load_prices

    apis = [r for r in load_prices()["api"] if r.get("catalog_model") == scenario.model]
    for api in apis:
        options.append(api_option(volume, api))
        for offer in chosen:
            found = break_even_cloud_vs_api(
                deployment, volume, api, offer["price_per_gpu_hour"], offer["gpus_per_instance"]
            )
            break_even.append(
                {
                    "cloud": f"{offer['provider']} {offer['instance']}",
                    "api": f"{api['provider']} {api['model']}",
                    **found.to_dict(),
                }
            )
    seconds = HOURS_PER_MONTH * 3600
    for entry in break_even:  # the same volume as a request rate of this workload
        tokens = entry["output_tokens_per_month"]
        entry["rate_per_s"] = (
            tokens / (lengths.mean_output_tokens * seconds) if tokens is not None else None
        )
    return {
        "rate_per_s": rate_per_s,
        "gpus": gpus,
        "gpu_busy_fraction": busy,
        "input_tokens_per_month": volume.input_tokens_per_month,
        "output_tokens_per_month": volume.output_tokens_per_month,
        "cached_input_fraction": cached,
        "input_time_share": deployment.input_time_share,
        "options": [o.to_dict() for o in options],
        "break_even": break_even,
        "notes": "" if apis else f"no API in prices.yaml serves {scenario.model}",
    }


def _progress(enabled: bool):
    """A tqdm counter of simulations on stderr, and the callback that advances it."""
    if not enabled:
        return None, None
    import sys

    from tqdm import tqdm

    bar = tqdm(unit="sim", desc="rate search", file=sys.stderr, leave=False)

    def advance(rate_per_s: float, replicas: int, outcome) -> None:
        bar.update(1)
        bar.set_postfix(rate=f"{rate_per_s:.4g}/s", replicas=replicas, meets=outcome.meets)

    return bar, advance


def resolve_safety_margin(plan_config: PlanConfig) -> float:
    """The plan's headroom: as configured, else the validated step-time error band."""
    if plan_config.safety_margin is not None:
        return plan_config.safety_margin
    from simulator.api import validated_error_band

    band = validated_error_band()
    return band["median_pct"] / 100 if band else 0.0


@reused_builds()
def plan(
    scenario: Scenario | PlanFile | str | Path,
    plan_config: PlanConfig | None = None,
    search: SearchConfig | None = None,
    *,
    replications: int | None = None,
    workers: int = 1,
    dask_scheduler: Any = None,
    progress: bool = False,
) -> PlanResult:
    """Plan a scenario: its maximum rate, the fewest replicas for the target rate, the
    configuration search and the cost options. A path or ``PlanFile`` brings its own
    ``plan:``/``search:`` sections; arguments given here override them."""
    if isinstance(scenario, str | Path):
        scenario = load_plan_file(scenario)
    if isinstance(scenario, PlanFile):
        plan_config = plan_config or scenario.plan
        search = search or scenario.search
        scenario = scenario.scenario
    plan_config = plan_config or PlanConfig()
    if replications:
        plan_config = plan_config.model_copy(update={"replications": replications})
    margin = resolve_safety_margin(plan_config)
    bar, on_simulated = _progress(progress)
    try:
        rate = max_sustainable_rate(scenario, plan_config, on_simulated=on_simulated)
        replicas = None
        if plan_config.target_rate_per_s:
            replicas = fewest_replicas(
                scenario,
                plan_config.target_rate_per_s * (1 + margin),
                plan_config,
                on_simulated=on_simulated,
            )
    finally:
        if bar is not None:
            bar.close()
    result = PlanResult(scenario, plan_config, rate, safety_margin=margin)
    if rate.summaries:
        spans = [s["duration_s"] for s in rate.summaries]
        e2e = [s["e2e_ms"]["p50"] / 1e3 for s in rate.summaries if s["e2e_ms"]["p50"]]
        if e2e and min(spans) < 4 * max(e2e):
            result.notes.append(
                f"runs are short: {min(spans):.3g} s of traffic against a median E2E of "
                f"{max(e2e):.3g} s; raise workload.num_requests for a steadier knee"
            )
    per_replica = (rate.max_rate_per_s or 0.0) / scenario.hardware.replicas
    if plan_config.target_rate_per_s:
        result.replicas = replicas
        found = replicas
        if found.replicas:
            result.costs = deployment_costs(
                scenario,
                plan_config.target_rate_per_s,
                found.replicas,
                max(per_replica * found.replicas, plan_config.target_rate_per_s),
                found.summaries,
                plan_config,
            )
    elif rate.max_rate_per_s:
        result.costs = deployment_costs(
            scenario,
            rate.max_rate_per_s,
            scenario.hardware.replicas,
            rate.max_rate_per_s,
            rate.summaries,
            plan_config,
        )
    if search is not None:
        result.search = search_configurations(
            scenario,
            search,
            plan_config,
            workers=workers,
            dask_scheduler=dask_scheduler,
            progress=progress,
        )
        best = result.search.best
        if plan_config.target_rate_per_s and best is not None and best.scenario is not None:
            # The search's replica counts assume linear scaling; simulate the winner's.
            checked = fewest_replicas(best.scenario, plan_config.target_rate_per_s, plan_config)
            result.search.extra["best_fewest_replicas"] = checked.to_dict()
    return result
