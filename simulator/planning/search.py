"""Configuration search: which GPU, parallel layout, batching policy and dtypes serve the
scenario's traffic most cheaply within its SLO.

Every point of the cross product of the ``search:`` axes is one replica configuration. Points
are settled in this order, cheapest checks first:

1. **Static**: unmodelled layouts (pipeline or expert parallel > 1), unknown batching
   policies, a tensor-parallel size that does not divide the heads, no price for the GPU,
   and models that do not fit in memory are *infeasible*, with their reason.
2. **Roofline**: a lone request that already misses an SLO target makes the point
   infeasible; otherwise the roofline rate bound gives a lower bound on the point's cost per
   million output tokens and the request-alone latency a lower bound on its latency.
3. **Simulation**, in order of increasing cost bound: the point's maximum sustainable rate per
   replica (``rate.max_sustainable_rate``); its cost per million output tokens and its
   latency are those simulated at that rate. Before a point is simulated, it is *pruned* if an
   already simulated point costs no more than its cost bound and is no slower than its latency
   bound: it could neither rank first nor join the cost-latency Pareto frontier.

Feasible points are ranked by cost per million output tokens; the Pareto frontier (no other
point both cheaper and faster) is marked.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from simulator.config.compile import reused_builds
from simulator.config.loader import with_settings
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.bounds import (
    LengthSample,
    latency_lower_bound_ms,
    replica_rate_bound_per_s,
    request_latency_bounds_ms,
    sample_lengths,
    scenario_memory_plan,
    slo_violations_at_any_load,
)
from simulator.planning.config import PlanConfig, SearchConfig
from simulator.planning.executors import TaskRunner
from simulator.planning.offers import ReplicaShape, fitting_offers
from simulator.planning.ordered import decide_in_order
from simulator.planning.outcome import scenario_data, scenario_from_data
from simulator.planning.rate import max_sustainable_rate
from simulator.planning.tco import HOURS_PER_MONTH

#: Search axis -> scenario key it sets.
AXIS_KEYS = {
    "gpu": "hardware.gpu",
    "tensor_parallel": "hardware.tensor_parallel",
    "pipeline_parallel": "hardware.pipeline_parallel",
    "expert_parallel": "hardware.expert_parallel",
    "batching": "engine.batching",
    "weight_dtype": "engine.weight_dtype",
    "kv_dtype": "engine.kv_dtype",
    "max_num_seqs": "engine.max_num_seqs",
}


#: Candidates sent to a Dask cluster at once when ``search.batch_size`` is not set.
DASK_BATCH_SIZE = 8


@dataclass
class Candidate:
    """One configuration of the search and what became of it (rates per replica)."""

    settings: dict[str, Any]
    #: "ranked" (simulated, meets the SLO at some rate), "infeasible" or "pruned".
    status: str = "infeasible"
    feasible: bool = False
    reason: str = ""
    gpus_per_replica: int = 1
    #: $/GPU-hour of the offer priced, and the replica's share of its instances per hour
    #: (whole instances its shape fits, idle GPUs paid).
    gpu_hour_usd: float | None = None
    replica_hour_usd: float | None = None
    offer: str = ""
    rate_bound_per_s: float | None = None
    cost_lower_bound_usd: float | None = None
    latency_lower_bound_ms: float | None = None
    max_rate_per_s: float | None = None
    knee_per_s: float | None = None
    cost_per_million_output_tokens_usd: float | None = None
    latency_ms: float | None = None
    #: With plan.target_rate_per_s: replicas at the simulated per-replica rate (estimate:
    #: round-robin replicas scale linearly), their GPUs and monthly cloud cost.
    replicas_for_target: int | None = None
    gpus_for_target: int | None = None
    monthly_cloud_usd_for_target: float | None = None
    pareto: bool = False
    rank: int | None = None
    simulations: int = 0
    notes: str = ""
    #: The candidate's one-replica scenario (not serialised).
    scenario: Scenario | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, scenario=None))
        out.pop("scenario")
        return out


@dataclass
class SearchResult:
    """All candidates (ranked feasible ones first) and the search's bookkeeping."""

    candidates: list[Candidate]
    latency_metric: str
    simulated: int
    pruned: int
    infeasible: int
    simulations: int
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> list[Candidate]:
        return [c for c in self.candidates if c.feasible]

    def to_frame(self):
        """One row per candidate, settings spread into columns (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for c in self.candidates:
            row = c.to_dict()
            rows.append({**row.pop("settings"), **row})
        return pd.DataFrame(rows)

    @property
    def best(self) -> Candidate | None:
        ranked = self.feasible
        return ranked[0] if ranked else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_metric": self.latency_metric,
            "points": len(self.candidates),
            "simulated": self.simulated,
            "pruned": self.pruned,
            "infeasible": self.infeasible,
            "simulations": self.simulations,
            "wall_s": self.wall_s,
            **self.extra,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def pareto_flags(points: list[tuple[float, float]]) -> list[bool]:
    """True for points no other point dominates (<= in both coordinates, < in one)."""
    flags = []
    for i, (c, lat) in enumerate(points):
        dominated = any(
            (c2 <= c and l2 <= lat) and (c2 < c or l2 < lat)
            for j, (c2, l2) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def expand_axes(scenario: Scenario, search: SearchConfig) -> list[dict[str, Any]]:
    """The cross product of the axes, in the order given (scenario values for unset axes)."""
    hw, eng = scenario.hardware, scenario.engine
    axes = {
        "gpu": search.gpus or [hw.gpu],
        "tensor_parallel": search.tensor_parallel or [hw.tensor_parallel],
        "pipeline_parallel": search.pipeline_parallel,
        "expert_parallel": search.expert_parallel,
        "batching": search.batching or [eng.batching.policy],
        "weight_dtype": search.weight_dtype or [eng.weight_dtype],
        "kv_dtype": search.kv_dtype or [eng.kv_dtype],
        "max_num_seqs": search.max_num_seqs or [eng.max_num_seqs],
    }
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def _price(cand: Candidate, search: SearchConfig, needs_nvlink: bool) -> str:
    """Set the candidate's $/GPU-hour and $/replica-hour from the cheapest offer its replica
    shape fits (whole instances, idle GPUs paid), or the search's own price per GPU; return
    why there is none ("" when priced)."""
    gpu = cand.settings["gpu"]
    if gpu in search.gpu_hour_usd:
        cand.gpu_hour_usd = float(search.gpu_hour_usd[gpu])
        cand.replica_hour_usd = cand.gpu_hour_usd * cand.gpus_per_replica
        cand.offer = "search.gpu_hour_usd"
        return ""
    shape = ReplicaShape(gpu, cand.gpus_per_replica, needs_nvlink)
    offers, why = fitting_offers(shape, search.price_kind)
    if not offers:
        return f"{why}; give search.gpu_hour_usd.{gpu}"
    offer = offers[0]
    cand.gpu_hour_usd = offer.price_per_gpu_hour
    per_instance = offer.price_per_gpu_hour * offer.gpus_per_instance
    cand.replica_hour_usd = (
        per_instance / offer.replicas_per_instance
        if offer.replicas_per_instance
        else per_instance * offer.instances_per_replica
    )
    cand.offer = offer.label
    return ""


def _static_check(scenario: Scenario, search: SearchConfig, cand: Candidate) -> Scenario | None:
    """The candidate's one-replica scenario, or None with ``cand.reason`` set."""
    from simulator.config.scenario import HardwareConfig
    from simulator.policies import known_policies
    from simulator.specs.catalog import load_gpu

    s = cand.settings
    cand.gpus_per_replica = s["tensor_parallel"] * s["pipeline_parallel"] * s["expert_parallel"]
    for axis in ("pipeline_parallel", "expert_parallel"):
        if s[axis] > 1 and axis not in HardwareConfig.model_fields:
            cand.reason = f"{axis} {s[axis]}: not modelled"
            return None
    if s["batching"] not in known_policies():
        cand.reason = (
            f"batching {s['batching']!r}: unknown policy; known: {', '.join(known_policies())}"
        )
        return None
    try:
        gpu = load_gpu(s["gpu"])
    except UserError as exc:
        cand.reason = f"gpu: {exc.messages[0]}"
        return None
    link = gpu.interconnect if gpu.interconnect and gpu.interconnect != "none" else gpu.host_link
    multi = cand.gpus_per_replica > 1
    unpriced = _price(cand, search, multi and str(link).startswith("nvlink"))
    if unpriced:
        cand.reason = unpriced
        return None
    settings = {
        key: s[axis]
        for axis, key in AXIS_KEYS.items()
        if key.split(".")[-1] in HardwareConfig.model_fields or not key.startswith("hardware.")
    }
    if s["batching"] == scenario.engine.batching.policy:  # with the scenario's parameters
        settings["engine.batching"] = scenario.engine.batching
    settings["hardware.replicas"] = 1
    if s["pipeline_parallel"] == 1:  # the scenario's micro-batches need its stages
        settings["hardware.pipeline_microbatches"] = None
    settings["cost.gpu_hour_usd"] = cand.replica_hour_usd / cand.gpus_per_replica
    settings["hardware.interconnect"] = link if multi else None
    if multi and link != gpu.interconnect:
        cand.notes = f"tensor parallel over {link} (no GPU-to-GPU link)"
    try:
        point = with_settings(scenario, settings)
        mem = scenario_memory_plan(point)
        if not mem.fits:
            cand.reason = f"does not fit: {mem.explain()}"
            return None
    except UserError as exc:
        cand.reason = _reason(exc)
        return None
    return point


