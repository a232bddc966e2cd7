"""From a validated scenario to the replica groups of a simulation.

A scenario describes one group of identical replicas (``hardware`` + ``engine``), a
heterogeneous ``fleet`` of groups, or a disaggregated deployment (``engine.prefill`` and
``engine.decode`` pools). Each group gets its own cost model and memory plan, priced from
the scenario with that group's hardware and engine settings.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from simulator.config.loader import validation_messages
from simulator.config.scenario import EngineConfig, Scenario
from simulator.costmodel.shape import StepShape
from simulator.engine.autoscaler import AutoscalePolicy
from simulator.engine.replica import ReplicaConfig
from simulator.engine.simulation import ReplicaGroup, Simulation
from simulator.engine.speculative import SpeculativeCostModel
from simulator.errors import UserError
from simulator.policies import make_policy
from simulator.policies.routing import make_router
from simulator.specs.catalog import load_gpu, load_link, load_model
from simulator.workload import build_source

#: Context (tokens) per sequence assumed when rating a group's decode capacity for routing.
CAPACITY_CONTEXT_TOKENS = 1024


def _variant(scenario: Scenario, hardware: dict, engine: dict, where: str) -> Scenario:
    """The scenario with some hardware/engine settings replaced (validated again)."""
    hw_data = {**scenario.hardware.model_dump(), **hardware}
    eng_data = {
        **scenario.engine.model_dump(exclude={"prefill", "decode", "batching"}),
        "batching": "continuous",
        **engine,
    }
    try:
        hw = scenario.hardware.model_validate(hw_data)
        eng = EngineConfig.model_validate(eng_data)
    except ValidationError as exc:
        if exc.title == EngineConfig.__name__:
            messages = validation_messages(exc, eng_data, _engine_path(where))
        else:
            messages = validation_messages(exc, hw_data, where)
        raise UserError(messages) from None
    return scenario.model_copy(update={"hardware": hw, "engine": eng})


def _engine_path(where: str) -> str:
    """Where a group's engine settings are written in the scenario."""
    if where == "hardware":
        return "engine"
    return where if where.startswith("engine") else f"{where}.engine"


def _policy_factory(name: str, options: dict, where: str) -> Callable[[], object]:
    try:
        make_policy(name, **options)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    except (ValueError, TypeError) as exc:  # a parameter of the wrong type or value
        raise UserError(f"{where}.batching_options: {options!r}: {exc}") from None
    return lambda: make_policy(name, **options)


