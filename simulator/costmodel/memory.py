"""GPU memory budget of a replica: weights, workspace and what is left for the KV cache.

Engines size the KV cache in three ways (``accounting``; ``profiles.MEMORY_KNOBS`` names
each engine's knob and default):

* ``gpu_fraction`` (vLLM ``gpu_memory_utilization``): a fraction of the GPU's memory holds
  weights, the activation workspace of the largest step and the KV cache;
* ``free_fraction`` (TensorRT-LLM ``kv_cache_free_gpu_mem_fraction``): the KV cache takes a
  fraction of the memory still free once weights and activation buffers are allocated;
* ``static_fraction`` (SGLang ``mem_fraction_static``): a fraction of the GPU holds weights
  and the KV pool; activations and CUDA graphs live in the rest.

A replica the engine runs, however little KV room it leaves, is priced; one it cannot run
(weights and workspace over the memory, no KV block left, or, for an engine that checks
it, a ``max_model_len`` sequence that does not fit) has ``fits`` False and ``explain()`` says
why with the numbers and which knob to turn.

Sharding: attention and dense weights split over tensor-parallel ranks, routed experts over
tensor × expert ranks, layers over pipeline stages (``quant.weight_bytes_per_gpu``). The KV
cache of a token is split like its layers: KV heads over TP ranks (replicated when TP exceeds
them; MLA's latent cache is replicated on every rank), layers over stages. Expert groups run
attention data-parallel, each holding the KV of its own sequences, so a replica holds
``expert_parallel`` times the tokens of one group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.costmodel.offload import OffloadPlan
from simulator.costmodel.quant import (
    check_kv_dtype,
    resolve_weight_formats,
    weight_bytes,
    weight_bytes_for_layers,
    weight_bytes_per_gpu,
)
from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype, dtype_bytes
from simulator.specs.gpu import GpuSpec
from simulator.specs.model import ModelSpec

#: Memory taken by the CUDA context, cuBLAS/NCCL handles and captured CUDA graphs (bytes);
#: ~1 GB on recent CUDA/PyTorch stacks (vLLM reports 0.5-1.5 GB of "non-torch" memory).
RUNTIME_OVERHEAD_BYTES = 1.0e9

#: Index and scale bytes the fused MoE keeps per (token, chosen expert) pair: four int32
#: permutation maps and one float32 routing weight (``fused_moe_workspace_bytes``).
MOE_INDEX_BYTES_PER_PAIR = 5 * 4

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
    """KV tokens the whole replica holds (all expert groups)."""
    fits: bool
    model_name: str = ""
    gpu_name: str = ""
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.9
    pipeline_parallel: int = 1
    expert_parallel: int = 1
    weight_formats: str = "bf16"
    kv_dtype: str = "bf16"
    total_weight_bytes: float = 0.0
    """Weights of the whole model in their formats (not sharded)."""
    kv_bytes_per_token: float = 0.0
    """KV-cache bytes of one token over all layers (not sharded)."""
    offloaded_weight_bytes: float = 0.0
    """Weights kept in host memory (offload)."""
    host_bytes_needed: float = 0.0
    """Host memory for offloaded weights and the KV cache of CPU layers at full capacity."""
    host_memory_bytes: float = 0.0
    #: How the KV budget was sized (see the module docstring) and the engine's knob name.
    accounting: str = "gpu_fraction"
    knob: str = "gpu_memory_utilization"
    #: Tokens one sequence must be able to hold for the engine to start (0: no check).
    required_tokens: int = 0

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.expert_parallel

    @property
    def free_bytes_per_gpu(self) -> float:
        """Usable memory left once weights and workspace are placed (the KV budget)."""
        return self.usable_bytes - self.weight_bytes_per_gpu - self.workspace_bytes

    def max_sequences(self, context_tokens: int) -> int:
        """Sequences of ``context_tokens`` whose KV cache fits at once (whole replica)."""
        if context_tokens <= 0:
            raise ValueError(f"context_tokens {context_tokens} must be >= 1")
        return self.max_kv_tokens // context_tokens

    def layout(self) -> str:
        parts = [f"tensor_parallel {self.tensor_parallel}"]
        if self.pipeline_parallel > 1:
            parts.append(f"pipeline_parallel {self.pipeline_parallel}")
        if self.expert_parallel > 1:
            parts.append(f"expert_parallel {self.expert_parallel}")
        return ", ".join(parts)

    def explain(self) -> str:
        """One paragraph: where the memory goes and whether the model fits."""
        gb = 1e9
        need = self.weight_bytes_per_gpu + self.workspace_bytes
        head = (
            f"{self.model_name} on {self.gpu_name} ({self.layout()}): "
            f"weights {self.weight_bytes_per_gpu / gb:.2f} GB + workspace "
            f"{self.workspace_bytes / gb:.2f} GB per GPU = {need / gb:.2f} GB needed; "
            f"{self._budget()}"
        )
        if self.host_bytes_needed > self.host_memory_bytes > 0:
            return (
                f"{head}; offload needs {self.host_bytes_needed / gb:.2f} GB of host memory, "
                f"the host has {self.host_memory_bytes / gb:.2f} GB"
            )
        if not self.fits and self.max_kv_tokens > 0 and self.required_tokens:
            seq_gb = self.required_tokens * self.kv_bytes_per_token_per_gpu / gb
            return (
                f"{head}; KV cache {self.kv_capacity_bytes_per_gpu / gb:.2f} GB = "
                f"{self.max_kv_tokens} tokens, but one sequence of max_model_len "
                f"{self.required_tokens} tokens needs {seq_gb:.2f} GB and the engine refuses "
                f"to start: lower engine.max_model_len to at most {self.max_kv_tokens} or "
                f"raise engine.{self.knob}"
            )
        if not self.fits:
            return (
                f"{head}: does not fit, no room for the KV cache; raise tensor_parallel or "
                f"pipeline_parallel, use a smaller weight dtype, a GPU with more memory or "
                f"a larger engine.{self.knob}"
            )
        return (
            f"{head}; KV cache {self.kv_capacity_bytes_per_gpu / gb:.2f} GB at "
            f"{self.kv_bytes_per_token_per_gpu:.0f} B/token = {self.max_kv_tokens} tokens"
        )

    def _budget(self) -> str:
        """How the engine budgets memory, in words with the numbers."""
        gb, total, f = 1e9, self.gpu_memory_bytes / 1e9, self.gpu_memory_utilization
        if self.accounting == "free_fraction":
            free = self.gpu_memory_bytes - self.weight_bytes_per_gpu - self.workspace_bytes
            return f"{free / gb:.2f} GB of {total:.2f} GB free, {self.knob} {f:g} of it for KV"
        if self.accounting == "static_fraction":
            static = self.gpu_memory_bytes * f / gb
            return f"{self.knob} {f:g} of {total:.2f} GB = {static:.2f} GB for weights and KV"
        return f"usable {self.usable_bytes / gb:.2f} GB ({f:.0%} of {total:.2f} GB)"


def kv_bytes_per_token_per_gpu(
    model: ModelSpec,
    tensor_parallel: int,
    kv_dtype: str,
    *,
    pipeline_parallel: int = 1,
    layers_on_device: int | None = None,
) -> float:
    """KV-cache bytes one token takes on one GPU (KV heads replicate when TP exceeds them;
    the heaviest stage holds ⌈layers / stages⌉ layers)."""
    layers = math.ceil(model.num_layers / pipeline_parallel)
    if layers_on_device is not None:
        layers = min(layers, layers_on_device)
    if model.uses_mla:  # the latent cache is replicated on every rank
        return model.kv_bytes_per_token(kv_dtype) * layers / model.num_layers
    kv_heads = max(1, math.ceil(model.num_kv_heads / tensor_parallel))
    return 2 * kv_heads * model.head_dim * layers * dtype_bytes(kv_dtype)


def workspace_bytes(
    model: ModelSpec,
    tensor_parallel: int,
    activation_dtype: str,
    max_num_batched_tokens: int,
    expert_parallel: int = 1,
    moe_chunk_tokens: int | None = None,
) -> float:
    """Peak activation memory of the largest step plus runtime overhead (bytes per GPU).

    ``max_num_batched_tokens``: the tokens of one expert group's step; ``moe_chunk_tokens``:
    the most tokens one routed-expert call takes (None: the whole step). Live at the peak:
    each token's residual, normed input and QKV, plus the larger of a dense MLP's buffers and
    a routed-expert layer's (``fused_moe_workspace_bytes``), plus the sampler's logits."""
    ab = dtype_bytes(activation_dtype)
    tp = tensor_parallel
    tokens = max_num_batched_tokens
    per_token = 2 * model.hidden_size + (model.q_dim + 2 * model.kv_dim) / tp
    dense_mlp = 0.0
    if not model.is_moe or model.num_moe_layers() < model.num_layers:
        dense_mlp = tokens * 3 * model.intermediate_size / tp * ab
    moe_rows = tokens * expert_parallel
    if moe_chunk_tokens is not None:
        moe_rows = min(moe_rows, moe_chunk_tokens)
    moe = fused_moe_workspace_bytes(model, tp, ab, moe_rows)
    logits = min(tokens, SAMPLER_ROWS) * model.vocab_size / tp * 4
    return tokens * per_token * ab + max(dense_mlp, moe) + logits + RUNTIME_OVERHEAD_BYTES


def fused_moe_workspace_bytes(
    model: ModelSpec, tensor_parallel: int, activation_bytes: float, rows: int
) -> float:
    """Bytes one GPU's routed-expert layer holds for ``rows`` tokens (0 for a dense model).

    With attention data parallelism every expert group's tokens reach each GPU's MoE layer
    (all-gathered before it, reduce-scattered after), so ``rows`` is the whole replica's
    step. The buffers follow TensorRT-LLM's fused MoE (``CutlassMoeFCRunner::
    getWorkspaceDeviceBufferSizes``, cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm/
    moe_kernels.cu), which sizes them for every (token, chosen expert) pair whatever share
    lands on this GPU's experts: the permuted input or the second GEMM's output (``hidden``
    each), overlapped with the first GEMM's gated output (``2 × intermediate``), plus four int
    index arrays and a float scale; beside them the gathered input and the combined output."""
    if not model.is_moe:
        return 0.0
    h = model.hidden_size
    inter = (model.moe_intermediate_size or model.intermediate_size) / tensor_parallel
    pairs = rows * model.experts_per_token
    per_pair = activation_bytes * (h + max(2 * inter, h)) + MOE_INDEX_BYTES_PER_PAIR
    return pairs * per_pair + rows * 2 * h * activation_bytes


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
    pipeline_parallel: int = 1,
    expert_parallel: int = 1,
    attention_dtype: str | None = None,
    lm_head_dtype: str | None = None,
    offload: OffloadPlan | None = None,
    accounting: str = "gpu_fraction",
    knob: str = "gpu_memory_utilization",
    required_tokens: int = 0,
    moe_chunk_tokens: int | None = None,
    draft: ModelSpec | None = None,
    draft_weight_dtype: str = "bf16",
) -> MemoryPlan:
    """Budget the most loaded GPU of a TP × PP × EP replica. ``gpu_memory_utilization`` is
    the engine's memory fraction under ``accounting`` (its knob: ``knob``);
    ``required_tokens``: tokens one sequence must fit for the engine to start (0: none);
    ``moe_chunk_tokens``: the most tokens one routed-expert call takes (None: all);
    ``draft``: a speculative draft model on the same GPUs (``draft_weight_dtype``), whose
    weights and per-token KV cache (its layers of each block) come out of the same budget."""
    layout = (tensor_parallel, pipeline_parallel, expert_parallel)
    _check_inputs(gpu_memory_utilization, *layout, activation_dtype)
    kv_dtype = check_kv_dtype(kv_dtype)
    formats = resolve_weight_formats(weight_dtype, attention_dtype, lm_head_dtype)
    layers_on_gpu, offloaded = _offloaded_weights(model, formats, offload)
    names = ("tensor_parallel", "pipeline_parallel", "expert_parallel")
    shards = dict(zip(names, layout, strict=True))
    weights = weight_bytes_per_gpu(model, formats, **shards, layers_on_device=layers_on_gpu)
    draft_per_token = 0.0
    if draft is not None:
        draft_formats = resolve_weight_formats(draft_weight_dtype, None, None)
        weights += weight_bytes_per_gpu(draft, draft_formats, tensor_parallel=tensor_parallel)
        draft_per_token = kv_bytes_per_token_per_gpu(draft, tensor_parallel, kv_dtype)
    local_tokens = math.ceil(max_num_batched_tokens / expert_parallel)
    workspace = workspace_bytes(
        model, tensor_parallel, activation_dtype, local_tokens, expert_parallel, moe_chunk_tokens
    )
    usable, kv_capacity = kv_budget(
        gpu.memory_bytes, weights, workspace, gpu_memory_utilization, accounting
    )
    per_token, max_tokens, host = _kv_tokens(
        model, kv_dtype, layout, offload, kv_capacity, offloaded, draft_per_token
    )
    host_needed = host.needed + host.per_token * max_tokens
    fits = weights + workspace <= usable and max_tokens > 0 and max_tokens >= required_tokens
    if host.memory and host_needed > host.memory:
        fits = False
    return MemoryPlan(
        gpu_memory_bytes=gpu.memory_bytes,
        usable_bytes=usable,
        weight_bytes_per_gpu=weights,
        workspace_bytes=workspace,
        kv_capacity_bytes_per_gpu=kv_capacity,
        kv_bytes_per_token_per_gpu=per_token,
        max_kv_tokens=max_tokens,
        fits=fits,
        model_name=model.name if draft is None else f"{model.name} + draft {draft.name}",
        gpu_name=gpu.name,
        gpu_memory_utilization=gpu_memory_utilization,
        **shards,
        weight_formats=formats.describe(),
        kv_dtype=kv_dtype,
        total_weight_bytes=weight_bytes(model, formats).total,
        kv_bytes_per_token=model.kv_bytes_per_token(kv_dtype),
        offloaded_weight_bytes=offloaded,
        host_bytes_needed=host_needed,
        host_memory_bytes=host.memory,
        accounting=accounting,
        knob=knob,
        required_tokens=required_tokens,
    )


def kv_budget(
    memory: float, weights: float, workspace: float, fraction: float, accounting: str
) -> tuple[float, float]:
    """(memory the engine lets weights, workspace and KV use; bytes left for the KV cache)
    under ``accounting`` (see the module docstring)."""
    if accounting == "gpu_fraction":
        usable = memory * fraction
        return usable, max(0.0, usable - weights - workspace)
    if accounting == "free_fraction":
        return memory, max(0.0, fraction * (memory - weights - workspace))
    if accounting == "static_fraction":
        static = memory * fraction
        return memory, max(0.0, static - weights)
    raise UserError(
        f"memory accounting {accounting!r}; known: gpu_fraction, free_fraction, static_fraction"
    )


def _check_inputs(fraction: float, tp: int, pp: int, ep: int, activation_dtype: str) -> None:
    try:
        canonical_dtype(activation_dtype)
    except ValueError as exc:
        raise UserError(f"activation_dtype: {exc}") from None
    if not 0 < fraction <= 1:
        raise UserError(f"gpu_memory_utilization: {fraction} must be in (0, 1]")
    for name, value in (
        ("tensor_parallel", tp),
        ("pipeline_parallel", pp),
        ("expert_parallel", ep),
    ):
        if value < 1:
            raise UserError(f"{name}: {value} must be >= 1")


def _offloaded_weights(
    model: ModelSpec, formats, offload: OffloadPlan | None
) -> tuple[int | None, float]:
    """(decoder layers kept on the GPU, None without offload; weight bytes in host memory)."""
    if offload is None:
        return None, 0.0
    if not 0 <= offload.gpu_layers <= model.num_layers:
        raise UserError(
            f"offload.gpu_layers: {offload.gpu_layers} must be within 0..{model.num_layers}"
        )
    layers_on_gpu = offload.gpu_layers
    offloaded = weight_bytes_for_layers(model, formats, model.num_layers - layers_on_gpu)
    if layers_on_gpu == 0:  # embedding and LM head run on the host too
        parts = weight_bytes(model, formats)
        offloaded += parts.embedding + parts.lm_head
    return layers_on_gpu, offloaded


def _kv_tokens(
    model: ModelSpec,
    kv_dtype: str,
    layout: tuple[int, int, int],
    offload: OffloadPlan | None,
    kv_capacity: float,
    offloaded: float,
    draft_per_token: float = 0.0,
) -> tuple[float, int, _HostBudget]:
    """(KV bytes per token per GPU, KV tokens the replica holds, host memory budget);
    ``draft_per_token``: a draft model's KV bytes per token per GPU, held beside."""
    tp, pp, ep = layout
    # Streamed layers still keep their KV cache on the GPU; CPU layers keep it in host memory.
    kv_layers = offload.gpu_layers if offload is not None and offload.mode == "cpu" else None
    per_token = draft_per_token + kv_bytes_per_token_per_gpu(
        model, tp, kv_dtype, pipeline_parallel=pp, layers_on_device=kv_layers
    )
    gpu_tokens = int(kv_capacity // per_token) * ep if per_token > 0 else None
    host = _host_budget(model, kv_dtype, offload, offloaded, gpu_tokens)
    return per_token, min(t for t in (gpu_tokens, host.tokens) if t is not None), host


@dataclass(frozen=True)
class _HostBudget:
    memory: float
    needed: float
    per_token: float
    tokens: int | None


def _host_budget(
    model: ModelSpec,
    kv_dtype: str,
    offload: OffloadPlan | None,
    offloaded: float,
    gpu_tokens: int | None,
) -> _HostBudget:
    """Host memory of offloaded weights, and the KV tokens that CPU layers can keep there."""
    if offload is None:
        return _HostBudget(0.0, 0.0, 0.0, None)
    memory = offload.host.memory_bytes if offload.host else 0.0
    cpu_layers = model.num_layers - offload.gpu_layers
    if offload.mode != "cpu" or not cpu_layers:
        return _HostBudget(memory, offloaded, 0.0, None)
    # CPU layers keep their KV cache in host memory, next to their weights.
    per_token = model.kv_bytes_per_token(kv_dtype) * cpu_layers / model.num_layers
    tokens = None
    if memory:
        tokens = int(max(0.0, memory - offloaded) // per_token)
    elif gpu_tokens is None:
        raise UserError("offload.host: every layer on the CPU needs a host device spec")
    return _HostBudget(memory, offloaded, per_token, tokens)