def _reason(exc: UserError) -> str:
    return "; ".join(m.removeprefix("<scenario>: ") for m in exc.messages)


@reused_builds()
def point_bounds(payload: dict[str, Any]) -> dict[str, Any]:
    """The roofline checks of one point (a task for any executor): the SLO targets a lone
    request already misses, else its rate bound and latency lower bound; or why its cost
    model cannot be built. ``payload``: scenario data, base_dir, the length sample, latency
    metric."""
    from simulator.api import build_cost_model

    point = scenario_from_data(payload["scenario"], payload["base_dir"])
    lengths = LengthSample(
        np.asarray(payload["prompt_tokens"], dtype=np.int64),
        np.asarray(payload["output_tokens"], dtype=np.int64),
    )
    try:
        cost_model = build_cost_model(point)
    except UserError as exc:
        return {"reason": _reason(exc)}
    bounds = request_latency_bounds_ms(cost_model, lengths)
    missed = slo_violations_at_any_load(point, bounds, cost_model, lengths)
    if missed:
        return {"reason": "breaks the SLO at any load: " + "; ".join(missed)}
    metric, _, stat = payload["latency"].partition(".")
    max_kv_tokens = scenario_memory_plan(point).max_kv_tokens
    return {
        "rate_bound_per_s": replica_rate_bound_per_s(point, lengths, cost_model, max_kv_tokens),
        "latency_lower_bound_ms": latency_lower_bound_ms(bounds, cost_model, lengths, metric, stat),
    }


