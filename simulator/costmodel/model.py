"""Roofline cost of one forward step: per-op ``max(compute, memory) + kernel latency``.

A step's time is the sum over its ops of ``max(flops / achievable_flops, bytes /
achievable_bw) + kernel_latency``, plus tensor-parallel communication, plus a fixed per-step
overhead. Without CUDA graphs the host must launch every kernel, so a step lasts at least
its launch time. The efficiency factors are the fields of ``CostParams``.

``step_time_s`` and ``decode_run_s`` are the fast paths the engine calls every simulated
step: the parts that depend only on the token count are cached, attention is a few
multiplications. ``price`` returns the same total with a per-op breakdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.costmodel.comm import allgather_s, allreduce_s
from simulator.costmodel.layers import (
    EIGHT_BIT_OR_LESS,
    ElementwiseOp,
    GemmOp,
    LayerPlan,
    build_layer_plan,
)
from simulator.costmodel.params import CostParams
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec

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
    the fly, as vLLM and TensorRT-LLM do on Hopper); other formats compute in the wider of
    weights and activations (int4/fp4 weights without native support: W4A16 in bf16)."""
    if weight_dtype in ("fp8", "int8", "fp4") and weight_dtype in gpu.peak_flops:
        return weight_dtype
    return wider_dtype


def _bound(compute_s: float, memory_s: float, latency_s: float) -> str:
    if latency_s > max(compute_s, memory_s):
        return "latency"
    return "compute" if compute_s >= memory_s else "memory"