def _group(
    scenario: Scenario,
    cost_model_for,
    memory_plan_for,
    *,
    name: str,
    role: str,
    where: str,
    kv_link: str | None = None,
) -> ReplicaGroup:
    hw, eng = scenario.hardware, scenario.engine
    model = load_model(scenario.model)
    plan = memory_plan_for(scenario)
    if not plan.fits:
        raise UserError(f"{where}: {plan.explain()}")
    gpu = load_gpu(hw.gpu)
    # Without a host link (unified memory, CPU-only devices) preemption cannot swap.
    host = load_link(gpu.host_link) if gpu.host_link not in ("", "none") else None
    kv_bytes_per_token = model.kv_bytes_per_token(eng.kv_dtype)
    config = ReplicaConfig(
        max_num_seqs=eng.max_num_seqs,
        max_num_batched_tokens=eng.max_num_batched_tokens,
        kv_block_size=eng.kv_block_size,
        total_kv_blocks=plan.max_kv_tokens // eng.kv_block_size,
        kv_watermark_fraction=eng.kv_watermark,
        gpus=hw.gpus_per_replica,
        prefix_caching=eng.prefix_caching,
        preemption=eng.preemption if host is not None else "recompute",
        swap_space_bytes=eng.swap_space_gb * 1e9 * hw.gpus_per_replica,
        kv_bytes_per_token=kv_bytes_per_token,
        host_link_bytes_per_s=host.bandwidth_bytes_per_s if host is not None else 0.0,
        host_link_latency_s=host.latency_s if host is not None else 0.0,
    )
    cost = cost_model_for(scenario)
    if eng.speculative is not None and role != "prefill":
        cost = _speculative(scenario, cost, cost_model_for)
    seqs = max(1, min(eng.max_num_seqs, plan.max_kv_tokens // CAPACITY_CONTEXT_TOKENS))
    step = cost.step_time_s(
        StepShape(
            decode_seqs=seqs, logits_rows=seqs, decode_context_tokens=seqs * CAPACITY_CONTEXT_TOKENS
        )
    )
    link_bw = link_latency = 0.0
    if kv_link is not None:
        link = load_link(kv_link)
        # each GPU of the prefill replica sends its shard of the KV over its own NIC
        link_bw = link.bandwidth_bytes_per_s * hw.tensor_parallel
        link_latency = link.latency_s
    return ReplicaGroup(
        count=hw.replicas,
        cost_model=cost,
        config=config,
        make_policy=_policy_factory(eng.batching, eng.batching_options, _engine_path(where)),
        max_model_len=eng.max_model_len or model.max_position_embeddings,
        name=name,
        role=role,
        capacity=seqs / step,
        kv_link_bytes_per_s=link_bw,
        kv_link_latency_s=link_latency,
    )


def _speculative(scenario: Scenario, target, cost_model_for) -> SpeculativeCostModel:
    spec = scenario.engine.speculative
    if spec.method == "draft":
        draft_scenario = scenario.model_copy(update={"model": spec.draft_model})
        try:
            load_model(spec.draft_model)
        except UserError as exc:
            raise UserError(f"engine.speculative.draft_model: {exc}") from None
    else:  # the model's multi-token-prediction module: one more layer and the LM head
        draft_scenario = scenario
    draft = cost_model_for(draft_scenario)
    if spec.method == "mtp":
        draft = _OneLayerDraft(draft, load_model(scenario.model).num_layers)
    return SpeculativeCostModel(target, draft, spec.num_speculative_tokens, spec.acceptance_rate)


class _OneLayerDraft:
    """An MTP head priced as one transformer layer of the target (its decode step / layers)."""

    def __init__(self, target, num_layers: int):
        self._target = target
        self._layers = num_layers

    def step_time_s(self, shape: StepShape) -> float:
        return self._target.step_time_s(shape) / self._layers


def assemble(
    scenario: Scenario,
    cost_model_for,
    memory_plan_for,
    progress: Callable[[int], None] | None = None,
    trace_steps: bool = False,
) -> Simulation:
    """The simulation of ``scenario`` (``cost_model_for`` / ``memory_plan_for`` price one
    replica of a scenario)."""
    eng = scenario.engine
    groups: list[ReplicaGroup] = []
    if eng.batching == "disaggregated":
        kv_link = eng.kv_link or load_gpu(eng.prefill.gpu).interconnect or "infiniband-ndr"
        for role in ("prefill", "decode"):
            pool = getattr(eng, role)
            variant = _variant(
                scenario,
                {
                    "gpu": pool.gpu,
                    "tensor_parallel": pool.tensor_parallel,
                    "replicas": pool.replicas,
                    "interconnect": pool.interconnect,
                    "calibration": pool.calibration,
                },
                {"batching": pool.batching, "batching_options": pool.batching_options},
                f"engine.{role}",
            )
            groups.append(
                _group(
                    variant,
                    cost_model_for,
                    memory_plan_for,
                    name=role,
                    role=role,
                    where=f"engine.{role}",
                    kv_link=kv_link if role == "prefill" else None,
                )
            )
    elif scenario.fleet:
        for i, member in enumerate(scenario.fleet):
            where = f"fleet.{i}"
            variant = _variant(
                scenario,
                {
                    "gpu": member.gpu,
                    "tensor_parallel": member.tensor_parallel,
                    "replicas": member.replicas,
                    "interconnect": member.interconnect,
                    "calibration": member.calibration,
                },
                {"batching": eng.batching, **member.engine},
                where,
            )
            groups.append(
                _group(
                    variant,
                    cost_model_for,
                    memory_plan_for,
                    name=member.name or f"{member.gpu}-tp{member.tensor_parallel}",
                    role="serve",
                    where=where,
                )
            )
    else:
        serving = scenario
        if scenario.hardware.autoscale is not None:  # build every replica it may start
            serving = _variant(
                scenario,
                {"replicas": scenario.hardware.autoscale.max_replicas},
                {"batching": eng.batching, "batching_options": eng.batching_options},
                "hardware",
            )
        groups.append(
            _group(
                serving,
                cost_model_for,
                memory_plan_for,
                name="replicas",
                role="serve",
                where="hardware",
            )
        )
    routing = scenario.routing
    options = {}
    if routing.policy == "length_aware":
        options = {
            "long_prompt_tokens": routing.long_prompt_tokens,
            "long_replica_fraction": routing.long_replica_fraction,
        }
    try:
        make_router(routing.policy, [1.0])
    except UserError as exc:
        raise UserError(f"routing.policy: {exc}") from None
    source = build_source(scenario.workload.model_dump(), base_dir=scenario.base_dir)
    autoscale = None
    if scenario.hardware.autoscale is not None:
        if eng.batching == "disaggregated" or scenario.fleet:
            raise UserError(
                "hardware.autoscale: applies to one group of replicas, not to a "
                "fleet or a disaggregated deployment"
            )
        a = scenario.hardware.autoscale
        autoscale = (
            scenario.hardware.replicas,
            AutoscalePolicy(
                a.min_replicas,
                a.max_replicas,
                a.metric,
                a.target,
                a.scale_up_delay_s,
                a.scale_down_after_s,
                a.scale_down_fraction,
                a.evaluate_every_s,
            ),
        )
    return Simulation(
        groups,
        source,
        routing=routing.policy,
        routing_options=options,
        seed=scenario.workload.seed,
        sample_interval_s=scenario.output.timeseries_interval_s,
        progress=progress,
        trace_steps=trace_steps,
        autoscale=autoscale,
        # per-class inter-token gaps cost a little per step: only when there are classes
        itl_per_class=bool(
            (scenario.workload.classes and len(scenario.workload.classes) > 1)
            or scenario.workload.trace
        ),
    )