@reused_builds(draws=True)
def evaluate_candidate(payload: dict[str, Any]) -> dict[str, Any]:
    """Simulate one candidate (a task for any executor): its maximum rate per replica, and
    its cost and latency there. ``payload``: scenario data, base_dir, plan, latency metric."""
    point = scenario_from_data(payload["scenario"], payload["base_dir"])
    plan = PlanConfig.model_validate(payload["plan"])
    found = max_sustainable_rate(point, plan, replications=payload["replications"], screening=True)
    out = found.to_dict()
    metric, _, stat = payload["latency"].partition(".")
    if not found.summaries:
        return out
    if not all(s["output_tokens_per_s"] for s in found.summaries):
        # a passing point completes requests in its window (planning.evidence): this is a
        # guard, so that a cost is never divided by a throughput the run did not measure
        out["max_rate_per_s"] = None
        out["reason"] = (
            f"no output throughput measured at {found.max_rate_per_s:.4g} req/s: the run is "
            "too short to measure; raise workload.num_requests or "
            "plan.min_requests_per_replica"
        )
        return out
    n = len(found.summaries)
    # The replica's share of the instances it is rented in, over the output tokens it
    # serves at its maximum rate: the run summary's cost per token at that price.
    usd_per_s = payload["replica_hour_usd"] / 3600
    out["cost_per_million_output_tokens_usd"] = (
        sum(usd_per_s / s["output_tokens_per_s"] * 1e6 for s in found.summaries) / n
    )
    out["latency_ms"] = sum(s[metric][stat] for s in found.summaries) / n
    return out


