"""Compile a validated scenario into the deployment the engine runs.

This is the one place where cost models and memory plans are built from scenario settings:
each group of replicas (``Scenario.groups``) gets its cost model (speculative decoding
wrapped around it), its memory plan, its scheduler limits and KV-cache geometry, its
batching policy's parameters and its routing weight.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from simulator.config.deployment import GroupSettings
from simulator.config.engine import EngineConfig
from simulator.config.hardware import HardwareConfig
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
from simulator.costmodel.graph_padding import captured_batch_sizes
from simulator.costmodel.moe import curve_for_calibration
from simulator.costmodel.pricing import Pricing, base_parameters
from simulator.costmodel.pricing import resolve_pricing as price_with
from simulator.costmodel.profiles import MEMORY_KNOBS, load_profile
from simulator.costmodel.quant import checkpoint_dtype
from simulator.costmodel.shape import StepShape
from simulator.engine.autoscaler import AutoscalePolicy
from simulator.engine.deployment import Autoscaling, Deployment, KvLink, ReplicaGroup, Routing
from simulator.engine.entities import ReplicaConfig
from simulator.engine.speculative import OneLayerDraft, SpeculativeCostModel
from simulator.errors import UserError
from simulator.policies.base import rank_share
from simulator.specs.catalog import load_gpu, load_link, load_model
from simulator.specs.model import ModelSpec

#: Context (tokens) per sequence assumed when rating a group's decode capacity for routing.
CAPACITY_CONTEXT_TOKENS = 1024
#: Link between the pools of a disaggregated deployment when neither the scenario nor the
#: prefill GPU names one.
DEFAULT_KV_LINK = "infiniband-ndr"
#: Cost-model fields that belong to the scenario's ``engine`` section (the rest: hardware).
_ENGINE_FIELDS = ("kv_dtype", "weight_dtype", "attention_dtype", "lm_head_dtype")
#: Cost models and memory plans already built, while ``reused_builds`` is active.
_BUILT: dict[tuple, object] | None = None


@contextlib.contextmanager
def reused_builds(draws: bool = False) -> Iterator[None]:
    """Within this block, cost models and memory plans are built once per replica layout
    (model, GPU, parallelism, dtypes, calibration, engine profile, memory settings) and
    reused: a search simulates each configuration at many rates and seeds. A cost model is
    pure (its caches only remember step times), so sharing one changes no result. Files
    (calibrations, profiles, model and GPU specs) are read once within the block. With
    ``draws``, the requests' shapes are also drawn once per workload and seed
    (``workload.streams.shared_draws``: for runs of one workload at many rates; they are
    kept until the block ends)."""
    from simulator.workload.streams import shared_draws

    global _BUILT
    outer = _BUILT
    if outer is None:
        _BUILT = {}
    try:
        with shared_draws() if draws else contextlib.nullcontext():
            yield
    finally:
        _BUILT = outer


def _layout_key(kind: str, model: str, hw: HardwareConfig, eng: EngineConfig, base_dir) -> tuple:
    """What a cost model or memory plan depends on: the replica's hardware and engine
    settings, and which of them were set (an unset weight dtype follows the checkpoint),
    not how many replicas there are, nor how they scale."""
    return (
        kind,
        model,
        hw.model_dump_json(exclude={"replicas", "autoscale"}),
        tuple(sorted(hw.model_fields_set - {"replicas", "autoscale"})),
        eng.model_dump_json(),
        tuple(sorted(eng.model_fields_set)),
        str(base_dir),
    )


def _reused(key: tuple, build):
    if _BUILT is None:
        return build()
    found = _BUILT.get(key)
    if found is None:
        found = _BUILT[key] = build()
    return found


def resolve_calibration(hardware: HardwareConfig, base_dir: Path) -> tuple[CostParams, str]:
    """The PyTorch-reference parameters for the hardware's GPU and where they came from."""
    return base_parameters(hardware.gpu, hardware.calibration, base_dir)


def resolve_pricing(hw: HardwareConfig, eng: EngineConfig, base_dir: Path) -> Pricing:
    """What one replica is priced with: the engine's kernel calibration for its GPU and
    version, else the PyTorch-reference calibration, else the datasheet; the profile's
    runtime on top (``costmodel/pricing.py``)."""
    scales = eng.fp8_activation_scales
    key = ("pricing", hw.gpu, hw.calibration, eng.profile, eng.version, scales, str(base_dir))
    try:
        return _reused(key, lambda: _with_fp8_scales(price_with(
            hw.gpu,
            calibration=hw.calibration,
            profile=eng.profile,
            version=eng.version,
            base_dir=base_dir,
        ), scales))  # fmt: skip
    except UserError as exc:
        raise _in_scenario_sections(exc) from None


