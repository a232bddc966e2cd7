"""Roofline cost of one forward step: per-op ``max(compute, memory) + kernel latency``.

A step's time is the sum over its ops of ``max(flops / achievable_flops, bytes /
achievable_bw) + kernel_latency``, plus tensor-parallel communication, plus a fixed per-step
overhead. Without CUDA graphs the host must launch every kernel, so a step lasts at least
its launch time. The efficiency factors are the fields of ``CostParams``.

Parallelism, placement and offload are described in ``parallel.py`` and ``offload.py``.

``step_time_s`` and ``decode_run_s`` are the fast paths the engine calls every simulated
step: the parts that depend only on the token count are cached, attention is a few
multiplications. ``price`` returns the same total with a per-op breakdown.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.costmodel.attention import AttentionCost
from simulator.costmodel.comm import (
    allgather_s,
    allreduce_s,
    alltoall_across_nodes_s,
    alltoall_s,
    expected_remote_nodes,
    p2p_s,
)
from simulator.costmodel.costs import (
    OpCost,
    StepCost,
    bound_of,
    ep_group_shape,
    gemm_dtype,
    split_shape,
)
from simulator.costmodel.ggml import ggml_format_speed
from simulator.costmodel.layers import (
    EIGHT_BIT_OR_LESS,
    ElementwiseOp,
    GemmOp,
    LayerPlan,
    build_layer_plan,
    compute_dtype,
)
from simulator.costmodel.moe import GroupedGemmCurve, grouped_expert_cost
from simulator.costmodel.offload import OffloadPlan, host_params
from simulator.costmodel.parallel import pipeline_round_s, resolve_placement
from simulator.costmodel.params import CostParams
from simulator.costmodel.quant import (
    WeightFormats,
    check_kv_dtype,
    resolve_weight_formats,
    weight_bytes_for_layers,
)
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.dtypes import NATIVE_COMPUTE, canonical_dtype, dtype_bytes, is_gguf
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec
from simulator.specs.topology import ReplicaPlacement


class CostModel:
    """Prices forward steps of ``model`` on ``gpu``: one replica of ``tensor_parallel ×
    expert_parallel × pipeline_parallel`` GPUs (the engine sees it as one server)."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        *,
        params: CostParams | None = None,
        tensor_parallel: int = 1,
        link: LinkSpec | None = None,
        weight_dtype: str = "bf16",
        kv_dtype: str = "bf16",
        activation_dtype: str = "bf16",
        cuda_graphs: bool | None = None,
        pipeline_parallel: int = 1,
        expert_parallel: int = 1,
        placement: ReplicaPlacement | None = None,
        attention_dtype: str | None = None,
        lm_head_dtype: str | None = None,
        pipeline_microbatches: int | None = None,
        offload: OffloadPlan | None = None,
        layers: int | None = None,
        lm_head: bool = True,
        moe_grouped_gemm: GroupedGemmCurve | None = None,
    ) -> None:
        """``cuda_graphs``, when given, overrides ``params.cuda_graphs`` (an engine setting).

        ``link`` joins the GPUs when no ``placement`` says where they sit (default: the
        GPU's own interconnect). ``attention_dtype``/``lm_head_dtype`` override the parts a
        quantised checkpoint keeps in bf16 (``quant.resolve_weight_formats``).
        ``pipeline_microbatches``: micro-batches per step (default: one per stage).
        ``layers``/``lm_head``: price only part of the model (offloaded CPU layers).
        ``moe_grouped_gemm``: measured grouped expert GEMM efficiency by tokens per expert
        (``costmodel.moe``); routed expert GEMMs of a format it covers are priced from it."""
        for name, value in (
            ("tensor_parallel", tensor_parallel),
            ("pipeline_parallel", pipeline_parallel),
            ("expert_parallel", expert_parallel),
        ):
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name}: {value!r} must be an integer >= 1")
        if model.num_attention_heads % tensor_parallel:
            raise UserError(
                f"tensor_parallel: {tensor_parallel} does not divide "
                f"{model.num_attention_heads} attention heads of {model.name}"
            )
        if pipeline_parallel > model.num_layers:
            raise UserError(
                f"pipeline_parallel: {pipeline_parallel} exceeds the {model.num_layers} "
                f"layers of {model.name}"
            )
        if expert_parallel > 1 and not model.is_moe:
            raise UserError(
                f"expert_parallel: {expert_parallel} needs a mixture-of-experts model; "
                f"{model.name} is dense"
            )
        if expert_parallel > max(model.num_experts, 1):
            raise UserError(
                f"expert_parallel: {expert_parallel} exceeds the {model.num_experts} experts "
                f"of {model.name}"
            )
        if offload is not None and (pipeline_parallel > 1 or expert_parallel > 1):
            raise UserError("offload: not supported together with pipeline or expert parallelism")
        dtypes = {}
        for field, value in (
            ("weight_dtype", weight_dtype),
            ("activation_dtype", activation_dtype),
        ):
            try:
                dtypes[field] = canonical_dtype(value)
            except ValueError as exc:
                raise UserError(f"{field}: {exc}") from None
        dtypes["kv_dtype"] = check_kv_dtype(kv_dtype)
        self.model, self.gpu = model, gpu
        self.moe_grouped_gemm = moe_grouped_gemm
        self.params = params if params is not None else CostParams.defaults()
        if cuda_graphs is not None and cuda_graphs != self.params.cuda_graphs:
            self.params = self.params.replace(cuda_graphs=bool(cuda_graphs))
        self.tensor_parallel = tensor_parallel
        self.pipeline_parallel = pipeline_parallel
        self.expert_parallel = expert_parallel
        self.weight_dtype = dtypes["weight_dtype"]
        self.kv_dtype = dtypes["kv_dtype"]
        self.activation_dtype = dtypes["activation_dtype"]
        self.formats: WeightFormats = resolve_weight_formats(
            self.weight_dtype, attention_dtype, lm_head_dtype
        )
        self.placement = resolve_placement(
            gpu, tensor_parallel, pipeline_parallel, expert_parallel, placement, link
        )
        self.link = self.placement.tp_link()
        self._ep_link = self.placement.ep_link()
        # Expert-parallel groups spread over nodes: expected remote nodes per token, and
        # the copies then forwarded inside a node (all top-k, a share of them local).
        self._ep_nodes = 1
        if expert_parallel > 1 and model.is_moe and self.placement.crosses_nodes("ep"):
            per_node = self.placement.gpus_per_node
            self._ep_nodes = math.ceil(self.placement.gpus_per_stage / per_node)
            self._ep_remote_nodes = expected_remote_nodes(
                self._ep_nodes,
                model.experts_per_token,
                model.expert_groups,
                model.expert_groups_per_token,
            )
            self._ep_local_copies = model.experts_per_token * (per_node - 1) / per_node
        self._pp_link = self.placement.pp_link()
        self.microbatches = pipeline_microbatches or pipeline_parallel
        if self.microbatches < 1:
            raise UserError(f"pipeline_microbatches: {pipeline_microbatches} must be >= 1")
        self.offload = offload
        stage_layers = math.ceil(model.num_layers / pipeline_parallel)
        if layers is not None:
            stage_layers = layers
        self._host_model: CostModel | None = None
        self._stream_s = 0.0
        if offload is not None:
            stage_layers, lm_head = self._setup_offload(offload, stage_layers, lm_head)
        self.layers_on_device = stage_layers
        self.plan: LayerPlan = build_layer_plan(
            model,
            tensor_parallel=tensor_parallel,
            formats=self.formats,
            expert_parallel=expert_parallel,
            layers=stage_layers,
            lm_head=lm_head,
            **dtypes,
        )
        self._precompute()

    # --- setup -----------------------------------------------------------------------------
    def _setup_offload(
        self, offload: OffloadPlan, stage_layers: int, lm_head: bool
    ) -> tuple[int, bool]:
        """Price the layers that are not on the GPU; returns the GPU's (layers, lm_head)."""
        total = self.model.num_layers
        if not 0 <= offload.gpu_layers <= total:
            raise UserError(f"offload.gpu_layers: {offload.gpu_layers} must be within 0..{total}")
        off_layers = total - offload.gpu_layers
        if off_layers == 0:
            return total, lm_head
        if offload.host_link is None:
            raise UserError(f"offload: {self.gpu.name} has no host link to stream or hand off over")
        p = self.params
        if offload.mode == "stream":
            off_bytes = weight_bytes_for_layers(self.model, self.formats, off_layers)
            bw = offload.host_link.bandwidth_bytes_per_s * p.offload_bw_efficiency
            self._stream_s = off_bytes / bw
            return total, lm_head
        if offload.host is None:
            raise UserError("offload.host: running layers on the CPU needs a host device spec")
        self._host_model = CostModel(
            self.model,
            offload.host,
            params=host_params(p),
            weight_dtype=self.weight_dtype,
            kv_dtype=self.kv_dtype,
            activation_dtype=self.activation_dtype,
            attention_dtype=self.formats.attention,
            lm_head_dtype=self.formats.lm_head,
            layers=off_layers,
            lm_head=offload.gpu_layers == 0,
        )
        self._handoff_link = offload.host_link
        return offload.gpu_layers, offload.gpu_layers > 0

    def _gemm_rate(self, op: GemmOp) -> tuple[float, float]:
        """(seconds per FLOP at full efficiency, compute-time factor for dequantisation)."""
        p, gpu = self.params, self.gpu
        wider = compute_dtype(op.dtype, self.activation_dtype)
        dtype = gemm_dtype(op.dtype, wider, gpu)
        eff = p.gemm_efficiency_8bit if dtype in EIGHT_BIT_OR_LESS else p.gemm_efficiency
        narrower = dtype_bytes(op.dtype) < dtype_bytes(dtype) and op.dtype not in NATIVE_COMPUTE
        unsupported = op.dtype in NATIVE_COMPUTE and dtype != NATIVE_COMPUTE[op.dtype]
        factor = 1.0 + (p.dequant_overhead if narrower or unsupported else 0.0)
        return 1.0 / (gpu.flops_for(dtype) * eff), factor

    def _gguf_ceiling(self, op: GemmOp) -> tuple[float, float]:
        """(SM cycles per second ggml's kernels get for ``op``'s format, bytes per second its
        weights are read at): (0, bandwidth) unless its weights are GGUF on a GPU whose SM
        count and clock are known. The cycles carry the format's relative kernel speed."""
        p, gpu, bw = self.params, self.gpu, self._bw
        if not is_gguf(op.dtype) or gpu.sm_cycles_per_s <= 0:
            return 0.0, bw
        cycles = gpu.sm_cycles_per_s * ggml_format_speed(op.dtype)
        if p.gguf_gemv_bytes_per_sm_cycle > 0:
            bw = min(bw, cycles * p.gguf_gemv_bytes_per_sm_cycle)
        return cycles, bw

    def _precompute(self) -> None:
        p, plan, gpu = self.params, self.plan, self.gpu
        mlp_op = next((op for op in plan.gemms if "down" in op.name), plan.gemms[0])
        self.gemm_dtype = gemm_dtype(
            mlp_op.dtype, compute_dtype(mlp_op.dtype, self.activation_dtype), gpu
        )
        self._rates = {op.name: self._gemm_rate(op) for op in (*plan.gemms, plan.lm_head)}
        self._gemv_s_per_flop = 1.0 / (gpu.flops_for("fp32") * p.gemm_efficiency)
        self._bw = gpu.memory_bw_bytes_per_s * p.memory_bw_efficiency
        self._gguf_ceilings = {
            op.name: self._gguf_ceiling(op) for op in (*plan.gemms, plan.lm_head)
        }
        # ggml's matrix-vector kernels (MMVQ) up to gguf_gemv_max_tokens rows, its
        # matrix-multiply kernels (MMQ) above: FLOP per SM-cycle ceilings, 0 for none.
        self._gguf_gemv_max_rows = p.gguf_gemv_max_tokens
        self._gguf_gemv_flop = p.gguf_gemv_flop_per_sm_cycle
        self._gguf_gemm_flop = p.gguf_gemm_flop_per_sm_cycle
        self._gguf_gemm_pad = p.gguf_gemm_pad_tokens
        self._lat = p.kernel_latency_s
        self._attn = AttentionCost(self.model, plan, gpu, p, self.activation_dtype)
        self._elementwise_factor = p.elementwise_traffic_factor
        self._overhead = p.step_overhead_s
        self._graphs = p.cuda_graphs
        self._launch = p.eager_launch_overhead_s
        # Kernels per step without attention and LM head (for the eager launch bound).
        layers = plan.num_layers
        self._base_kernels = layers * plan.small_kernels_per_layer + 2
        self._base_kernels += layers * plan.allreduces_per_layer
        self._moe_layers = sum(op.layers for op in plan.gemms if op.name == "router")
        self._ep = self.expert_parallel
        if self._ep > 1:
            self._base_kernels += 2 * self._moe_layers
        self._imbalance = p.expert_load_imbalance
        expert_op = next((op for op in plan.gemms if op.is_expert), None)
        fp8_experts = expert_op is not None and gemm_dtype(
            expert_op.dtype, compute_dtype(expert_op.dtype, self.activation_dtype), gpu
        ) in ("fp8", "fp4")
        self._dispatch_bytes = 1.0 if fp8_experts else plan.activation_bytes
        self._pp = self.pipeline_parallel
        self._simple = self._pp == 1 and self._ep == 1 and self.offload is None
        self._token_cache: dict[int, float] = {}
        self._logits_cache: dict[int, float] = {}
        self._p2p_cache: dict[int, float] = {}

    # --- op pricing (shared by the fast path and the breakdown) ----------------------------
    def _gemm(self, op: GemmOp, tokens: int) -> OpCost:
        rows = tokens
        if op.is_expert:
            # Token-expert assignments landing on this GPU's expert group (busiest rank).
            rows = tokens * op.experts_per_token / op.experts * op.local_experts
            rows *= self._imbalance if self._ep > 1 else 1.0
            per_layer_flops = 2.0 * op.k * op.n * rows
        else:
            per_layer_flops = op.flops_per_token * tokens
        per_layer_bytes = op.weight_bytes_touched(tokens) + op.act_bytes_per_token * rows
        if op.is_expert and self.moe_grouped_gemm is not None:
            # Measured grouped GEMMs: the whole kernel's time by rows per active expert.
            grouped = grouped_expert_cost(
                self.moe_grouped_gemm, op, self, tokens, rows, per_layer_flops, per_layer_bytes
            )
            if grouped is not None:
                return grouped
        s_per_flop, dequant = self._rates[op.name]
        # Grouped expert GEMMs pad every touched expert's rows to a tile, not just the total.
        tiles = op.experts_touched(tokens) if op.is_expert else 1.0
        pad = (rows + self.params.gemm_pad_tokens * tiles) / rows if rows > 0 else 1.0
        compute_s = per_layer_flops * pad * s_per_flop * dequant
        # Few rows: kernels switch to a CUDA-core GEMV that pads nothing (matters on GPUs
        # with a low tensor-core peak, e.g. Apple silicon and consumer cards at batch 1).
        gemv_s = per_layer_flops * self._gemv_s_per_flop * dequant
        if gemv_s < compute_s:
            compute_s = gemv_s
        cycles, bw = self._gguf_ceilings[op.name]
        if cycles > 0 and rows > 0:
            if rows <= self._gguf_gemv_max_rows and self._gguf_gemv_flop > 0:
                compute_s = max(compute_s, per_layer_flops / (cycles * self._gguf_gemv_flop))
            elif self._gguf_gemm_flop > 0:
                # MMQ tiles: a pass over the weights unpacks them whatever the row count.
                padded = per_layer_flops * (rows + self._gguf_gemm_pad) / rows
                compute_s = max(compute_s, padded / (cycles * self._gguf_gemm_flop))
        memory_s = per_layer_bytes / bw
        time_s = max(compute_s, memory_s) + self._lat
        bound = bound_of(compute_s, memory_s, self._lat)
        n = op.layers
        return OpCost(op.name, n * per_layer_flops, n * per_layer_bytes, n * time_s, bound)

    def _elementwise(self, op: ElementwiseOp, tokens: int) -> OpCost:
        per_layer_bytes = (op.bytes_per_token * tokens + op.fixed_bytes) * self._elementwise_factor
        memory_s = per_layer_bytes / self._bw
        n = op.layers
        bound = bound_of(0.0, memory_s, self._lat)
        return OpCost(op.name, 0.0, n * per_layer_bytes, n * (memory_s + self._lat), bound)

    def _group_shape(self, shape: StepShape) -> StepShape:
        """The busiest expert group's part of a step: attention and dense layers run
        data-parallel over the groups, whole sequences to a group (``ep_group_shape``)."""
        return ep_group_shape(shape, self._ep) if self._ep > 1 else shape

    def _local_tokens(self, tokens: int) -> int:
        """Tokens one expert group's attention and dense layers see (data-parallel)."""
        return -(-tokens // self._ep) if self._ep > 1 else tokens

    def _token_ops(self, tokens: int, local: int | None = None) -> list[OpCost]:
        """Ops whose cost depends only on the number of tokens in the step (per stage):
        ``tokens`` reach the routed experts, ``local`` pass the busiest group's other layers
        (default: an even share)."""
        if local is None:
            local = self._local_tokens(tokens)
        ops = [self._gemm(op, tokens if op.is_expert else local) for op in self.plan.gemms]
        ops += [self._elementwise(op, local) for op in self.plan.elementwise]
        if self.plan.allreduces_per_layer:
            msg = self.plan.allreduce_bytes_per_token * local
            n = self.plan.num_layers * self.plan.allreduces_per_layer
            per = allreduce_s(msg, self.tensor_parallel, self.link, self.params)
            ops.append(OpCost("tp_allreduce", 0.0, n * msg, n * per, "communication"))
        if self._ep > 1 and self._moe_layers:
            # Dispatch and combine: each token's hidden row to its top-k experts and back.
            # Dispatch goes in the experts' GEMM format when it is fp8 (DeepSeek: "dispatch
            # in FP8, combine in BF16"); combine returns activations.
            rows = local * self.model.experts_per_token * self.model.hidden_size
            rows *= self._imbalance / self.tensor_parallel
            dispatch = rows * self._dispatch_bytes
            combine = rows * self.plan.activation_bytes
            gpus = self.placement.gpus_per_stage
            if self._ep_nodes > 1:
                # Across nodes, a row crosses the network once per remote node and is
                # forwarded inside the node (DeepEP; DeepSeek-V3 limits a token to 4 nodes).
                per_copy = local * self.model.hidden_size * self._imbalance / self.tensor_parallel
                per = sum(
                    alltoall_across_nodes_s(
                        per_copy * width,
                        self._ep_remote_nodes,
                        self._ep_local_copies,
                        self.placement.node.inter_link,
                        self.placement.node.intra_link,
                        self.params,
                    )
                    for width in (self._dispatch_bytes, self.plan.activation_bytes)
                )
            else:
                per = alltoall_s(dispatch, gpus, self._ep_link, self.params)
                per += alltoall_s(combine, gpus, self._ep_link, self.params)
            n = self._moe_layers
            nbytes = n * (dispatch + combine)
            ops.append(OpCost("ep_alltoall", 0.0, nbytes, n * per, "communication"))
        return ops

    def _logits_ops(self, rows: int) -> list[OpCost]:
        """The LM head over ``rows`` rows of one group, and the logits all-gather."""
        if not self.plan.lm_head.layers:
            return []
        ops = [self._gemm(self.plan.lm_head, rows)]
        if self.tensor_parallel > 1:
            gathered = rows * self.model.vocab_size * self.plan.activation_bytes
            t = allgather_s(gathered, self.tensor_parallel, self.link, self.params)
            ops.append(OpCost("logits_gather", 0.0, gathered, t, "communication"))
        return ops

    def _token_time(self, tokens: int, local: int | None = None) -> float:
        key = tokens if local is None else (tokens, local)
        t = self._token_cache.get(key)
        if t is None:
            t = math.fsum(op.time_s for op in self._token_ops(tokens, local))
            self._token_cache[key] = t
        return t

    def _logits_time(self, rows: int) -> float:
        t = self._logits_cache.get(rows)
        if t is None:
            t = math.fsum(op.time_s for op in self._logits_ops(rows)) if rows > 0 else 0.0
            self._logits_cache[rows] = t
        return t

    def _p2p_time(self, tokens: int) -> float:
        """One hand-off of ``tokens`` hidden rows between pipeline stages (seconds)."""
        t = self._p2p_cache.get(tokens)
        if t is None:
            msg = tokens * self.model.hidden_size * self.plan.activation_bytes
            t = p2p_s(msg / self.tensor_parallel, self._pp_link, self.params)
            self._p2p_cache[tokens] = t
        return t

    def _kernels(self, shape: StepShape) -> int:
        n = self._base_kernels
        layers = self.plan.num_layers
        n += layers * ((shape.prefill_tokens > 0) + (shape.decode_seqs > 0))
        return n + (shape.logits_rows > 0)

    def _stage_time(self, shape: StepShape) -> float:
        """GPU time (s) of one stage running ``shape`` (no per-step overhead)."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        if self._ep > 1:
            group = ep_group_shape(shape, self._ep)
            gpu_s = self._token_time(tokens, group.tokens)
        else:
            group = shape
            cache = self._token_cache
            gpu_s = cache[tokens] if tokens in cache else self._token_time(tokens)
        rows = group.logits_rows
        if rows:
            lc = self._logits_cache
            gpu_s += lc[rows] if rows in lc else self._logits_time(rows)
        if group.prefill_tokens:
            c, m, lat = self._attn.prefill(group)
            gpu_s += (c if c > m else m) + lat
        if group.decode_seqs:
            c, m, lat = self._attn.decode(group.decode_seqs, group.decode_context_tokens)
            gpu_s += (c if c > m else m) + lat
        if not self._graphs:
            host_s = self._kernels(shape) * self._launch
            if host_s > gpu_s:
                gpu_s = host_s
        return gpu_s

    def _offload_time(self, shape: StepShape, gpu_s: float) -> float:
        """Step time (s) with offloaded layers, given the GPU's own time ``gpu_s``."""
        if self._stream_s:
            return max(gpu_s, self._stream_s)
        host = self._host_model
        assert host is not None
        msg = shape.tokens * self.model.hidden_size * self.plan.activation_bytes
        handoff = 2.0 * self._handoff_link.transfer_s(msg) if self.offload.gpu_layers else 0.0
        return gpu_s + host._stage_time(shape) + handoff

    def _microbatches(self, shape: StepShape) -> int:
        seqs = shape.prefill_seqs + shape.decode_seqs
        return max(1, min(self.microbatches, seqs))

    # --- public API ------------------------------------------------------------------------
    def step_time_s(self, shape: StepShape) -> float:
        """Duration (s) of one step of ``shape``; equals ``price(shape).total_s``."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        if tokens <= 0:
            return 0.0
        if self._pp == 1:
            gpu_s = self._stage_time(shape)
            if self.offload is not None:
                gpu_s = self._offload_time(shape, gpu_s)
            return gpu_s + self._overhead
        m = self._microbatches(shape)
        micro = split_shape(shape, m)
        t_stage = self._stage_time(micro)
        t_p2p = self._p2p_time(micro.tokens)
        return pipeline_round_s(m, self._pp, t_stage, t_p2p) + self._overhead

    def price(self, shape: StepShape) -> StepCost:
        """Duration of one step with its per-op breakdown (ops summed over layers).

        With pipeline stages, the ops are those of one micro-batch on the heaviest stage;
        ``pipeline_rounds`` adds the rest of the round (other micro-batches, bubble and
        stage hand-offs)."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        if tokens <= 0:
            return StepCost(0.0, ())
        m = self._microbatches(shape) if self._pp > 1 else 1
        micro = split_shape(shape, m)
        ops = self._stage_ops(micro)
        gpu_s = math.fsum(op.time_s for op in ops)
        if self._pp > 1:
            t_p2p = self._p2p_time(micro.tokens)
            round_s = pipeline_round_s(m, self._pp, gpu_s, t_p2p)
            ops.append(OpCost("pipeline_rounds", 0.0, 0.0, round_s - gpu_s, "communication"))
        elif self.offload is not None:
            total = self._offload_time(shape, gpu_s)
            bound = "memory" if self._stream_s else "compute"
            name = "offload_stream" if self._stream_s else "offload_cpu_layers"
            ops.append(OpCost(name, 0.0, 0.0, total - gpu_s, bound))
        ops.append(OpCost("step_overhead", 0.0, 0.0, self._overhead, "overhead"))
        return StepCost(math.fsum(op.time_s for op in ops), tuple(ops))

    def _stage_ops(self, shape: StepShape) -> list[OpCost]:
        tokens = shape.prefill_tokens + shape.decode_seqs
        group = self._group_shape(shape)
        ops = self._token_ops(tokens, group.tokens)
        if group.logits_rows:
            ops += self._logits_ops(group.logits_rows)
        ops += self._attn.ops(group)
        gpu_s = math.fsum(op.time_s for op in ops)
        if not self._graphs:
            host_s = self._kernels(shape) * self._launch
            if host_s > gpu_s:
                ops.append(OpCost("host_launch", 0.0, 0.0, host_s - gpu_s, "overhead"))
        return ops

    def decode_run_s(self, decode_seqs: int, context_tokens: int, n_steps: int) -> np.ndarray:
        """Durations (s) of ``n_steps`` successive pure-decode steps of a fixed batch.

        Before step i the summed context is ``context_tokens + i * decode_seqs``."""
        if n_steps <= 0 or decode_seqs <= 0:
            return np.zeros(max(n_steps, 0))
        if self._simple:  # one GPU group, no stages, no offload: the engine's hot path
            base = self._token_time(decode_seqs) + self._logits_time(decode_seqs)
            context = context_tokens + decode_seqs * np.arange(n_steps, dtype=np.float64)
            c, mem, lat = self._attn.decode(decode_seqs, context)
            gpu_s = base + (np.maximum(c, mem) + lat)
            if not self._graphs:
                shape = StepShape(decode_seqs=decode_seqs, logits_rows=decode_seqs)
                gpu_s = np.maximum(gpu_s, self._kernels(shape) * self._launch)
            return gpu_s + self._overhead
        if self._host_model is not None:
            steps = [
                self.step_time_s(
                    StepShape(
                        decode_seqs=decode_seqs,
                        decode_context_tokens=context_tokens + i * decode_seqs,
                        logits_rows=decode_seqs,
                    )
                )
                for i in range(n_steps)
            ]
            return np.asarray(steps)
        m = max(1, min(self.microbatches, decode_seqs)) if self._pp > 1 else 1
        stage_tokens = -(-decode_seqs // m)
        group = -(-stage_tokens // self._ep)  # the busiest expert group's sequences
        base = self._token_time(stage_tokens, group if self._ep > 1 else None)
        base += self._logits_time(group)
        steps = context_tokens + decode_seqs * np.arange(n_steps, dtype=np.float64)
        context = np.ceil(steps / m) if m > 1 else steps
        if self._ep > 1:
            context = np.ceil(context * (group / stage_tokens))
        c, mem, lat = self._attn.decode(group, context)
        gpu_s = base + (np.maximum(c, mem) + lat)
        if not self._graphs:
            shape = StepShape(decode_seqs=stage_tokens, logits_rows=stage_tokens)
            gpu_s = np.maximum(gpu_s, self._kernels(shape) * self._launch)
        if self._pp > 1:
            t_p2p = self._p2p_time(stage_tokens)
            gpu_s = pipeline_round_s(m, self._pp, gpu_s, t_p2p)
        elif self._stream_s:
            gpu_s = np.maximum(gpu_s, self._stream_s)
        return gpu_s + self._overhead

    def weight_bytes_per_gpu(self) -> float:
        """Bytes of weights held by one GPU (its stage's layers and LM head; all experts)."""
        plan = self.plan
        total = sum(
            op.weight_bytes * op.layers * max(op.local_experts or op.experts, 1)
            for op in plan.gemms
        )
        return total + plan.lm_head.weight_bytes * plan.lm_head.layers

    def weight_bytes_per_token(self, tokens: int = 1) -> float:
        """Weight bytes one GPU reads in a step of ``tokens`` tokens (MoE: touched experts)."""
        plan = self.plan
        total = sum(op.weight_bytes_touched(tokens) * op.layers for op in plan.gemms)
        return total + plan.lm_head.weight_bytes * plan.lm_head.layers
