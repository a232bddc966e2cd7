"""Time of the GEMMs and elementwise kernels of a step, per op summed over its layers.

Two ways to price a GEMM of ``rows`` tokens:

* measured: the engine calibration's efficiency grid for the GEMM's compute dtype gives
  the achieved fraction of peak FLOP/s at (rows, n, k), kernel launch and tails included;
  expert GEMMs take the measured fused-MoE time of the model's own expert shape and layout
  where the calibration has it (``costmodel.fused_moe``; shared between the gate/up and
  down GEMMs by their weights), else its fused-MoE grid by tokens per expert, expert size
  and local experts, or, without an engine calibration, the reference calibration's
  grouped-GEMM curve by tokens per expert (``costmodel.moe``);
* parametric (``CostParams``): ``max(compute, memory) + kernel_latency`` with compute at
  ``gemm_efficiency × m / (m + gemm_pad_tokens)`` of peak, the GGUF ceilings of ggml's
  kernels where they apply, and a CUDA-core GEMV where that is faster.

Formats without a measured grid (int4 AWQ, GGUF, fp8 on a GPU without fp8 tensor cores)
take the parametric path.
"""

from __future__ import annotations

from simulator.costmodel.costs import OpCost, bound_of, gemm_dtype
from simulator.costmodel.fused_moe import FusedMoeCurve, MoeLayout
from simulator.costmodel.ggml import ggml_format_speed
from simulator.costmodel.kernels import KernelTables
from simulator.costmodel.layers import EIGHT_BIT_OR_LESS, ElementwiseOp, GemmOp, compute_dtype
from simulator.costmodel.loggrid import LogGrid
from simulator.costmodel.moe import GroupedGemmCurve, grouped_expert_cost
from simulator.costmodel.params import CostParams
from simulator.specs.dtypes import NATIVE_COMPUTE, dtype_bytes, is_gguf
from simulator.specs.gpu import GpuSpec

#: Engine-calibration grids of per-tensor FP8 GEMMs under static activation scales
#: (``CostParams.fp8_static_activation_scales``): the layer casts its bf16 input with the
#: checkpoint's scale (``fp8_static``), or the kernel before it emits FP8 (``fp8_input``).
STATIC_FP8, FP8_INPUT = "fp8_static", "fp8_input"
#: Producers that emit FP8 for a static-scale FP8 GEMM after them: the attention kernel
#: (TensorRT-LLM ``out_scale`` = o_proj's input scale) and SiLU × up (its ``quant_scale``).
FP8_PRODUCERS = ("attention", "activation")


def _as_wide(stored: str, measured: str) -> bool:
    """Whether a dense GEMM grid measured on ``measured`` weights may price ``stored`` ones:
    only if they are no narrower, else it would read them at the wrong size (int4, fp4 or
    fp8 that compute in bf16 take their own grid, or the parametric path)."""
    return dtype_bytes(stored) >= dtype_bytes(measured)


class _Rate:
    """How one GEMM op is priced: its compute dtype, seconds per FLOP at full efficiency,
    dequantisation factor, GGUF ceilings and the measured grid or curve if any."""

    __slots__ = ("bw", "cycles", "dequant", "grid", "grid_dequant", "peak", "s_per_flop")

    def __init__(self, op: GemmOp, pricer: GemmPricer) -> None:
        p, gpu = pricer.params, pricer.gpu
        dtype = gemm_dtype(op.dtype, compute_dtype(op.dtype, pricer.activation_dtype), gpu)
        eff = p.gemm_efficiency_8bit if dtype in EIGHT_BIT_OR_LESS else p.gemm_efficiency
        narrower = dtype_bytes(op.dtype) < dtype_bytes(dtype) and op.dtype not in NATIVE_COMPUTE
        unsupported = op.dtype in NATIVE_COMPUTE and dtype != NATIVE_COMPUTE[op.dtype]
        self.dequant = 1.0 + (p.dequant_overhead if narrower or unsupported else 0.0)
        self.peak = gpu.flops_for(dtype)
        self.s_per_flop = 1.0 / (self.peak * eff)
        self.grid = pricer.measured(op, dtype)
        # A grid measured in the stored format has its unpacking inside the measurement.
        stored = self.grid is not None and pricer.measured(op, op.dtype) is self.grid
        self.grid_dequant = 1.0 if stored else self.dequant
        self.cycles, self.bw = 0.0, pricer.bw
        if is_gguf(op.dtype) and gpu.sm_cycles_per_s > 0:
            self.cycles = gpu.sm_cycles_per_s * ggml_format_speed(op.dtype)
            if p.gguf_gemv_bytes_per_sm_cycle > 0:
                self.bw = min(self.bw, self.cycles * p.gguf_gemv_bytes_per_sm_cycle)