def _with_fp8_scales(pricing: Pricing, scales: str | None) -> Pricing:
    """``pricing`` with the scenario's FP8 activation scaling in place of the profile's."""
    if scales is None:
        return pricing
    params = dataclasses.replace(pricing.params, fp8_static_activation_scales=scales == "static")
    return dataclasses.replace(pricing, params=params)


def _under_group(exc: UserError, where: str) -> UserError:
    """A fleet member's or pool's settings are named under its own path
    (``fleet.1.engine.max_num_seqs``), not the top-level sections it overrides."""
    if where == "hardware":
        return exc
    messages = []
    for m in exc.messages:
        if m.startswith("engine."):
            m = f"{where}.{m}"
        elif m.startswith("hardware."):
            m = f"{where}.{m.removeprefix('hardware.')}"
        messages.append(m)
    return UserError(messages)


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


def _offload_plan(hw: HardwareConfig, gpu):
    """The layers a replica keeps in host memory (None without ``hardware.offload``)."""
    from simulator.costmodel.offload import OffloadPlan

    if hw.offload is None:
        return None
    has_link = gpu.host_link not in ("", "none")
    try:
        host = load_gpu(hw.offload.host)
    except UserError as exc:  # named under its own key, not as the replica's GPU
        raise UserError([f"offload.host: {m}" for m in exc.messages]) from None
    return OffloadPlan(
        gpu_layers=hw.offload.gpu_layers,
        mode=hw.offload.mode,
        host=host,
        host_link=load_link(gpu.host_link) if has_link else None,
    )


def cost_model(model: str, hw: HardwareConfig, eng: EngineConfig, base_dir: Path) -> CostModel:
    """The step-time model of one replica of ``model`` (TP × PP × EP GPUs, offload)."""
    key = _layout_key("cost", model, hw, eng, base_dir)
    return _reused(key, lambda: _build_cost_model(model, hw, eng, base_dir))


def _build_cost_model(
    model: str, hw: HardwareConfig, eng: EngineConfig, base_dir: Path
) -> CostModel:
    from simulator.specs.topology import build_placement

    gpu = load_gpu(hw.gpu)
    placement = build_placement(
        gpu.name,
        gpu.interconnect,
        tensor_parallel=hw.tensor_parallel,
        pipeline_parallel=hw.pipeline_parallel,
        expert_parallel=hw.expert_parallel,
        gpus_per_node=hw.gpus_per_node,
        interconnect=hw.interconnect,
        inter_node_link=hw.inter_node_link,
        host_link=gpu.host_link,
    )
    pricing = resolve_pricing(hw, eng, base_dir)
    spec = load_model(model)
    try:
        return CostModel(
            CostConfig(
                spec,
                gpu,
                params=pricing.params.replace(cuda_graphs=eng.cuda_graphs),
                kernels=pricing.kernels,
                # The reference calibration's grouped expert GEMMs where no engine kernels.
                moe_grouped_gemm=None
                if pricing.kernels
                else curve_for_calibration(pricing.parameters),
                parallel=Parallelism(
                    tensor=hw.tensor_parallel,
                    pipeline=hw.pipeline_parallel,
                    expert=hw.expert_parallel,
                    microbatches=hw.pipeline_microbatches,
                    placement=placement,
                ),
                precision=Precision(
                    weights=weight_dtype(spec, eng),
                    kv_cache=eng.kv_dtype,
                    attention=eng.attention_dtype,
                    lm_head=eng.lm_head_dtype,
                ),
                offload=_offload_plan(hw, gpu),
                graph_batch_sizes=_graph_batch_sizes(hw, eng),
                group_token_budget=rank_token_budget(hw, eng),
            )
        )
    except UserError as exc:
        raise _in_scenario_sections(exc) from None


def rank_token_budget(hw: HardwareConfig, eng: EngineConfig) -> int | None:
    """Tokens one attention-data-parallel rank schedules in a step: its share of the
    replica's budget, as each rank's scheduler runs under its own limits (None: one rank)."""
    ranks = hw.expert_parallel
    return rank_share(eng.max_num_batched_tokens, ranks) if ranks > 1 else None


def _graph_batch_sizes(hw: HardwareConfig, eng: EngineConfig) -> tuple[int, ...]:
    """The CUDA-graph batch sizes one attention-data-parallel rank captures: its share of
    the replica's batch and token limits (``graph_padding.captured_batch_sizes``)."""
    if not eng.cuda_graph_batch_sizes or not eng.cuda_graphs:
        return ()
    ranks = hw.expert_parallel
    return captured_batch_sizes(
        eng.cuda_graph_batch_sizes, eng.max_num_seqs // ranks, eng.max_num_batched_tokens // ranks
    )


