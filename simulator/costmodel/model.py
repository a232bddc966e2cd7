"""Roofline cost of one forward step: per-op ``max(compute, memory) + kernel latency``.

A step's time is the sum over its ops of ``max(flops / achievable_flops, bytes /
achievable_bw) + kernel_latency``, plus tensor-parallel communication, plus a fixed per-step
overhead. Without CUDA graphs the host must launch every kernel, so a step lasts at least
its launch time. The efficiency factors are the fields of ``CostParams``.

Parallelism (see ``simulator/specs/topology.py`` for where the GPUs sit):

* Tensor parallel: two all-reduces of the hidden rows per layer (ring or tree, over the
  slowest link the TP group crosses), and an all-gather of the logits.
* Expert parallel (MoE): ``expert_parallel`` groups of ``tensor_parallel`` GPUs per stage.
  Attention, dense MLPs and shared experts run data-parallel (each group takes 1/ep of the
  step's sequences); routed experts are split over the groups, each receiving its share of
  the ``tokens × top_k`` assignments times ``expert_load_imbalance``. Each MoE layer adds a
  dispatch and a combine all-to-all.
* Pipeline parallel: each stage runs ⌈layers / stages⌉ layers (the last one also the LM
  head). The step's sequences are split into ``m = min(pipeline_microbatches, sequences)``
  micro-batches that follow each other through the stages. In steady state (the engine
  keeps all micro-batches in flight, as vLLM's virtual engines do) a sequence gets its next
  token once per round of ``max(m · t_stage, stages · (t_stage + t_p2p))``, where
  ``t_stage`` prices one micro-batch on one stage: with ``m >= stages`` the stages overlap
  fully; with fewer micro-batches (batch 1) the round pays the bubble, the idle stages'
  share ``(stages - m) · t_stage``, and every hand-off between stages.
* Offload (``OffloadPlan``): streamed layers cost ``max(gpu time, bytes / host link)``;
  CPU layers add their host time and the activation hand-off.

``step_time_s`` and ``decode_run_s`` are the fast paths the engine calls every simulated
step: the parts that depend only on the token count are cached, attention is a few
multiplications. ``price`` returns the same total with a per-op breakdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.costmodel.comm import allgather_s, allreduce_s, alltoall_s, p2p_s
from simulator.costmodel.layers import (
    EIGHT_BIT_OR_LESS,
    ElementwiseOp,
    GemmOp,
    LayerPlan,
    build_layer_plan,
    compute_dtype,
)
from simulator.costmodel.offload import OffloadPlan
from simulator.costmodel.params import CostParams
from simulator.costmodel.quant import (
    WeightFormats,
    check_kv_dtype,
    resolve_weight_formats,
    weight_bytes_for_layers,
)
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.dtypes import NATIVE_COMPUTE, canonical_dtype, dtype_bytes
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec
from simulator.specs.topology import NodeSpec, ReplicaPlacement

BOUNDS = ("compute", "memory", "latency", "communication", "overhead")


@dataclass(frozen=True)
class OpCost:
    """One op of a step, summed over the layers that run it (per GPU)."""

    name: str
    flops: float
    bytes: float
    time_s: float
    bound: str  # one of BOUNDS: what sets this op's time

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "flops": self.flops,
            "bytes": self.bytes,
            "ms": self.time_s * 1e3,
            "bound": self.bound,
        }


@dataclass(frozen=True)
class StepCost:
    """Duration of one step and the ops it is made of."""

    total_s: float
    ops: tuple[OpCost, ...]

    def to_dict(self) -> dict:
        return {"step_ms": self.total_s * 1e3, "ops": [op.to_dict() for op in self.ops]}


def gemm_dtype(weight_dtype: str, wider_dtype: str, gpu: GpuSpec) -> str:
    """Tensor-core format the GEMMs run in.

    fp8/int8 weights on a GPU with a native rate for them run W8A8 (activations quantised on
    the fly, as vLLM and TensorRT-LLM do on Hopper); NVFP4/MXFP4 run in fp4 where the GPU
    has it (Blackwell); other formats compute in the wider of weights and activations
    (int4 AWQ/GPTQ and GGUF: W4A16 in bf16, fp8 on an A100: W8A16)."""
    native = NATIVE_COMPUTE.get(weight_dtype)
    if native is not None and native in gpu.peak_flops:
        return native
    return wider_dtype


def split_shape(shape: StepShape, parts: int) -> StepShape:
    """One of ``parts`` equal slices of a step (sums divided, counts rounded up)."""
    if parts <= 1:
        return shape
    c = math.ceil
    return StepShape(
        prefill_tokens=c(shape.prefill_tokens / parts),
        prefill_seqs=c(shape.prefill_seqs / parts),
        prefill_attn_pairs=shape.prefill_attn_pairs / parts,
        prefill_kv_tokens=c(shape.prefill_kv_tokens / parts),
        decode_seqs=c(shape.decode_seqs / parts),
        decode_context_tokens=c(shape.decode_context_tokens / parts),
        logits_rows=c(shape.logits_rows / parts),
    )


def _bound(compute_s: float, memory_s: float, latency_s: float) -> str:
    if latency_s > max(compute_s, memory_s):
        return "latency"
    return "compute" if compute_s >= memory_s else "memory"


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
    ) -> None:
        """``cuda_graphs``, when given, overrides ``params.cuda_graphs`` (an engine setting).

        ``link`` joins the GPUs when no ``placement`` says where they sit (default: the
        GPU's own interconnect). ``attention_dtype``/``lm_head_dtype`` override the parts a
        quantised checkpoint keeps in bf16 (``quant.resolve_weight_formats``).
        ``pipeline_microbatches``: micro-batches per step (default: one per stage).
        ``layers``/``lm_head``: price only part of the model (offloaded CPU layers)."""
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
        self.placement = self._resolve_placement(placement, link)
        self.link = self.placement.tp_link()
        self._ep_link = self.placement.ep_link()
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
    def _resolve_placement(
        self, placement: ReplicaPlacement | None, link: LinkSpec | None
    ) -> ReplicaPlacement:
        tp, pp, ep = self.tensor_parallel, self.pipeline_parallel, self.expert_parallel
        if placement is not None:
            if (placement.tensor_parallel, placement.pipeline_parallel) != (tp, pp) or (
                placement.expert_parallel != ep
            ):
                raise UserError(
                    f"placement: TP{placement.tensor_parallel} PP{placement.pipeline_parallel} "
                    f"EP{placement.expert_parallel} does not match TP{tp} PP{pp} EP{ep}"
                )
            multi = placement.gpus > 1
            if multi and placement.tp_link() is None and placement.pp_link() is None:
                raise UserError("placement: a replica of several GPUs needs a link between them")
            return placement
        gpus = tp * pp * ep
        if link is None and gpus > 1:
            link = self._gpu_link()
        return ReplicaPlacement(tp, pp, ep, NodeSpec(gpus_per_node=gpus, intra_link=link))

    def _gpu_link(self) -> LinkSpec:
        name = self.gpu.interconnect
        if name:
            try:
                from simulator.specs.catalog import load_link  # optional catalog

                return load_link(name)
            except (ImportError, KeyError, UserError):
                pass
        gpus = self.tensor_parallel * self.pipeline_parallel * self.expert_parallel
        raise UserError(
            f"tensor_parallel: a replica of {gpus} GPUs needs a link between the GPUs; "
            f"{self.gpu.name} names no known interconnect ({name!r}); pass a link"
        )

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
        host_params = p.replace(
            memory_bw_efficiency=p.host_memory_bw_efficiency,
            attention_decode_bw_efficiency=p.host_memory_bw_efficiency,
            gemm_efficiency=p.host_gemm_efficiency,
            gemm_efficiency_8bit=p.host_gemm_efficiency,
            attention_prefill_efficiency=p.host_gemm_efficiency,
            step_overhead_s=0.0,
            cuda_graphs=True,
        )
        self._host_model = CostModel(
            self.model,
            offload.host,
            params=host_params,
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

    def _precompute(self) -> None:
        p, plan, gpu = self.params, self.plan, self.gpu
        mlp_op = next((op for op in plan.gemms if "down" in op.name), plan.gemms[0])
        self.gemm_dtype = gemm_dtype(
            mlp_op.dtype, compute_dtype(mlp_op.dtype, self.activation_dtype), gpu
        )
        self._rates = {op.name: self._gemm_rate(op) for op in (*plan.gemms, plan.lm_head)}
        self._gemv_s_per_flop = 1.0 / (gpu.flops_for("fp32") * p.gemm_efficiency)
        self._bw = gpu.memory_bw_bytes_per_s * p.memory_bw_efficiency
        self._lat = p.kernel_latency_s
        self._attn_lat = p.kernel_latency_s + p.attention_kernel_latency_s
        attn_flops_s = gpu.flops_for(self.activation_dtype) * p.attention_prefill_efficiency
        attn_bw = gpu.memory_bw_bytes_per_s * p.attention_decode_bw_efficiency
        # Per layer: 2 FLOPs per multiply-add in QK^T and in PV, per head.
        self._attn_flops_per_pair = 2.0 * plan.heads_per_gpu * (plan.qk_head_dim + plan.v_head_dim)
        self._decode_flops_per_tok = (
            2.0 * plan.heads_per_gpu * (plan.decode_qk_head_dim + plan.decode_v_head_dim)
        )
        self._kv_bpt = plan.kv_bytes_per_token_per_layer
        self._q_bpt = plan.q_bytes_per_token
        # Seconds per unit, with the layer count folded in (hot path multiplies once).
        layers = plan.num_layers
        self._attn_c_per_pair = layers * self._attn_flops_per_pair / attn_flops_s
        self._prefill_m_per_kv = layers * self._kv_bpt / self._bw
        self._prefill_m_per_q = layers * self._q_bpt / self._bw
        self._decode_c_per_tok = layers * self._decode_flops_per_tok / attn_flops_s
        self._decode_m_per_tok = layers * self._kv_bpt / attn_bw
        self._decode_m_per_seq = (
            layers * self._q_bpt / attn_bw + p.attention_decode_pad_tokens * self._decode_m_per_tok
        )
        self._elementwise_factor = p.elementwise_traffic_factor
        # Sliding-window layers attend to at most ``window`` keys (gpt-oss: half the layers).
        model = self.model
        windowed = model.sliding_window > 0 and model.sliding_window_layers > 0
        self._window = model.sliding_window if windowed else 0
        self._window_frac = model.sliding_window_layers / model.num_layers if windowed else 0.0
        self._attn_lat_total = layers * self._attn_lat
        self._overhead = p.step_overhead_s
        self._graphs = p.cuda_graphs
        self._launch = p.eager_launch_overhead_s
        # Kernels per step without attention and LM head (for the eager launch bound).
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
        memory_s = per_layer_bytes / self._bw
        time_s = max(compute_s, memory_s) + self._lat
        bound = _bound(compute_s, memory_s, self._lat)
        n = op.layers
        return OpCost(op.name, n * per_layer_flops, n * per_layer_bytes, n * time_s, bound)

    def _elementwise(self, op: ElementwiseOp, tokens: int) -> OpCost:
        per_layer_bytes = (op.bytes_per_token * tokens + op.fixed_bytes) * self._elementwise_factor
        memory_s = per_layer_bytes / self._bw
        n = op.layers
        bound = _bound(0.0, memory_s, self._lat)
        return OpCost(op.name, 0.0, n * per_layer_bytes, n * (memory_s + self._lat), bound)

    def _local_tokens(self, tokens: int) -> int:
        """Tokens one expert group's attention and dense layers see (data-parallel)."""
        return -(-tokens // self._ep) if self._ep > 1 else tokens

    def _token_ops(self, tokens: int) -> list[OpCost]:
        """Ops whose cost depends only on the number of tokens in the step (per stage)."""
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
            per = alltoall_s(dispatch, gpus, self._ep_link, self.params)
            per += alltoall_s(combine, gpus, self._ep_link, self.params)
            n = self._moe_layers
            nbytes = n * (dispatch + combine)
            ops.append(OpCost("ep_alltoall", 0.0, nbytes, n * per, "communication"))
        return ops

    def _logits_ops(self, rows: int) -> list[OpCost]:
        if not self.plan.lm_head.layers:
            return []
        rows = self._local_tokens(rows)
        ops = [self._gemm(self.plan.lm_head, rows)]
        if self.tensor_parallel > 1:
            gathered = rows * self.model.vocab_size * self.plan.activation_bytes
            t = allgather_s(gathered, self.tensor_parallel, self.link, self.params)
            ops.append(OpCost("logits_gather", 0.0, gathered, t, "communication"))
        return ops

    def _token_time(self, tokens: int) -> float:
        t = self._token_cache.get(tokens)
        if t is None:
            t = math.fsum(op.time_s for op in self._token_ops(tokens))
            self._token_cache[tokens] = t
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

    def _prefill_work(self, shape: StepShape) -> tuple[float, float]:
        """Query-key pairs and KV tokens read by prefill attention, averaged over layers.

        Sliding-window layers see at most ``window`` keys per query (per-chunk averages)."""
        pairs, kv = shape.prefill_attn_pairs, float(shape.prefill_kv_tokens)
        if self._window:
            f, w = self._window_frac, self._window
            pairs = (1 - f) * pairs + f * min(pairs, shape.prefill_tokens * w)
            kv = (1 - f) * kv + f * min(kv, shape.prefill_tokens + shape.prefill_seqs * w)
        return pairs, kv

    def _decode_read(self, seqs: int, context):
        """KV tokens read by decode attention, averaged over layers (scalar or array)."""
        read = context + seqs
        if self._window:
            f, capped = self._window_frac, seqs * (self._window + 1)
            windowed = (
                np.minimum(read, capped) if isinstance(read, np.ndarray) else min(read, capped)
            )
            read = (1 - f) * read + f * windowed
        return read

    def _prefill_attention(self, shape: StepShape) -> tuple[float, float, float]:
        """(compute_s, memory_s, latency_s) of prefill attention over all layers."""
        pairs, kv = (
            self._prefill_work(shape)
            if self._window
            else (shape.prefill_attn_pairs, shape.prefill_kv_tokens)
        )
        compute_s = pairs * self._attn_c_per_pair
        memory_s = kv * self._prefill_m_per_kv + shape.prefill_tokens * self._prefill_m_per_q
        return compute_s, memory_s, self._attn_lat_total

    def _decode_attention(self, seqs: int, context) -> tuple[float, float, float]:
        """(compute_s, memory_s, latency_s) of decode attention over all layers.

        Each sequence reads its whole cache plus the token it just wrote, and pays a fixed
        ``attention_decode_pad_tokens`` worth of reading (last tile, query and output)."""
        read = self._decode_read(seqs, context) if self._window else context + seqs
        compute_s = read * self._decode_c_per_tok
        memory_s = read * self._decode_m_per_tok + seqs * self._decode_m_per_seq
        return compute_s, memory_s, self._attn_lat_total

    def _kernels(self, shape: StepShape) -> int:
        n = self._base_kernels
        layers = self.plan.num_layers
        n += layers * ((shape.prefill_tokens > 0) + (shape.decode_seqs > 0))
        return n + (shape.logits_rows > 0)

    def _stage_time(self, shape: StepShape) -> float:
        """GPU time (s) of one stage running ``shape`` (no per-step overhead)."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        cache = self._token_cache
        gpu_s = cache[tokens] if tokens in cache else self._token_time(tokens)
        rows = shape.logits_rows
        if rows:
            lc = self._logits_cache
            gpu_s += lc[rows] if rows in lc else self._logits_time(rows)
        attn = split_shape(shape, self._ep) if self._ep > 1 else shape
        if attn.prefill_tokens:
            c, m, lat = self._prefill_attention(attn)
            gpu_s += (c if c > m else m) + lat
        if attn.decode_seqs:
            c, m, lat = self._decode_attention(attn.decode_seqs, attn.decode_context_tokens)
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
        return max(m * t_stage, self._pp * (t_stage + t_p2p)) + self._overhead

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
            round_s = max(m * gpu_s, self._pp * (gpu_s + t_p2p))
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
        ops = self._token_ops(tokens)
        if shape.logits_rows:
            ops += self._logits_ops(shape.logits_rows)
        layers = self.plan.num_layers
        attn = split_shape(shape, self._ep) if self._ep > 1 else shape
        if attn.prefill_tokens:
            c, m, lat = self._prefill_attention(attn)
            pairs, kv = self._prefill_work(attn)
            flops = pairs * self._attn_flops_per_pair * layers
            nbytes = layers * (kv * self._kv_bpt + attn.prefill_tokens * self._q_bpt)
            ops.append(
                OpCost("attention_prefill", flops, nbytes, max(c, m) + lat, _bound(c, m, lat))
            )
        if attn.decode_seqs:
            seqs = attn.decode_seqs
            read = self._decode_read(seqs, attn.decode_context_tokens)
            c, m, lat = self._decode_attention(seqs, attn.decode_context_tokens)
            flops = read * self._decode_flops_per_tok * layers
            nbytes = layers * (read * self._kv_bpt + seqs * self._q_bpt)
            ops.append(
                OpCost("attention_decode", flops, nbytes, max(c, m) + lat, _bound(c, m, lat))
            )
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
        if self.offload is not None and self._host_model is not None:
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
        parts = m * self._ep
        seqs = -(-decode_seqs // parts)
        stage_tokens = -(-decode_seqs // m)
        base = self._token_time(stage_tokens) + self._logits_time(stage_tokens)
        context = (context_tokens + decode_seqs * np.arange(n_steps, dtype=np.float64)) / parts
        c, mem, lat = self._decode_attention(seqs, np.ceil(context))
        gpu_s = base + (np.maximum(c, mem) + lat)
        if not self._graphs:
            shape = StepShape(decode_seqs=stage_tokens, logits_rows=stage_tokens)
            gpu_s = np.maximum(gpu_s, self._kernels(shape) * self._launch)
        if self._pp > 1:
            t_p2p = self._p2p_time(stage_tokens)
            gpu_s = np.maximum(m * gpu_s, self._pp * (gpu_s + t_p2p))
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
