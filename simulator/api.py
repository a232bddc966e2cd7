"""Python API: load a scenario, build its simulation, run it, get DataFrames back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simulator.config.loader import load_scenario, scenario_from_dict
from simulator.config.scenario import Scenario
from simulator.costmodel import CostModel, CostParams, MemoryPlan, memory_plan
from simulator.engine.replica import ReplicaConfig
from simulator.engine.router import make_router
from simulator.engine.simulation import ReplicaGroup, Simulation
from simulator.errors import UserError
from simulator.metrics import RunRecords, Summary, summarize
from simulator.policies import make_policy
from simulator.specs.catalog import load_gpu, load_link, load_model, specs_dir
from simulator.workload import build_source

__all__ = ["Result", "build_simulation", "load_scenario", "run", "scenario_from_dict"]


def resolve_calibration(scenario: Scenario) -> tuple[CostParams, str]:
    """Cost-model parameters for the scenario's GPU and where they came from."""
    choice = scenario.hardware.calibration
    if choice is not None and choice.lower() == "none":
        return CostParams.defaults(), "datasheet defaults"
    if choice is None:
        shipped = specs_dir() / "calibration" / f"{scenario.hardware.gpu}.yaml"
        if shipped.is_file():
            return CostParams.from_file(shipped), str(shipped)
        return CostParams.defaults(), "datasheet defaults"
    path = Path(choice)
    if not path.is_absolute():
        path = scenario.base_dir / path
    if not path.is_file():
        raise UserError(f"hardware.calibration: file {choice!r} does not exist")
    return CostParams.from_file(path), str(path)


def build_cost_model(scenario: Scenario) -> CostModel:
    """The step-time model of one replica of the scenario."""
    hw, eng = scenario.hardware, scenario.engine
    gpu = load_gpu(hw.gpu)
    link_name = hw.interconnect or gpu.interconnect
    link = load_link(link_name) if hw.tensor_parallel > 1 and link_name else None
    if hw.tensor_parallel > 1 and link is None:
        raise UserError(
            f"hardware.interconnect: {hw.gpu} has no GPU-to-GPU link; name one for "
            f"tensor_parallel {hw.tensor_parallel} (e.g. pcie4)"
        )
    params, _ = resolve_calibration(scenario)
    return CostModel(
        load_model(scenario.model),
        gpu,
        params=params,
        tensor_parallel=hw.tensor_parallel,
        link=link,
        weight_dtype=eng.weight_dtype,
        kv_dtype=eng.kv_dtype,
        cuda_graphs=eng.cuda_graphs,
    )


def build_memory_plan(scenario: Scenario) -> MemoryPlan:
    """Memory of one GPU of a replica: weights, workspace and what is left for the KV cache."""
    hw, eng = scenario.hardware, scenario.engine
    return memory_plan(
        load_model(scenario.model),
        load_gpu(hw.gpu),
        tensor_parallel=hw.tensor_parallel,
        weight_dtype=eng.weight_dtype,
        kv_dtype=eng.kv_dtype,
        gpu_memory_utilization=eng.gpu_memory_utilization,
        max_num_batched_tokens=eng.max_num_batched_tokens,
    )


def build_simulation(
    scenario: Scenario, progress: Callable[[int], None] | None = None
) -> Simulation:
    """Turn a validated scenario into a ready-to-run simulation (checks the memory fit)."""
    hw, eng = scenario.hardware, scenario.engine
    model = load_model(scenario.model)
    plan = build_memory_plan(scenario)
    if not plan.fits:
        raise UserError(f"hardware: {plan.explain()}")
    try:  # unknown names fail here, before anything runs
        make_policy(eng.batching)
        make_router(scenario.routing.policy)
    except UserError as exc:
        field = "engine.batching" if "batching" in str(exc) else "routing.policy"
        raise UserError(f"{field}: {exc}") from None
    config = ReplicaConfig(
        max_num_seqs=eng.max_num_seqs,
        max_num_batched_tokens=eng.max_num_batched_tokens,
        kv_block_size=eng.kv_block_size,
        total_kv_blocks=plan.max_kv_tokens // eng.kv_block_size,
        kv_watermark_fraction=eng.kv_watermark,
        gpus=hw.tensor_parallel,
    )
    group = ReplicaGroup(
        count=hw.replicas,
        cost_model=build_cost_model(scenario),
        config=config,
        make_policy=lambda: make_policy(eng.batching),
        max_model_len=eng.max_model_len or model.max_position_embeddings,
    )
    source = build_source(scenario.workload.model_dump(), base_dir=scenario.base_dir)
    return Simulation(
        [group],
        source,
        routing=scenario.routing.policy,
        sample_interval_s=scenario.output.timeseries_interval_s,
        progress=progress,
    )


@dataclass
class Result:
    """Outcome of one simulated run."""

    scenario: Scenario
    records: RunRecords
    summary_obj: Summary

    @property
    def summary(self) -> dict:
        return self.summary_obj.to_dict()

    @property
    def requests(self) -> pd.DataFrame:
        r = self.records.requests
        return pd.DataFrame(
            {
                "request_id": r.request_id,
                "class_name": r.class_name,
                "arrival_s": r.arrival_s,
                "first_token_s": r.first_token_s,
                "finish_s": r.finish_s,
                "prompt_tokens": r.prompt_tokens,
                "output_tokens": r.output_tokens,
                "replica": r.replica,
                "rejected": r.rejected,
                "reject_reason": r.reject_reason,
            }
        )

    @property
    def timeseries(self) -> pd.DataFrame:
        t = self.records.timeseries
        return pd.DataFrame(
            {
                "time_s": t.time_s,
                "replica": t.replica,
                "waiting": t.waiting,
                "running": t.running,
                "kv_used_fraction": t.kv_used_fraction,
                "batch_tokens": t.batch_tokens,
            }
        )


def run(scenario: Scenario | str | Path, progress: Callable[[int], None] | None = None) -> Result:
    """Simulate a scenario (object or YAML path) and summarise it."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    records = build_simulation(scenario, progress=progress).run()
    return Result(scenario, records, summarize_run(scenario, records))


def summarize_run(scenario: Scenario, records: RunRecords) -> Summary:
    """The scenario's summary of a finished run (its SLOs, per-class SLOs and GPU price)."""
    classes = scenario.workload.classes or []
    class_slos = {c.name: c.slo.model_dump(exclude_none=True) for c in classes if c.slo}
    return summarize(
        records,
        slo=scenario.slo or None,
        gpu_hour_usd=scenario.cost.gpu_hour_usd,
        warmup_s=scenario.output.warmup_s,
        class_slos=class_slos or None,
    )