def _payload(
    point: Scenario, plan: PlanConfig, search: SearchConfig, cand: Candidate
) -> dict[str, Any]:
    return {
        "replica_hour_usd": cand.replica_hour_usd,
        "scenario": scenario_data(point),
        "base_dir": str(point.base_dir),
        "plan": plan.model_dump(),
        "replications": search.replications,
        "latency": search.latency,
    }


def _settle(cand: Candidate, found: dict[str, Any], target: float | None) -> None:
    cand.simulations = found["simulations"]
    if found["max_rate_per_s"] is None or "cost_per_million_output_tokens_usd" not in found:
        cand.status, cand.feasible = "infeasible", False
        cand.reason = found["reason"] or "no sustainable rate"
        return
    cand.status, cand.feasible = "ranked", True
    cand.max_rate_per_s = found["max_rate_per_s"]
    cand.knee_per_s = found["knee_per_s"]
    cand.cost_per_million_output_tokens_usd = found["cost_per_million_output_tokens_usd"]
    cand.latency_ms = found["latency_ms"]
    cand.reason = found["reason"] or f"sustains {cand.max_rate_per_s:.4g} req/s per replica"
    if target:
        cand.replicas_for_target = math.ceil(target / cand.max_rate_per_s)
        cand.gpus_for_target = cand.replicas_for_target * cand.gpus_per_replica
        cand.monthly_cloud_usd_for_target = (
            cand.replicas_for_target * cand.replica_hour_usd * HOURS_PER_MONTH
        )


def _dominated_by(cand: Candidate, ranked: list[Candidate]) -> Candidate | None:
    for other in ranked:
        if (
            other.cost_per_million_output_tokens_usd <= cand.cost_lower_bound_usd
            and other.latency_ms <= cand.latency_lower_bound_ms
        ):
            return other
    return None


@reused_builds()
def search_configurations(
    scenario: Scenario,
    search: SearchConfig,
    plan: PlanConfig | None = None,
    *,
    workers: int = 1,
    dask_scheduler: Any = None,
    progress: bool = False,
    prune: bool = True,
) -> SearchResult:
    """Search the ``search:`` axes for the cheapest configurations that meet the SLO."""
    plan = plan or PlanConfig()
    started = time.perf_counter()
    candidates = [Candidate(settings) for settings in expand_axes(scenario, search)]
    screened = [(cand, _static_check(scenario, search, cand)) for cand in candidates]
    screened = [(cand, point) for cand, point in screened if point is not None]
    bar = _bar(len(candidates), progress)
    with TaskRunner(workers, dask_scheduler) as runner:
        pending = _bounded(scenario, search, runner, screened)
        bar.update(len(candidates) - len(pending))
        counts = _simulate_in_order(search, plan, runner, pending, bar, prune)
    bar.close()
    ranked = [c for c, _ in pending if c.feasible]
    ranked.sort(key=lambda c: (c.cost_per_million_output_tokens_usd, c.latency_ms))
    flags = pareto_flags([(c.cost_per_million_output_tokens_usd, c.latency_ms) for c in ranked])
    for rank, (cand, flag) in enumerate(zip(ranked, flags, strict=True), start=1):
        cand.rank, cand.pareto = rank, flag
    others = [c for c in candidates if not c.feasible]
    return SearchResult(
        candidates=ranked + others,
        latency_metric=search.latency,
        simulated=counts["simulated"],
        pruned=counts["pruned"],
        # Settled without simulating (the simulated ones count as simulated).
        infeasible=sum(1 for c in others if c.status == "infeasible" and not c.simulations),
        simulations=sum(c.simulations for c in candidates),
        wall_s=time.perf_counter() - started,
        extra={
            "precision": (
                f"screening: {search.replications} replication(s) per rate, verdicts on the "
                "point estimates where the 95% intervals could not tell; the best point's "
                "fleet is then planned at 95% confidence"
            )
        },
    )