def weight_dtype(model: ModelSpec, eng: EngineConfig) -> str:
    """The weight format the replica runs: the model's own quantised checkpoint unless the
    engine section names another (``quant.checkpoint_dtype``)."""
    return checkpoint_dtype(model, eng.weight_dtype, "weight_dtype" in eng.model_fields_set)


def max_model_len(model: ModelSpec, eng: EngineConfig) -> int:
    """Longest prompt + output a replica accepts (tokens): ``engine.max_model_len``, at most
    the model's context length (its ``max_position_embeddings``), which engines refuse to
    exceed; default that length."""
    limit = model.max_position_embeddings
    if eng.max_model_len is None:
        return limit
    if eng.max_model_len > limit:
        raise UserError(
            f"engine.max_model_len: {eng.max_model_len:,} tokens exceeds {model.name}'s "
            f"context length of {limit:,} (max_position_embeddings); set at most {limit:,}, "
            "or give a model config.json whose max_position_embeddings is longer (rope "
            "scaling extended)"
        )
    return eng.max_model_len


def memory_accounting(hw: HardwareConfig, eng: EngineConfig, model: ModelSpec) -> dict:
    """How the engine sizes its KV cache (``memory_plan`` arguments): accounting, knob,
    fraction, the tokens one sequence must fit for the engine to start, and the most tokens
    one fused-MoE call takes. A knob of another engine is an error naming the right one."""
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
        required = max_model_len(model, eng)
    return {
        "accounting": accounting,
        "knob": knob,
        "fraction": fraction,
        "required": required,
        "moe_chunk_tokens": profile.moe_chunk_tokens if profile else None,
    }


def replica_memory_plan(model: str, hw: HardwareConfig, eng: EngineConfig) -> MemoryPlan:
    """Memory of the most loaded GPU of a replica: weights, workspace and the KV cache left,
    sized as the engine does."""
    key = _layout_key("memory", model, hw, eng, None)
    return _reused(key, lambda: _build_memory_plan(model, hw, eng))


def _build_memory_plan(model: str, hw: HardwareConfig, eng: EngineConfig) -> MemoryPlan:
    gpu, spec = load_gpu(hw.gpu), load_model(model)
    budget = memory_accounting(hw, eng, spec)
    try:
        return memory_plan(
            spec,
            gpu,
            tensor_parallel=hw.tensor_parallel,
            pipeline_parallel=hw.pipeline_parallel,
            expert_parallel=hw.expert_parallel,
            weight_dtype=weight_dtype(spec, eng),
            kv_dtype=eng.kv_dtype,
            gpu_memory_utilization=budget["fraction"],
            max_num_batched_tokens=eng.max_num_batched_tokens,
            offload=_offload_plan(hw, gpu),
            attention_dtype=eng.attention_dtype,
            lm_head_dtype=eng.lm_head_dtype,
            accounting=budget["accounting"],
            knob=budget["knob"],
            required_tokens=budget["required"],
            moe_chunk_tokens=budget["moe_chunk_tokens"],
            **_draft_memory(eng),
        )
    except UserError as exc:
        raise _in_scenario_sections(exc) from None


def _draft_memory(eng: EngineConfig) -> dict:
    """``memory_plan`` arguments of a speculative draft model held on the replica's GPUs."""
    spec = eng.speculative
    if spec is None or spec.method != "draft" or not spec.draft_model:
        return {}
    draft = load_model(spec.draft_model)
    return {"draft": draft, "draft_weight_dtype": weight_dtype(draft, eng)}


def _check_draft(target, draft) -> None:
    """A draft proposes the target's tokens: it needs the target's vocabulary, and a draft
    no smaller than the target saves nothing."""
    if draft.vocab_size != target.vocab_size:
        raise UserError(
            f"engine.speculative.draft_model: {draft.name} has a vocabulary of "
            f"{draft.vocab_size:,} tokens and {target.name} {target.vocab_size:,}; a draft "
            "proposes the target's tokens, so it needs the same tokenizer (e.g. a smaller "
            "model of the same family)"
        )
    if draft.param_count() >= target.param_count():
        raise UserError(
            f"engine.speculative.draft_model: {draft.name} is no smaller than {target.name}; "
            "a draft saves time only when it is much smaller than the model it drafts for"
        )


def _speculative(scenario: Scenario, group: GroupSettings, target) -> SpeculativeCostModel:
    spec = group.engine.speculative
    hw, eng = group.hardware, group.engine
    if spec.method == "draft":
        _check_draft(load_model(scenario.model), load_model(spec.draft_model))
        draft = cost_model(spec.draft_model, hw, eng, scenario.base_dir)
    else:  # the model's multi-token-prediction module: one more layer and the LM head
        model = load_model(scenario.model)
        if not model.mtp_layers:
            raise UserError(
                f"engine.speculative.method: mtp needs a model that ships multi-token-"
                f"prediction layers (num_nextn_predict_layers in its config, e.g. "
                f"deepseek-v3); {model.name} has none: use method: draft with a draft_model"
            )
        whole = cost_model(scenario.model, hw, eng, scenario.base_dir)
        draft = OneLayerDraft(whole, model.num_layers)
    return SpeculativeCostModel(target, draft, spec.num_speculative_tokens, spec.acceptance_rate)


