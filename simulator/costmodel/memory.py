"""GPU memory budget of a replica: weights, workspace and what is left for the KV cache.

Mirrors how serving engines (vLLM's ``gpu_memory_utilization``) size the KV cache: a fraction
of the GPU's memory is usable; weights and the activation workspace of the largest batch come
out of it; the rest holds KV blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype, dtype_bytes
from simulator.specs.gpu import GpuSpec
from simulator.specs.model import ModelSpec

#: Memory taken by the CUDA context, cuBLAS/NCCL handles and captured CUDA graphs (bytes);
#: ~1 GB on recent CUDA/PyTorch stacks (vLLM reports 0.5-1.5 GB of "non-torch" memory).
RUNTIME_OVERHEAD_BYTES = 1.0e9

#: Sequences whose fp32 logits are held at once by the sampler (vLLM's default max_num_seqs).
SAMPLER_ROWS = 256


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU memory budget (bytes) and the KV-cache capacity it leaves."""

    gpu_memory_bytes: float
    usable_bytes: float
    weight_bytes_per_gpu: float
    workspace_bytes: float
    kv_capacity_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    max_kv_tokens: int
    fits: bool
    model_name: str = ""
    gpu_name: str = ""
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.9

    def explain(self) -> str:
        """One paragraph: where the memory goes and whether the model fits."""
        gb = 1e9
        need = self.weight_bytes_per_gpu + self.workspace_bytes
        head = (
            f"{self.model_name} on {self.gpu_name} (tensor_parallel {self.tensor_parallel}): "
            f"weights {self.weight_bytes_per_gpu / gb:.2f} GB + workspace "
            f"{self.workspace_bytes / gb:.2f} GB per GPU = {need / gb:.2f} GB needed; "
            f"usable {self.usable_bytes / gb:.2f} GB "
            f"({self.gpu_memory_utilization:.0%} of {self.gpu_memory_bytes / gb:.2f} GB)"
        )
        if not self.fits:
            return (
                f"{head}: does not fit, {need / gb:.2f} GB needed vs {self.usable_bytes / gb:.2f} "
                "GB available; raise tensor_parallel, use a smaller weight dtype or a GPU with "
                "more memory"
            )
        return (
            f"{head}; KV cache {self.kv_capacity_bytes_per_gpu / gb:.2f} GB at "
            f"{self.kv_bytes_per_token_per_gpu:.0f} B/token = {self.max_kv_tokens} tokens"
        )


def kv_bytes_per_token_per_gpu(model: ModelSpec, tensor_parallel: int, kv_dtype: str) -> float:
    """KV-cache bytes one token takes on one GPU (KV heads replicate when TP exceeds them)."""
    if model.uses_mla:  # the latent cache is replicated on every rank
        return model.kv_bytes_per_token(kv_dtype)
    kv_heads = max(1, math.ceil(model.num_kv_heads / tensor_parallel))
    return 2 * kv_heads * model.head_dim * model.num_layers * dtype_bytes(kv_dtype)


def workspace_bytes(
    model: ModelSpec, tensor_parallel: int, activation_dtype: str, max_num_batched_tokens: int
) -> float:
    """Peak activation memory of the largest step plus runtime overhead (bytes per GPU)."""
    ab = dtype_bytes(activation_dtype)
    tp = tensor_parallel
    inter = max(model.intermediate_size, model.moe_intermediate_size * model.experts_per_token)
    # Live at the MLP: residual, normed input, gate+up output and the activation output.
    per_token = 2 * model.hidden_size + 3 * inter / tp + (model.q_dim + 2 * model.kv_dim) / tp
    logits = min(max_num_batched_tokens, SAMPLER_ROWS) * model.vocab_size / tp * 4
    return max_num_batched_tokens * per_token * ab + logits + RUNTIME_OVERHEAD_BYTES


def memory_plan(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    tensor_parallel: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    gpu_memory_utilization: float = 0.9,
    max_num_batched_tokens: int = 8192,
    activation_dtype: str = "bf16",
) -> MemoryPlan:
    """Budget one GPU of a replica of ``tensor_parallel`` GPUs."""
    if not 0 < gpu_memory_utilization <= 1:
        raise UserError(f"gpu_memory_utilization: {gpu_memory_utilization} must be in (0, 1]")
    if tensor_parallel < 1:
        raise UserError(f"tensor_parallel: {tensor_parallel} must be >= 1")
    for field, value in (("weight_dtype", weight_dtype), ("kv_dtype", kv_dtype)):
        try:
            canonical_dtype(value)
        except ValueError as exc:
            raise UserError(f"{field}: {exc}") from None
    usable = gpu.memory_bytes * gpu_memory_utilization
    weights = model.weight_bytes(weight_dtype) / tensor_parallel
    workspace = workspace_bytes(model, tensor_parallel, activation_dtype, max_num_batched_tokens)
    kv_capacity = max(0.0, usable - weights - workspace)
    per_token = kv_bytes_per_token_per_gpu(model, tensor_parallel, kv_dtype)
    max_tokens = int(kv_capacity // per_token) if per_token > 0 else 0
    return MemoryPlan(
        gpu_memory_bytes=gpu.memory_bytes,
        usable_bytes=usable,
        weight_bytes_per_gpu=weights,
        workspace_bytes=workspace,
        kv_capacity_bytes_per_gpu=kv_capacity,
        kv_bytes_per_token_per_gpu=per_token,
        max_kv_tokens=max_tokens,
        fits=weights + workspace <= usable and max_tokens > 0,
        model_name=model.name,
        gpu_name=gpu.name,
        tensor_parallel=tensor_parallel,
        gpu_memory_utilization=gpu_memory_utilization,
    )
