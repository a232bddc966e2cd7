"""Python API: load a scenario, build its simulation, run it, get DataFrames back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from simulator.config.loader import load_scenario, scenario_from_dict
from simulator.config.scenario import Scenario
from simulator.costmodel import (
    CostConfig,
    CostModel,
    CostParams,
    MemoryPlan,
    Parallelism,
    Precision,
    memory_plan,
)
from simulator.costmodel.profiles import load_profile
from simulator.engine.simulation import Simulation
from simulator.errors import UserError
from simulator.metrics import RunRecords, Summary, summarize
from simulator.specs.catalog import load_gpu, load_link, load_model, specs_dir

__all__ = ["Result", "build_simulation", "load_scenario", "run", "scenario_from_dict"]


def resolve_calibration(scenario: Scenario) -> tuple[CostParams, str]:
    """The PyTorch-reference parameters for the scenario's GPU and where they came from."""
    from simulator.costmodel.pricing import base_parameters

    return base_parameters(scenario.hardware.gpu, scenario.hardware.calibration, scenario.base_dir)


def resolve_pricing(scenario: Scenario):
    """What one replica of the scenario is priced with: parameters, the engine's kernel
    tables (when a calibration ships for its GPU and version) and where each came from."""
    from simulator.costmodel.pricing import resolve_pricing as resolve

    hw, eng = scenario.hardware, scenario.engine
    try:
        return resolve(
            hw.gpu,
            calibration=hw.calibration,
            profile=eng.profile,
            version=getattr(eng, "version", None),
            base_dir=scenario.base_dir,
        )
    except UserError as exc:
        raise _in_scenario_sections(exc) from None


#: Cost-model fields that belong to the scenario's ``engine`` section (the rest: hardware).
_ENGINE_FIELDS = ("kv_dtype", "weight_dtype", "attention_dtype", "lm_head_dtype")


def _in_scenario_sections(exc: UserError) -> UserError:
    """Cost-model messages name their field; give each its scenario section."""
    return UserError(
        [
            m
            if m.startswith(("hardware.", "engine."))
            else f"engine.{m}"
            if m.startswith(_ENGINE_FIELDS)
            else f"hardware.{m}"
            for m in exc.messages
        ]
    )


def _offload_plan(hw, gpu):
    """The layers a replica keeps in host memory (None without ``hardware.offload``)."""
    from simulator.costmodel.offload import OffloadPlan

    if hw.offload is None:
        return None
    has_link = gpu.host_link not in ("", "none")
    return OffloadPlan(
        gpu_layers=hw.offload.gpu_layers,
        mode=hw.offload.mode,
        host=load_gpu(hw.offload.host),
        host_link=load_link(gpu.host_link) if has_link else None,
    )


def build_cost_model(scenario: Scenario) -> CostModel:
    """The step-time model of one replica of the scenario (TP × PP × EP GPUs, offload)."""
    from simulator.specs.topology import build_placement

    hw, eng = scenario.hardware, scenario.engine
    gpu = load_gpu(hw.gpu)
    model = load_model(scenario.model)
    placement = build_placement(
        gpu.name,
        gpu.interconnect,
        tensor_parallel=hw.tensor_parallel,
        pipeline_parallel=hw.pipeline_parallel,
        expert_parallel=hw.expert_parallel,
        gpus_per_node=hw.gpus_per_node,
        interconnect=hw.interconnect,
        inter_node_link=hw.inter_node_link,
    )
    offload = _offload_plan(hw, gpu)
    pricing = resolve_pricing(scenario)
    params = pricing.params
    if "cuda_graphs" in eng.model_fields_set or eng.profile is None:  # an explicit setting wins
        params = params.replace(cuda_graphs=eng.cuda_graphs)
    try:
        return CostModel(
            CostConfig(
                model,
                gpu,
                params=params,
                kernels=pricing.kernels,
                parallel=Parallelism(
                    tensor=hw.tensor_parallel,
                    pipeline=hw.pipeline_parallel,
                    expert=hw.expert_parallel,
                    microbatches=hw.pipeline_microbatches,
                    placement=placement,
                ),
                precision=Precision(
                    weights=_weight_dtype(scenario, model),
                    kv_cache=eng.kv_dtype,
                    attention=eng.attention_dtype,
                    lm_head=eng.lm_head_dtype,
                ),
                offload=offload,
            )
        )
    except UserError as exc:
        raise _in_scenario_sections(exc) from None


def _weight_dtype(scenario: Scenario, model) -> str:
    """The weight format the replica runs: the model's own quantised checkpoint unless the
    scenario names another (``quant.checkpoint_dtype``)."""
    from simulator.costmodel.quant import checkpoint_dtype

    eng = scenario.engine
    return checkpoint_dtype(model, eng.weight_dtype, "weight_dtype" in eng.model_fields_set)