class GemmPricer:
    """Prices GEMM and elementwise ops on ``gpu`` (see the module docstring)."""

    def __init__(
        self,
        gpu: GpuSpec,
        params: CostParams,
        kernels: KernelTables | None,
        activation_dtype: str,
        expert_imbalance: float,
        expert_weights: float = 0.0,
        moe_curve: GroupedGemmCurve | None = None,
        moe_layout: MoeLayout | None = None,
        routing: str = "",
    ) -> None:
        self.gpu, self.params, self.kernels = gpu, params, kernels
        self.activation_dtype = activation_dtype
        self.bw = gpu.memory_bw_bytes_per_s * params.memory_bw_efficiency
        self.gemv_s_per_flop = 1.0 / (gpu.flops_for("fp32") * params.gemm_efficiency)
        self.latency_s = params.kernel_latency_s
        self.imbalance = expert_imbalance
        #: Elements of one expert's gate, up and down weights on this GPU (MoE grid axis).
        self.expert_weights = expert_weights
        #: The reference calibration's grouped-GEMM curve (used without a kernel table).
        self.moe_curve = moe_curve
        #: The model's expert shape and split, and the routing its measured time is read under.
        self.moe_layout, self.routing = moe_layout, routing
        self._rates: dict[str, _Rate] = {}
        self._fused: dict[str, FusedMoeCurve | None] = {}

    def measured(self, op: GemmOp, dtype: str) -> LogGrid | None:
        """The engine's measured grid (dense) or fused-MoE grid (experts) for ``op``: that of
        its stored format (fp8_block, int4, mxfp4; per-tensor fp8 with static activation
        scales: ``fp8_static`` or ``fp8_input``) where measured, else, for a dense GEMM whose
        weights are as wide as the dtype it computes in, that dtype's; None otherwise."""
        if self.kernels is None or is_gguf(op.dtype):
            return None
        if op.is_expert:
            return self.kernels.moe_curve(op.dtype) or self.kernels.moe_curve(dtype)
        table = self.kernels.gemm_grid
        if op.dtype == "fp8" and self.params.fp8_static_activation_scales:
            # no scale kernel; no cast either where the producer emits FP8
            static = table(FP8_INPUT if op.input_from in FP8_PRODUCERS else STATIC_FP8)
            if static is not None:
                return static
        grid = table(op.dtype)
        if grid is None and _as_wide(op.dtype, dtype):
            grid = table(dtype)
        return grid

    def fused_moe(self, op: GemmOp) -> FusedMoeCurve | None:
        """The measured fused-MoE curve of this model's layout in ``op``'s stored format (or
        the format it computes in); None where it was not measured."""
        if op.dtype in self._fused:
            return self._fused[op.dtype]
        curve = None
        if self.kernels is not None and self.moe_layout is not None:
            wider = compute_dtype(op.dtype, self.activation_dtype)
            for dtype in dict.fromkeys((op.dtype, gemm_dtype(op.dtype, wider, self.gpu), wider)):
                curve = self.kernels.fused_moe(dtype, self.routing, self.moe_layout)
                if curve is not None:
                    break
        self._fused[op.dtype] = curve
        return curve

    def rate(self, op: GemmOp) -> _Rate:
        r = self._rates.get(op.name)
        if r is None:
            r = self._rates[op.name] = _Rate(op, self)
        return r

    def expert_rows(self, op: GemmOp, tokens: int, expert_parallel: int) -> float:
        """Token-expert assignments on this GPU's expert group (the busiest rank)."""
        rows = tokens * op.experts_per_token / op.experts * op.local_experts
        return rows * (self.imbalance if expert_parallel > 1 else 1.0)

    def gemm(self, op: GemmOp, tokens: int, expert_parallel: int = 1) -> OpCost:
        """One GEMM op of ``tokens`` rows over its layers."""
        if op.is_expert:
            rows = self.expert_rows(op, tokens, expert_parallel)
            flops = 2.0 * op.k * op.n * rows
        else:
            rows, flops = tokens, op.flops_per_token * tokens
        nbytes = op.weight_bytes_touched(tokens) + op.act_bytes_per_token * rows
        fused = self.fused_moe(op) if op.is_expert and tokens > 0 else None
        if fused is not None:
            # The measured layer time, shared between gate/up and down by their weights.
            time_s = fused.seconds(tokens) * op.k * op.n / self.expert_weights
            peak = self.rate(op).peak
            bound = bound_of(flops / peak, nbytes / self.gpu.memory_bw_bytes_per_s, 0.0)
            return OpCost(op.name, op.layers * flops, op.layers * nbytes, op.layers * time_s, bound)
        r = self.rate(op)
        if op.is_expert and r.grid is None and self.moe_curve is not None:
            # The reference calibration's grouped GEMMs (and routing) by tokens per expert.
            grouped = grouped_expert_cost(self.moe_curve, op, self, tokens, rows, flops, nbytes)
            if grouped is not None:
                return grouped
        if r.grid is not None and rows > 0:
            time_s, bound = self._measured_s(op, r, rows, flops, nbytes)
        else:
            time_s, bound = self._parametric_s(op, r, rows, tokens, flops, nbytes)
        n = op.layers
        return OpCost(op.name, n * flops, n * nbytes, n * time_s, bound)

    def _measured_s(
        self, op: GemmOp, r: _Rate, rows: float, flops: float, nbytes: float
    ) -> tuple[float, str]:
        if not op.is_expert:
            eff = r.grid(rows, op.n, op.k)
        elif len(r.grid.axes) == 1:
            eff = r.grid(rows / op.local_experts)
        else:
            eff = r.grid(rows / op.local_experts, self.expert_weights, op.local_experts)
        time_s = flops * r.grid_dequant / (r.peak * eff)
        return time_s, bound_of(flops / r.peak, nbytes / self.gpu.memory_bw_bytes_per_s, 0.0)

    def _parametric_s(
        self, op: GemmOp, r: _Rate, rows: float, tokens: int, flops: float, nbytes: float
    ) -> tuple[float, str]:
        p = self.params
        # Grouped expert GEMMs pad every touched expert's rows to a tile, not just the total.
        tiles = op.experts_touched(tokens) if op.is_expert else 1.0
        pad = (rows + p.gemm_pad_tokens * tiles) / rows if rows > 0 else 1.0
        compute_s = flops * pad * r.s_per_flop * r.dequant
        # Few rows: kernels switch to a CUDA-core GEMV that pads nothing (matters on GPUs
        # with a low tensor-core peak, e.g. Apple silicon and consumer cards at batch 1).
        gemv_s = flops * self.gemv_s_per_flop * r.dequant
        compute_s = min(compute_s, gemv_s)
        if r.cycles > 0 and rows > 0:
            compute_s = max(compute_s, self._gguf_s(r, rows, flops))
        memory_s = nbytes / r.bw
        return max(compute_s, memory_s) + self.latency_s, bound_of(
            compute_s, memory_s, self.latency_s
        )

    def _gguf_s(self, r: _Rate, rows: float, flops: float) -> float:
        """ggml's kernel ceilings: matrix-vector (MMVQ) up to ``gguf_gemv_max_tokens`` rows,
        matrix-multiply (MMQ) above; 0 where the profile sets none."""
        p = self.params
        if rows <= p.gguf_gemv_max_tokens and p.gguf_gemv_flop_per_sm_cycle > 0:
            return flops / (r.cycles * p.gguf_gemv_flop_per_sm_cycle)
        if p.gguf_gemm_flop_per_sm_cycle > 0:
            # MMQ tiles: a pass over the weights unpacks them whatever the row count.
            padded = flops * (rows + p.gguf_gemm_pad_tokens) / rows
            return padded / (r.cycles * p.gguf_gemm_flop_per_sm_cycle)
        return 0.0

    def _kernels_per_op(self, fusable_into: str) -> float:
        """Kernels an elementwise op launches of its own (0: it runs inside another)."""
        if fusable_into == "norm":
            return self.params.residual_add_kernels
        if fusable_into == "attention":
            return self.params.rope_kv_write_kernels
        return 1.0

    def elementwise(self, op: ElementwiseOp, tokens: int) -> OpCost:
        """A memory-bound kernel over ``tokens`` rows, over its layers."""
        factor = self.params.elementwise_traffic_factor
        per_layer_bytes = (op.bytes_per_token * tokens + op.fixed_bytes) * factor
        memory_s = per_layer_bytes / self.bw
        n = op.layers
        latency_s = self.latency_s * self._kernels_per_op(op.fusable_into)
        bound = bound_of(0.0, memory_s, latency_s)
        return OpCost(op.name, 0.0, n * per_layer_bytes, n * (memory_s + latency_s), bound)