def _bounded(
    scenario: Scenario,
    search: SearchConfig,
    runner: TaskRunner,
    screened: list[tuple[Candidate, Scenario]],
) -> list[tuple[Candidate, Scenario]]:
    """The points past the roofline checks (run on the workers), with their cost and
    latency bounds, cheapest bound first."""
    lengths: LengthSample = sample_lengths(scenario)
    common = {
        "prompt_tokens": lengths.prompt_tokens.tolist(),
        "output_tokens": lengths.output_tokens.tolist(),
        "latency": search.latency,
    }
    payloads = [
        {"scenario": scenario_data(point), "base_dir": str(point.base_dir), **common}
        for _, point in screened
    ]
    found = dict(runner.run(point_bounds, payloads))
    pending: list[tuple[Candidate, Scenario]] = []
    for i, (cand, point) in enumerate(screened):
        bounds = found[i]
        if "reason" in bounds:
            cand.reason = bounds["reason"]
            continue
        rate = cand.rate_bound_per_s = bounds["rate_bound_per_s"]
        usd_per_s = cand.replica_hour_usd / 3600
        cand.cost_lower_bound_usd = usd_per_s / (rate * lengths.mean_output_tokens) * 1e6
        cand.latency_lower_bound_ms = bounds["latency_lower_bound_ms"]
        cand.scenario = point
        pending.append((cand, point))
    pending.sort(key=lambda item: item[0].cost_lower_bound_usd)
    return pending


def _simulate_in_order(
    search: SearchConfig,
    plan: PlanConfig,
    runner: TaskRunner,
    pending: list[tuple[Candidate, Scenario]],
    bar,
    prune: bool,
) -> dict[str, int]:
    """Simulate the points in order of their cost bound, pruning those a point simulated
    before them already beats; returns how many were simulated and pruned."""
    ranked: list[Candidate] = []
    counts = {"simulated": 0, "pruned": 0}

    def dominator(cand: Candidate) -> Candidate | None:
        return _dominated_by(cand, ranked) if prune else None

    def skip(cand: Candidate) -> None:
        _mark_pruned(cand, dominator(cand))
        counts["pruned"] += 1
        bar.update(1)

    def settle(cand: Candidate, found: dict[str, Any]) -> None:
        _settle(cand, found, plan.target_rate_per_s)
        counts["simulated"] += 1
        bar.update(1)
        bar.set_postfix(simulated=counts["simulated"], pruned=counts["pruned"])

    dask = runner.dask_scheduler is not None
    wave = search.batch_size or (DASK_BATCH_SIZE if dask else 1)
    if wave == 1 and not dask:
        # each point on the points before it; later points run ahead on idle workers, so
        # the answer does not depend on how many there are

        def settle_at(i: int, found: dict[str, Any]) -> None:
            settle(pending[i][0], found)
            if pending[i][0].feasible:
                ranked.append(pending[i][0])

        decide_in_order(
            runner,
            evaluate_candidate,
            len(pending),
            lambda i: _payload(pending[i][1], plan, search, pending[i][0]),
            lambda i: dominator(pending[i][0]) is not None,
            settle_at,
            lambda i: skip(pending[i][0]),
        )
        return counts
    for start in range(0, len(pending), wave):  # in waves, each pruned on the ones before
        batch = []
        for cand, point in pending[start : start + wave]:
            if dominator(cand) is not None:
                skip(cand)
            else:
                batch.append((cand, _payload(point, plan, search, cand)))
        for i, found in runner.run(evaluate_candidate, [p for _, p in batch]):
            settle(batch[i][0], found)
        ranked[:] = [c for c, _ in pending if c.feasible]
    return counts


def _mark_pruned(cand: Candidate, better: Candidate) -> None:
    cand.status = "pruned"
    cand.reason = (
        f"pruned: cannot beat {_label(better.settings)} "
        f"(${better.cost_per_million_output_tokens_usd:.4g}/M, "
        f"{better.latency_ms:.4g} ms); bounds ${cand.cost_lower_bound_usd:.4g}/M, "
        f"{cand.latency_lower_bound_ms:.4g} ms"
    )


def _label(settings: dict[str, Any]) -> str:
    return (
        f"{settings['gpu']} tp{settings['tensor_parallel']} {settings['batching']} "
        f"w:{settings['weight_dtype']} kv:{settings['kv_dtype']} "
        f"seqs:{settings['max_num_seqs']}"
    )


class _NoBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


def _bar(total: int, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="config", desc="searching", file=sys.stderr, leave=False)