def _replica_config(group: GroupSettings, plan: MemoryPlan, kv_bytes_per_token: float):
    hw, eng = group.hardware, group.engine
    gpu = load_gpu(hw.gpu)
    # Without a host link (unified memory, CPU-only devices) preemption cannot swap.
    host = load_link(gpu.host_link) if gpu.host_link not in ("", "none") else None
    return ReplicaConfig(
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
        reserve_whole_sequence=eng.kv_admission == "whole_sequence",
        data_parallel_ranks=hw.expert_parallel,
    )


def _kv_link(scenario: Scenario, group: GroupSettings) -> KvLink | None:
    """The link a prefill pool ships KV caches over (None for any other group)."""
    if group.role != "prefill":
        return None
    name = scenario.disaggregated.kv_link
    name = name or load_gpu(group.hardware.gpu).interconnect or DEFAULT_KV_LINK
    link = load_link(name)
    # each GPU of the prefill replica sends its shard of the KV over its own NIC
    return KvLink(link.bandwidth_bytes_per_s * group.hardware.tensor_parallel, link.latency_s)


def _group(scenario: Scenario, group: GroupSettings) -> ReplicaGroup:
    hw, eng = group.hardware, group.engine
    model = load_model(scenario.model)
    try:
        plan = replica_memory_plan(scenario.model, hw, eng)
        if not plan.fits:
            raise UserError(f"{group.where}: {plan.explain()}")
        config = _replica_config(group, plan, model.kv_bytes_per_token(eng.kv_dtype))
        cost = cost_model(scenario.model, hw, eng, scenario.base_dir)
        if eng.speculative is not None and group.role != "prefill":
            cost = _speculative(scenario, group, cost)
        longest = max_model_len(model, eng)
    except UserError as exc:
        raise _under_group(exc, group.where) from None
    seqs = max(1, min(eng.max_num_seqs, plan.max_kv_tokens // CAPACITY_CONTEXT_TOKENS))
    full_batch = StepShape(
        decode_seqs=seqs, logits_rows=seqs, decode_context_tokens=seqs * CAPACITY_CONTEXT_TOKENS
    )
    return ReplicaGroup(
        name=group.name,
        role=group.role,
        count=group.count,
        cost_model=cost,
        memory=plan,
        policy=eng.batching,
        config=config,
        max_model_len=longest,
        capacity=seqs / cost.step_time_s(full_batch),
        kv_link=_kv_link(scenario, group),
    )


def _routing(scenario: Scenario) -> Routing:
    routing = scenario.routing
    options = {}
    if routing.policy == "length_aware":
        options = {
            "long_prompt_tokens": routing.long_prompt_tokens,
            "long_replica_fraction": routing.long_replica_fraction,
        }
    return Routing(routing.policy, options, seed=scenario.workload.seed)


def _autoscaling(hw: HardwareConfig) -> Autoscaling | None:
    a = hw.autoscale
    if a is None:
        return None
    policy = AutoscalePolicy(
        a.min_replicas,
        a.max_replicas,
        a.metric,
        a.target,
        a.scale_up_delay_s,
        a.scale_down_after_s,
        a.scale_down_fraction,
        a.evaluate_every_s,
    )
    return Autoscaling(hw.replicas, policy)


def _decode_limit_at_arrival(groups: tuple[ReplicaGroup, ...]) -> tuple[ReplicaGroup, ...]:
    """``groups`` with the prefill pool refusing what the decode pool's ``max_model_len``
    would: a request is checked where it arrives (the prefill pool), but the decode pool
    holds it to its last token, so it must fit both pools' limits."""
    decode = [g.max_model_len for g in groups if g.role == "decode"]
    if not decode:
        return groups
    limit = min(decode)
    return tuple(
        dataclasses.replace(g, max_model_len=min(g.max_model_len, limit))
        if g.role == "prefill"
        else g
        for g in groups
    )


def compile_scenario(scenario: Scenario) -> Deployment:
    """The deployment of ``scenario``: every group priced and planned (a group whose model
    does not fit in memory is a ``UserError`` naming the group)."""
    groups = tuple(_group(scenario, group) for group in scenario.groups)
    groups = _decode_limit_at_arrival(groups)
    return Deployment(groups, _routing(scenario), _autoscaling(scenario.hardware))
