"""Roofline cost of one forward step: per-op ``max(compute, memory) + kernel latency``.

A step's time is the sum over its ops of ``max(flops / achievable_flops, bytes /
achievable_bw) + kernel_latency``, plus tensor-parallel communication, plus a fixed per-step
overhead. Without CUDA graphs the host must launch every kernel, so a step lasts at least
its launch time. The efficiency factors are the fields of ``CostParams``; where an engine
calibration gives measured kernel tables (``CostConfig.kernels``) its GEMMs and attention
take the measured time instead (``gemm.py``, ``attention.py``).

``price`` is the one pricing entry point: a step's duration with its per-op breakdown.
``step_time_s`` and ``decode_run_s`` are the fast paths the engine calls every simulated
step; they add up the same ops (the parts that depend only on the token count are cached,
attention is a few multiplications) and equal ``price(...).total_s``, which tests check.

Parallelism, placement and offload are described in ``parallel.py`` and ``offload.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.costmodel.attention import AttentionCost
from simulator.costmodel.config import CostConfig
from simulator.costmodel.costs import OpCost, StepCost, ep_group_shape, gemm_dtype, split_shape
from simulator.costmodel.fused_moe import moe_layout, routing_for
from simulator.costmodel.gemm import GemmPricer
from simulator.costmodel.graph_padding import DUMMY_CONTEXT_TOKENS, padded_batch
from simulator.costmodel.layers import LayerPlan, build_layer_plan, compute_dtype
from simulator.costmodel.offload import host_params
from simulator.costmodel.parallel import pipeline_round_s, resolve_placement
from simulator.costmodel.params import CostParams
from simulator.costmodel.quant import weight_bytes_for_layers
from simulator.costmodel.replica_comm import ReplicaComm
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.link import LinkSpec


@dataclass(frozen=True)
class _Offloaded:
    """Layers not held by the GPU: streamed each step, or run on the host CPU."""

    gpu_layers: int
    #: Seconds to stream the offloaded weights over the host link (0 in ``cpu`` mode).
    stream_s: float
    #: The host's cost model for the layers it runs (None in ``stream`` mode).
    host: CostModel | None
    #: Link the activations cross between GPU and host layers.
    handoff: LinkSpec | None


class CostModel:
    """Prices forward steps of one replica described by a ``CostConfig``: ``tensor ×
    expert × pipeline`` GPUs that the engine sees as one server."""

    def __init__(self, config: CostConfig) -> None:
        self.config = config
        self.model, self.gpu = config.model, config.gpu
        kernels = config.kernels
        self.params: CostParams = (
            config.params.replace(**kernels.params) if kernels and kernels.params else config.params
        )
        par, prec = config.parallel, config.precision
        self.tensor_parallel = par.tensor
        self.pipeline_parallel = par.pipeline
        self.expert_parallel = par.expert
        self.microbatches = par.microbatches or par.pipeline
        self.weight_dtype, self.kv_dtype = prec.weights, prec.kv_cache
        self.activation_dtype = prec.activations
        self.formats = config.formats
        self.placement = resolve_placement(
            self.gpu, par.tensor, par.pipeline, par.expert, par.placement, par.link
        )
        self.link = self.placement.tp_link()
        self.offload = config.offload
        self._offloaded = self._offload_layers()
        stage_layers, lm_head = self._device_layers()
        self.layers_on_device = stage_layers
        self.plan: LayerPlan = build_layer_plan(
            self.model,
            tensor_parallel=par.tensor,
            formats=self.formats,
            expert_parallel=par.expert,
            layers=stage_layers,
            lm_head=lm_head,
            weight_dtype=prec.weights,
            kv_dtype=prec.kv_cache,
            activation_dtype=prec.activations,
        )
        self._build_pricers()

    # --- setup -----------------------------------------------------------------------------
    def _device_layers(self) -> tuple[int, bool]:
        """(decoder layers, whether the LM head) this device prices."""
        cfg, off = self.config, self._offloaded
        layers = math.ceil(self.model.num_layers / self.pipeline_parallel)
        if cfg.layers is not None:
            layers = cfg.layers
        if off is not None and off.host is not None:
            return off.gpu_layers, off.gpu_layers > 0
        return layers, cfg.lm_head

    def _offload_layers(self) -> _Offloaded | None:
        """Price the layers that are not on the GPU (None: all of them are)."""
        offload, model, p = self.offload, self.model, self.config.params
        if offload is None:
            return None
        total = model.num_layers
        if not 0 <= offload.gpu_layers <= total:
            raise UserError(f"offload.gpu_layers: {offload.gpu_layers} must be within 0..{total}")
        off_layers = total - offload.gpu_layers
        if off_layers == 0:
            return None
        if offload.host_link is None:
            raise UserError(f"offload: {self.gpu.name} has no host link to stream or hand off over")
        if offload.mode == "stream":
            off_bytes = weight_bytes_for_layers(model, self.formats, off_layers)
            bw = offload.host_link.bandwidth_bytes_per_s * p.offload_bw_efficiency
            return _Offloaded(offload.gpu_layers, off_bytes / bw, None, None)
        if offload.host is None:
            raise UserError("offload.host: running layers on the CPU needs a host device spec")
        host = CostModel(
            CostConfig(
                model,
                offload.host,
                params=host_params(p),
                precision=self.config.precision,
                layers=off_layers,
                lm_head=offload.gpu_layers == 0,
            )
        )
        return _Offloaded(offload.gpu_layers, 0.0, host, offload.host_link)

    def _build_pricers(self) -> None:
        p, plan, gpu = self.params, self.plan, self.gpu
        mlp_op = next((op for op in plan.gemms if "down" in op.name), plan.gemms[0])
        self.gemm_dtype = gemm_dtype(
            mlp_op.dtype, compute_dtype(mlp_op.dtype, self.activation_dtype), gpu
        )
        kernels = self.config.kernels
        # Elements of one expert's gate, up and down weights on this GPU (the MoE grid axis).
        expert_weights = sum(op.k * op.n for op in plan.gemms if op.is_expert)
        self.gemms = GemmPricer(
            gpu,
            p,
            kernels,
            self.activation_dtype,
            p.expert_load_imbalance,
            expert_weights,
            self.config.moe_grouped_gemm,
            moe_layout(self.model, self.tensor_parallel, self.expert_parallel)
            if self.model.is_moe
            else None,
            routing_for(self.model),
        )
        self._attn = AttentionCost(
            self.model, plan, gpu, p, self.activation_dtype, kernels, self.kv_dtype
        )
        expert_op = next((op for op in plan.gemms if op.is_expert), None)
        fp8_experts = expert_op is not None and gemm_dtype(
            expert_op.dtype, compute_dtype(expert_op.dtype, self.activation_dtype), gpu
        ) in ("fp8", "fp4")
        dispatch_bytes = 1.0 if fp8_experts else plan.activation_bytes
        self._comm = ReplicaComm(
            self.model,
            plan,
            self.placement,
            p,
            dispatch_bytes,
            kernels.allreduce if kernels else None,
            kernels.nccl if kernels else None,
        )
        # Kernels per step without attention and LM head (for the eager launch bound).
        layers = plan.num_layers
        self._base_kernels = layers * plan.small_kernels_per_layer + 2
        self._base_kernels += layers * plan.allreduces_per_layer
        if self.expert_parallel > 1:
            self._base_kernels += 2 * self._comm.moe_layers
        self._token_cache: dict[object, float] = {}
        self._logits_cache: dict[int, float] = {}
        self._p2p_cache: dict[int, float] = {}

    # --- ops of a step (shared by the fast paths and the breakdown) -------------------------
    def _local_tokens(self, tokens: int) -> int:
        """Tokens one expert group's attention and dense layers see (data-parallel)."""
        ep = self.expert_parallel
        return -(-tokens // ep) if ep > 1 else tokens

    def _token_ops(self, tokens: int, local: int | None = None) -> list[OpCost]:
        """Ops whose cost depends only on the number of tokens in the step (per stage):
        ``tokens`` reach the routed experts, ``local`` pass the busiest group's other layers
        (default: an even share)."""
        if local is None:
            local = self._local_tokens(tokens)
        g, ep = self.gemms, self.expert_parallel
        ops = [g.gemm(op, tokens if op.is_expert else local, ep) for op in self.plan.gemms]
        ops += [g.elementwise(op, local) for op in self.plan.elementwise]
        return ops + self._comm.token_ops(local)

    def _logits_ops(self, rows: int) -> list[OpCost]:
        """The LM head over ``rows`` rows of one group, and the logits all-gather."""
        if not self.plan.lm_head.layers or rows <= 0:
            return []
        return [self.gemms.gemm(self.plan.lm_head, rows), *self._comm.logits_gather(rows)]

    def _token_time(self, tokens: int, local: int | None = None) -> float:
        key = tokens if local is None else (tokens, local)
        t = self._token_cache.get(key)
        if t is None:
            t = self._token_cache[key] = math.fsum(
                op.time_s for op in self._token_ops(tokens, local)
            )
        return t

    def _logits_time(self, rows: int) -> float:
        t = self._logits_cache.get(rows)
        if t is None:
            t = self._logits_cache[rows] = math.fsum(op.time_s for op in self._logits_ops(rows))
        return t

    def _p2p_time(self, tokens: int) -> float:
        t = self._p2p_cache.get(tokens)
        if t is None:
            t = self._p2p_cache[tokens] = self._comm.p2p_s(tokens)
        return t

    def _kernels(self, shape: StepShape) -> int:
        """Kernels the host launches for ``shape`` without CUDA graphs."""
        layers = self.plan.num_layers
        n = self._base_kernels + layers * ((shape.prefill_tokens > 0) + (shape.decode_seqs > 0))
        return n + (shape.logits_rows > 0)

    def _group(self, shape: StepShape) -> StepShape:
        """The busiest expert group's part of a step: attention and dense layers run
        data-parallel over the groups, whole sequences to a group (``ep_group_shape``)."""
        ep = self.expert_parallel
        return ep_group_shape(shape, ep, self.config.group_token_budget) if ep > 1 else shape

    def _stage_time(self, shape: StepShape) -> float:
        """GPU time (s) of one stage running ``shape`` (no per-step overhead)."""
        tokens = shape.prefill_tokens + shape.decode_seqs
        if self.expert_parallel > 1:
            group = self._group(shape)
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
        if not self.params.cuda_graphs:
            host_s = self._kernels(shape) * self.params.eager_launch_overhead_s
            if host_s > gpu_s:
                gpu_s = host_s
        return gpu_s

    def _stage_ops(self, shape: StepShape) -> list[OpCost]:
        """The ops of one stage running ``shape``, with the host launch bound if it binds."""
        group = self._group(shape)
        ops = self._token_ops(shape.prefill_tokens + shape.decode_seqs, group.tokens)
        if group.logits_rows:
            ops += self._logits_ops(group.logits_rows)
        ops += self._attn.ops(group)
        if not self.params.cuda_graphs:
            gpu_s = math.fsum(op.time_s for op in ops)
            host_s = self._kernels(shape) * self.params.eager_launch_overhead_s
            if host_s > gpu_s:
                ops.append(OpCost("host_launch", 0.0, 0.0, host_s - gpu_s, "overhead"))
        return ops

    def _offload_time(self, shape: StepShape, gpu_s):
        """Step time (s) with offloaded layers, given the GPU's own time ``gpu_s``."""
        off = self._offloaded
        if off is None:
            return gpu_s
        if off.host is None:
            return (
                np.maximum(gpu_s, off.stream_s)
                if isinstance(gpu_s, np.ndarray)
                else max(gpu_s, off.stream_s)
            )
        msg = shape.tokens * self.model.hidden_size * self.plan.activation_bytes
        handoff = 2.0 * off.handoff.transfer_s(msg) if off.gpu_layers else 0.0
        return gpu_s + off.host._stage_time(shape) + handoff

    def _graph_padding(self, decode_seqs: int) -> int:
        """Dummy sequences a decode-only step of ``decode_seqs`` sequences gains when it
        replays the CUDA graph of the next captured batch size (``graph_padding``): every
        expert group runs the busiest group's padded batch. 0 without padding, with
        pipeline stages (not modelled) or without CUDA graphs."""
        sizes = self.config.graph_batch_sizes
        if not sizes or self.pipeline_parallel > 1 or not self.params.cuda_graphs:
            return 0
        ep = self.expert_parallel
        group = -(-decode_seqs // ep)
        return max(padded_batch(sizes, group) * ep - decode_seqs, 0)

    def _padded(self, shape: StepShape) -> StepShape:
        """``shape`` with the CUDA-graph padding of a decode-only step (one token of KV per
        dummy sequence); a step with prompt tokens runs without a graph, unpadded."""
        if shape.prefill_tokens or not shape.decode_seqs:
            return shape
        pad = self._graph_padding(shape.decode_seqs)
        if not pad:
            return shape
        return StepShape(
            decode_seqs=shape.decode_seqs + pad,
            decode_context_tokens=shape.decode_context_tokens + pad * DUMMY_CONTEXT_TOKENS,
            logits_rows=shape.logits_rows + pad,
        )

    def _microbatches(self, shape: StepShape) -> int:
        seqs = shape.prefill_seqs + shape.decode_seqs
        return max(1, min(self.microbatches, seqs))

    # --- public API ------------------------------------------------------------------------
    def price(self, shape: StepShape) -> StepCost:
        """Duration of one step with its per-op breakdown (ops summed over layers).

        With pipeline stages, the ops are those of one micro-batch on the heaviest stage;
        ``pipeline_rounds`` adds the rest of the round (other micro-batches, bubble and
        stage hand-offs)."""
        if shape.prefill_tokens + shape.decode_seqs <= 0:
            return StepCost(0.0, ())
        shape = self._padded(shape)
        m = self._microbatches(shape) if self.pipeline_parallel > 1 else 1
        micro = split_shape(shape, m)
        ops = self._stage_ops(micro)
        gpu_s = math.fsum(op.time_s for op in ops)
        if self.pipeline_parallel > 1:
            t_p2p = self._p2p_time(micro.tokens)
            round_s = pipeline_round_s(m, self.pipeline_parallel, gpu_s, t_p2p)
            ops.append(OpCost("pipeline_rounds", 0.0, 0.0, round_s - gpu_s, "communication"))
        elif self._offloaded is not None:
            stream = self._offloaded.host is None
            total = self._offload_time(shape, gpu_s)
            name = "offload_stream" if stream else "offload_cpu_layers"
            ops.append(OpCost(name, 0.0, 0.0, total - gpu_s, "memory" if stream else "compute"))
        ops.append(OpCost("step_overhead", 0.0, 0.0, self.params.step_overhead_s, "overhead"))
        return StepCost(math.fsum(op.time_s for op in ops), tuple(ops))

    def step_time_s(self, shape: StepShape) -> float:
        """Duration (s) of one step of ``shape``; equals ``price(shape).total_s``."""
        if shape.prefill_tokens + shape.decode_seqs <= 0:
            return 0.0
        if self.pipeline_parallel == 1:
            shape = self._padded(shape)
            gpu_s = self._offload_time(shape, self._stage_time(shape))
            return gpu_s + self.params.step_overhead_s
        m = self._microbatches(shape)
        micro = split_shape(shape, m)
        t_stage = self._stage_time(micro)
        t_p2p = self._p2p_time(micro.tokens)
        return pipeline_round_s(m, self.pipeline_parallel, t_stage, t_p2p) + (
            self.params.step_overhead_s
        )

    def decode_run_s(self, decode_seqs: int, context_tokens: int, n_steps: int) -> np.ndarray:
        """Durations (s) of ``n_steps`` successive pure-decode steps of a fixed batch; each
        equals ``step_time_s`` of that step. Before step i the summed context is
        ``context_tokens + i * decode_seqs``."""
        if n_steps <= 0 or decode_seqs <= 0:
            return np.zeros(max(n_steps, 0))
        steps = context_tokens + decode_seqs * np.arange(n_steps, dtype=np.float64)
        off = self._offloaded
        if off is not None and off.host is not None:
            return np.asarray([self.step_time_s(_decode(decode_seqs, int(c))) for c in steps])
        pad = self._graph_padding(decode_seqs)
        if pad:  # the padded graph's dummy sequences (see _padded)
            steps = steps + pad * DUMMY_CONTEXT_TOKENS
            decode_seqs += pad
        pp, ep = self.pipeline_parallel, self.expert_parallel
        m = max(1, min(self.microbatches, decode_seqs)) if pp > 1 else 1
        stage_tokens = -(-decode_seqs // m)
        group = -(-stage_tokens // ep)  # the busiest expert group's sequences
        base = self._token_time(stage_tokens, group if ep > 1 else None)
        base += self._logits_time(group)
        context = np.ceil(steps / m) if m > 1 else steps
        if ep > 1:
            context = np.ceil(context * (group / stage_tokens))
        c, mem, lat = self._attn.decode(group, context)
        gpu_s = base + (np.maximum(c, mem) + lat)
        if not self.params.cuda_graphs:
            launch = self._kernels(_decode(stage_tokens, 0)) * self.params.eager_launch_overhead_s
            gpu_s = np.maximum(gpu_s, launch)
        if pp > 1:
            gpu_s = pipeline_round_s(m, pp, gpu_s, self._p2p_time(stage_tokens))
        else:
            gpu_s = self._offload_time(_decode(decode_seqs, 0), gpu_s)
        return gpu_s + self.params.step_overhead_s

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


def _decode(seqs: int, context: int) -> StepShape:
    return StepShape(decode_seqs=seqs, decode_context_tokens=context, logits_rows=seqs)
