"""Attention of one step: prefill (causal, compute-bound at length) and decode (reads KV).

Prefill attention costs ``2 · heads · (qk + v) FLOPs`` per causal query-key pair and reads
the chunk's KV; decode attention reads each sequence's whole KV cache plus the token it just
wrote, and pays a fixed ``attention_decode_pad_tokens`` worth of reading per sequence (last
tile, query and output). Sliding-window layers attend to at most ``window`` keys. Every
constant is per step over all layers of the device, folded in once so that pricing is a few
multiplications.

With an engine calibration (``kernels.KernelTables``) the engine's measured attention
kernels set the time instead: prefill at the measured FLOP efficiency for its tokens per
sequence, sequences × heads and head dim; decode at the measured bandwidth efficiency for
its KV tokens per sequence, sequences, KV heads and query heads per KV head (launch and
fixed costs are inside the measurements), never above the datasheet bandwidth. MLA models
keep the parametric path: their absorbed decode kernels are not in those tables.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.costmodel.costs import OpCost, bound_of
from simulator.costmodel.kernels import DECODE_HEAD_DIM_UNIT, KernelTables
from simulator.costmodel.layers import LayerPlan
from simulator.costmodel.params import CostParams
from simulator.costmodel.shape import StepShape
from simulator.specs.gpu import GpuSpec
from simulator.specs.model import ModelSpec


class AttentionCost:
    """Prices the attention ops of ``plan`` on ``gpu``."""

    def __init__(
        self,
        model: ModelSpec,
        plan: LayerPlan,
        gpu: GpuSpec,
        params: CostParams,
        activation_dtype: str,
        kernels: KernelTables | None = None,
        kv_dtype: str = "bf16",
    ) -> None:
        p = params
        bw = gpu.memory_bw_bytes_per_s * p.memory_bw_efficiency
        attn_flops_s = gpu.flops_for(activation_dtype) * p.attention_prefill_efficiency
        attn_bw = gpu.memory_bw_bytes_per_s * p.attention_decode_bw_efficiency
        # Per layer: 2 FLOPs per multiply-add in QK^T and in PV, per head.
        self.flops_per_pair = 2.0 * plan.heads_per_gpu * (plan.qk_head_dim + plan.v_head_dim)
        self.decode_flops_per_token = (
            2.0 * plan.heads_per_gpu * (plan.decode_qk_head_dim + plan.decode_v_head_dim)
        )
        self.kv_bytes_per_token = plan.kv_bytes_per_token_per_layer
        self.q_bytes_per_token = plan.q_bytes_per_token
        # Seconds per unit, with the layer count folded in (hot path multiplies once).
        self.layers = layers = plan.num_layers
        self.heads = plan.heads_per_gpu
        self._c_per_pair = layers * self.flops_per_pair / attn_flops_s
        self._prefill_m_per_kv = layers * self.kv_bytes_per_token / bw
        self._prefill_m_per_q = layers * self.q_bytes_per_token / bw
        self._decode_c_per_tok = layers * self.decode_flops_per_token / attn_flops_s
        self._decode_m_per_tok = layers * self.kv_bytes_per_token / attn_bw
        self._decode_m_per_seq = (
            layers * self.q_bytes_per_token / attn_bw
            + p.attention_decode_pad_tokens * self._decode_m_per_tok
        )
        self.latency_s = layers * (p.kernel_latency_s + p.attention_kernel_latency_s)
        # Sliding-window layers attend to at most ``window`` keys (gpt-oss: half the layers).
        windowed = model.sliding_window > 0 and model.sliding_window_layers > 0
        self._window = model.sliding_window if windowed else 0
        self._window_frac = model.sliding_window_layers / model.num_layers if windowed else 0.0
        self._measured(model, plan, gpu, kernels, kv_dtype, activation_dtype)

    def _measured(
        self,
        model: ModelSpec,
        plan: LayerPlan,
        gpu: GpuSpec,
        kernels: KernelTables | None,
        kv_dtype: str,
        activation_dtype: str,
    ) -> None:
        """The engine's measured attention grids (None: priced by the parameters)."""
        use = kernels is not None and not model.uses_mla
        self._prefill_grid = kernels.prefill_grid(kv_dtype) if use else None
        self._decode_grid = kernels.decode_grid(kv_dtype) if use else None
        self._head_dim = float(plan.qk_head_dim)
        self._kv_heads = float(plan.kv_heads_per_gpu)
        self._group = plan.heads_per_gpu / max(plan.kv_heads_per_gpu, 1)
        self._kv_unit = plan.qk_head_dim / DECODE_HEAD_DIM_UNIT
        # Seconds per query-key pair at full peak, per KV byte at full bandwidth (all layers).
        self._pair_s = self.layers * self.flops_per_pair / gpu.flops_for(activation_dtype)
        self._kv_byte_s = self.layers * self.kv_bytes_per_token / gpu.memory_bw_bytes_per_s
        self._decode_curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def prefill_work(self, shape: StepShape) -> tuple[float, float]:
        """Query-key pairs and KV tokens read by prefill attention, averaged over layers.

        Sliding-window layers see at most ``window`` keys per query (per-chunk averages)."""
        pairs, kv = shape.prefill_attn_pairs, float(shape.prefill_kv_tokens)
        if self._window:
            f, w = self._window_frac, self._window
            pairs = (1 - f) * pairs + f * min(pairs, shape.prefill_tokens * w)
            kv = (1 - f) * kv + f * min(kv, shape.prefill_tokens + shape.prefill_seqs * w)
        return pairs, kv

    def decode_read(self, seqs: int, context):
        """KV tokens read by decode attention, averaged over layers (scalar or array)."""
        read = context + seqs
        if self._window:
            f, capped = self._window_frac, seqs * (self._window + 1)
            windowed = (
                np.minimum(read, capped) if isinstance(read, np.ndarray) else min(read, capped)
            )
            read = (1 - f) * read + f * windowed
        return read

    def prefill(self, shape: StepShape) -> tuple[float, float, float]:
        """(compute_s, memory_s, latency_s) of prefill attention over all layers."""
        pairs, kv = (
            self.prefill_work(shape)
            if self._window
            else (shape.prefill_attn_pairs, shape.prefill_kv_tokens)
        )
        if self._prefill_grid is not None:
            seqs = shape.prefill_seqs
            # The causal sequence length with as many query-key pairs per sequence.
            per_seq = math.sqrt(2.0 * pairs / seqs) if seqs else 0.0
            eff = self._prefill_grid(per_seq, seqs * self.heads, self._head_dim)
            return pairs * self._pair_s / eff, 0.0, 0.0
        compute_s = pairs * self._c_per_pair
        memory_s = kv * self._prefill_m_per_kv + shape.prefill_tokens * self._prefill_m_per_q
        return compute_s, memory_s, self.latency_s

    def decode(self, seqs: int, context) -> tuple[float, float, float]:
        """(compute_s, memory_s, latency_s) of decode attention over all layers."""
        read = self.decode_read(seqs, context) if self._window else context + seqs
        if self._decode_grid is not None:
            return 0.0, self._decode_measured_s(seqs, read), 0.0
        compute_s = read * self._decode_c_per_tok
        memory_s = read * self._decode_m_per_tok + seqs * self._decode_m_per_seq
        return compute_s, memory_s, self.latency_s

    def _decode_measured_s(self, seqs: int, read):
        """Decode attention time from the measured grid (scalar or array ``read``): the
        grid at this batch's sequences, KV heads and group is a curve of the KV tokens per
        sequence, cached per batch size (one step and a run of steps use the same curve)."""
        curve = self._decode_curves.get(seqs)
        if curve is None:
            log_x, log_eff = self._decode_grid.along_first(seqs, self._kv_heads, self._group)
            # No kernel reads the KV cache faster than HBM's datasheet bandwidth: measured rows
            # above it were served from cache (the collector's sequences share KV blocks), and
            # AIConfigurator floors generation attention at that speed of light as well
            # (aiconfigurator_core sdk/operations/attention.py, "SOL-floored").
            curve = self._decode_curves[seqs] = (log_x, np.minimum(log_eff, 0.0))
        log_x, log_eff = curve
        per_seq = read * (self._kv_unit / seqs)
        if isinstance(per_seq, np.ndarray):
            x = np.clip(np.log(np.maximum(per_seq, 1e-300)), log_x[0], log_x[-1])
            return read * self._kv_byte_s / np.exp(np.interp(x, log_x, log_eff))
        x = min(max(math.log(per_seq) if per_seq > 0 else log_x[0], log_x[0]), log_x[-1])
        return read * self._kv_byte_s / math.exp(float(np.interp(x, log_x, log_eff)))

    def ops(self, shape: StepShape) -> list[OpCost]:
        """The attention ops of ``shape`` with FLOPs and bytes (the breakdown's view)."""
        ops = []
        layers = self.layers
        if shape.prefill_tokens:
            c, m, lat = self.prefill(shape)
            pairs, kv = self.prefill_work(shape)
            flops = pairs * self.flops_per_pair * layers
            nbytes = layers * (
                kv * self.kv_bytes_per_token + shape.prefill_tokens * self.q_bytes_per_token
            )
            ops.append(
                OpCost("attention_prefill", flops, nbytes, max(c, m) + lat, bound_of(c, m, lat))
            )
        if shape.decode_seqs:
            seqs = shape.decode_seqs
            read = self.decode_read(seqs, shape.decode_context_tokens)
            c, m, lat = self.decode(seqs, shape.decode_context_tokens)
            flops = read * self.decode_flops_per_token * layers
            nbytes = layers * (read * self.kv_bytes_per_token + seqs * self.q_bytes_per_token)
            ops.append(
                OpCost("attention_decode", flops, nbytes, max(c, m) + lat, bound_of(c, m, lat))
            )
        return ops