def memory_accounting(scenario: Scenario) -> dict:
    """How the scenario's engine sizes its KV cache: accounting, knob, fraction, and the
    tokens one sequence must fit for the engine to start (``memory_plan`` arguments). A
    knob of another engine is an error naming the right one."""
    from simulator.costmodel.profiles import MEMORY_KNOBS

    hw, eng = scenario.hardware, scenario.engine
    profile = load_profile(eng.profile) if eng.profile else None
    accounting = profile.memory_accounting if profile else "gpu_fraction"
    knob = MEMORY_KNOBS[accounting]
    for other in set(MEMORY_KNOBS.values()) - {knob}:
        if other in eng.model_fields_set and getattr(eng, other) is not None:
            engine = profile.name if profile else "the PyTorch reference runtime"
            raise UserError(
                f"engine.{other}: {engine} sizes its KV cache with engine.{knob}; set that instead"
            )
    fraction = getattr(eng, knob)
    if profile is not None and (fraction is None or knob not in eng.model_fields_set):
        fraction = profile.default_memory_fraction(hw.tensor_parallel)
    required = 0
    if profile is not None and profile.requires_max_model_len_fit:
        required = eng.max_model_len or load_model(scenario.model).max_position_embeddings
    return {"accounting": accounting, "knob": knob, "fraction": fraction, "required": required}


def build_memory_plan(scenario: Scenario) -> MemoryPlan:
    """Memory of the most loaded GPU of a replica: weights, workspace and the KV cache left,
    sized as the scenario's engine does."""

    hw, eng = scenario.hardware, scenario.engine
    gpu = load_gpu(hw.gpu)
    model = load_model(scenario.model)
    offload = _offload_plan(hw, gpu)
    budget = memory_accounting(scenario)
    try:
        return memory_plan(
            model,
            gpu,
            tensor_parallel=hw.tensor_parallel,
            pipeline_parallel=hw.pipeline_parallel,
            expert_parallel=hw.expert_parallel,
            weight_dtype=_weight_dtype(scenario, model),
            kv_dtype=eng.kv_dtype,
            gpu_memory_utilization=budget["fraction"],
            max_num_batched_tokens=eng.max_num_batched_tokens,
            offload=offload,
            attention_dtype=eng.attention_dtype,
            lm_head_dtype=eng.lm_head_dtype,
            accounting=budget["accounting"],
            knob=budget["knob"],
            required_tokens=budget["required"],
        )
    except UserError as exc:
        raise _in_scenario_sections(exc) from None


def apply_profile_limits(scenario: Scenario) -> Scenario:
    """The scenario with its engine profile's default limits filled into the ``engine``
    fields the user left unset (``max_num_seqs`` and the like)."""
    eng = scenario.engine
    if eng.profile is None:
        return scenario
    try:
        profile = load_profile(eng.profile)
    except UserError as exc:
        raise UserError(f"engine.profile: {exc}") from None
    limits = {
        key: value for key, value in profile.limits.items() if key not in eng.model_fields_set
    }
    if not limits:
        return scenario
    engine = eng.model_copy(update=limits)
    updated = scenario.model_copy(update={"engine": engine})
    updated._base_dir = scenario._base_dir
    return updated


def build_simulation(
    scenario: Scenario,
    progress: Callable[[int], None] | None = None,
    trace_steps: bool = False,
) -> Simulation:
    """Turn a validated scenario into a ready-to-run simulation (checks the memory fit)."""
    from simulator.assembly import assemble

    scenario = apply_profile_limits(scenario)
    return assemble(scenario, build_cost_model, build_memory_plan, progress, trace_steps)


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
    summary = summarize(
        records,
        slo=scenario.slo or None,
        gpu_hour_usd=scenario.cost.gpu_hour_usd,
        warmup_s=scenario.output.warmup_s,
        class_slos=class_slos or None,
    )
    summary.step_time_error_band = validated_error_band()
    summary.pricing = pricing_description(scenario)
    return summary


def pricing_description(scenario: Scenario) -> dict | None:
    """The summary's ``pricing`` entry: engine, version and the kernels that priced each
    replica group (the scenario's own hardware; fleets and pools name their first)."""
    try:
        return resolve_pricing(apply_profile_limits(scenario)).describe()
    except UserError:
        return None


def validated_error_band() -> dict | None:
    """Held-out step-time error of the cost model, written by ``benchmarks/validation.py``
    (``hardware_specs/calibration/error_band.yaml``); None when absent."""
    path = specs_dir() / "calibration" / "error_band.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    return {**data["step_time"], "source": data.get("source", str(path))}