class CostModel:
    """Prices forward steps of ``model`` on ``gpu`` (one replica of ``tensor_parallel`` GPUs)."""

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
    ) -> None:
        """``cuda_graphs``, when given, overrides ``params.cuda_graphs`` (an engine setting)."""
        if tensor_parallel < 1:
            raise UserError(f"tensor_parallel: {tensor_parallel} must be >= 1")
        if model.num_attention_heads % tensor_parallel:
            raise UserError(
                f"tensor_parallel: {tensor_parallel} does not divide "
                f"{model.num_attention_heads} attention heads of {model.name}"
            )
        dtypes = {}
        for field, value in (
            ("weight_dtype", weight_dtype),
            ("kv_dtype", kv_dtype),
            ("activation_dtype", activation_dtype),
        ):
            try:
                dtypes[field] = canonical_dtype(value)
            except ValueError as exc:
                raise UserError(f"{field}: {exc}") from None
        self.model, self.gpu = model, gpu
        self.params = params if params is not None else CostParams.defaults()
        if cuda_graphs is not None and cuda_graphs != self.params.cuda_graphs:
            self.params = self.params.replace(cuda_graphs=bool(cuda_graphs))
        self.tensor_parallel = tensor_parallel
        self.weight_dtype = dtypes["weight_dtype"]
        self.kv_dtype = dtypes["kv_dtype"]
        self.activation_dtype = dtypes["activation_dtype"]
        self.link = self._resolve_link(link)
        self.plan: LayerPlan = build_layer_plan(model, tensor_parallel=tensor_parallel, **dtypes)
        self._precompute()

    # --- setup -----------------------------------------------------------------------------
    def _resolve_link(self, link: LinkSpec | None) -> LinkSpec | None:
        if link is not None or self.tensor_parallel == 1:
            return link
        name = self.gpu.interconnect
        if name:
            try:
                from simulator.specs.catalog import load_link  # optional catalog

                return load_link(name)
            except (ImportError, KeyError, UserError):
                pass
        raise UserError(
            f"tensor_parallel: {self.tensor_parallel} needs a link between the GPUs; "
            f"{self.gpu.name} names no known interconnect ({name!r}); pass a link"
        )

    def _precompute(self) -> None:
        p, plan, gpu = self.params, self.plan, self.gpu
        self.gemm_dtype = gemm_dtype(self.weight_dtype, plan.compute_dtype, gpu)
        eff = p.gemm_efficiency_8bit if self.gemm_dtype in EIGHT_BIT_OR_LESS else p.gemm_efficiency
        self._gemm_flops_s = gpu.flops_for(self.gemm_dtype) * eff
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
        self._window_frac = model.sliding_window_layers / layers if windowed else 0.0
        self._attn_lat_total = layers * self._attn_lat
        self._overhead = p.step_overhead_s
        self._graphs = p.cuda_graphs
        self._launch = p.eager_launch_overhead_s
        # Kernels per step without attention and LM head (for the eager launch bound).
        self._base_kernels = layers * plan.small_kernels_per_layer + 2
        self._base_kernels += layers * plan.allreduces_per_layer
        self._token_cache: dict[int, float] = {}
        self._logits_cache: dict[int, float] = {}

    # --- op pricing (shared by the fast path and the breakdown) ----------------------------
    def _gemm(self, op: GemmOp, tokens: int) -> OpCost:
        per_layer_flops = op.flops_per_token * tokens
        per_layer_bytes = op.weight_bytes_touched(tokens) + op.act_bytes_per_token * tokens
        compute = per_layer_flops * (tokens + self.params.gemm_pad_tokens) / tokens
        compute_s = compute / self._gemm_flops_s
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

    def _token_ops(self, tokens: int) -> list[OpCost]:
        """Ops whose cost depends only on the number of tokens in the step."""
        ops = [self._gemm(op, tokens) for op in self.plan.gemms]
        ops += [self._elementwise(op, tokens) for op in self.plan.elementwise]
        if self.plan.allreduces_per_layer:
            msg = self.plan.allreduce_bytes_per_token * tokens
            n = self.plan.num_layers * self.plan.allreduces_per_layer
            per = allreduce_s(msg, self.tensor_parallel, self.link, self.params)
            ops.append(OpCost("tp_allreduce", 0.0, n * msg, n * per, "communication"))
        return ops

    def _logits_ops(self, rows: int) -> list[OpCost]:
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

    # --- public API ------------------------------------------------------------------------
    def step_time_s(self, shape: StepShape) -> float:
        """Duration (s) of one step of ``shape``; equals ``price(shape).total_s``."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        if tokens <= 0:
            return 0.0
        cache = self._token_cache
        gpu_s = cache[tokens] if tokens in cache else self._token_time(tokens)
        rows = shape.logits_rows
        if rows:
            lc = self._logits_cache
            gpu_s += lc[rows] if rows in lc else self._logits_time(rows)
        if shape.prefill_tokens:
            c, m, lat = self._prefill_attention(shape)
            gpu_s += (c if c > m else m) + lat
        if shape.decode_seqs:
            c, m, lat = self._decode_attention(shape.decode_seqs, shape.decode_context_tokens)
            gpu_s += (c if c > m else m) + lat
        if not self._graphs:
            host_s = self._kernels(shape) * self._launch
            if host_s > gpu_s:
                gpu_s = host_s
        return gpu_s + self._overhead

    def price(self, shape: StepShape) -> StepCost:
        """Duration of one step with its per-op breakdown (ops summed over layers)."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        if tokens <= 0:
            return StepCost(0.0, ())
        ops = self._token_ops(tokens)
        if shape.logits_rows:
            ops += self._logits_ops(shape.logits_rows)
        layers = self.plan.num_layers
        if shape.prefill_tokens:
            c, m, lat = self._prefill_attention(shape)
            pairs, kv = self._prefill_work(shape)
            flops = pairs * self._attn_flops_per_pair * layers
            nbytes = layers * (kv * self._kv_bpt + shape.prefill_tokens * self._q_bpt)
            ops.append(
                OpCost("attention_prefill", flops, nbytes, max(c, m) + lat, _bound(c, m, lat))
            )
        if shape.decode_seqs:
            seqs = shape.decode_seqs
            read = self._decode_read(seqs, shape.decode_context_tokens)
            c, m, lat = self._decode_attention(seqs, shape.decode_context_tokens)
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
        ops.append(OpCost("step_overhead", 0.0, 0.0, self._overhead, "overhead"))
        return StepCost(math.fsum(op.time_s for op in ops), tuple(ops))

    def decode_run_s(self, decode_seqs: int, context_tokens: int, n_steps: int) -> np.ndarray:
        """Durations (s) of ``n_steps`` successive pure-decode steps of a fixed batch.

        Before step i the summed context is ``context_tokens + i * decode_seqs``."""
        if n_steps <= 0 or decode_seqs <= 0:
            return np.zeros(max(n_steps, 0))
        base = self._token_time(decode_seqs) + self._logits_time(decode_seqs)
        context = context_tokens + decode_seqs * np.arange(n_steps, dtype=np.float64)
        c, m, lat = self._decode_attention(decode_seqs, context)
        gpu_s = base + (np.maximum(c, m) + lat)
        if not self._graphs:
            shape = StepShape(decode_seqs=decode_seqs, logits_rows=decode_seqs)
            gpu_s = np.maximum(gpu_s, self._kernels(shape) * self._launch)
        return gpu_s + self._overhead

    def weight_bytes_per_gpu(self) -> float:
        """Bytes of weights streamed by one GPU for a dense step (all layers and LM head)."""
        plan = self.plan
        total = sum(op.weight_bytes * op.layers * max(op.experts, 1) for op in plan.gemms)
        return total + plan.lm_head.weight_bytes
