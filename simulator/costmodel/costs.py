"""What a step costs: per-op times with the bound that set them, and small helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.costmodel.shape import StepShape
from simulator.specs.dtypes import NATIVE_COMPUTE, is_gguf
from simulator.specs.gpu import GpuSpec

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
    has it (Blackwell); GGUF block formats run in int8 where the GPU has an int8 rate
    (ggml quantises activations to q8_1/q8_0 blocks and multiplies in int8: MMQ on CUDA,
    the q8 dot products on CPUs); other formats compute in the wider of weights and
    activations (int4 AWQ/GPTQ: W4A16 in bf16, fp8 on an A100: W8A16)."""
    native = NATIVE_COMPUTE.get(weight_dtype)
    if native is None and is_gguf(weight_dtype):
        native = "int8"
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


def bound_of(compute_s: float, memory_s: float, latency_s: float) -> str:
    """Which of compute, memory or fixed latency sets an op's time."""
    if latency_s > max(compute_s, memory_s):
        return "latency"
    return "compute" if compute_s >= memory_s else "memory"


def ep_group_shape(shape: StepShape, groups: int, token_budget: int | None = None) -> StepShape:
    """The busiest of ``groups`` data-parallel groups' part of a step.

    Sequences go whole to a group (attention data parallelism), so the busiest group takes
    ⌈chunks / groups⌉ prefill chunks and ⌈decodes / groups⌉ decoding sequences, each of the
    step's average size: one long prompt is not spread over the groups. ``token_budget``:
    the most tokens one group schedules in a step (its own share of the replica's budget;
    None: no bound). Each rank's scheduler fills its chunks only up to that share, so the
    busiest group's prompt tokens stop there, and never fall below an even share."""
    if groups <= 1:
        return shape
    c = math.ceil
    ps, ds = shape.prefill_seqs, shape.decode_seqs
    group_ps, group_ds = c(ps / groups), c(ds / groups)
    fp = group_ps / ps if ps else 0.0
    fd = group_ds / ds if ds else 0.0
    prefill_tokens = c(shape.prefill_tokens * fp)
    if token_budget is not None and ps:
        room = max(token_budget - group_ds, c(shape.prefill_tokens / groups))
        if prefill_tokens > room:
            fp, prefill_tokens = room / shape.prefill_tokens, room
    prefill_logits = shape.logits_rows - ds
    return StepShape(
        prefill_tokens=prefill_tokens,
        prefill_seqs=group_ps,
        prefill_attn_pairs=shape.prefill_attn_pairs * fp,
        prefill_kv_tokens=c(shape.prefill_kv_tokens * fp),
        decode_seqs=group_ds,
        decode_context_tokens=c(shape.decode_context_tokens * fd),
        logits_rows=group_ds + min(group_ps, c(prefill_logits * fp)),
    )
