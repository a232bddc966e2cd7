"""Weight formats per part of a model and the bytes each part takes on one GPU.

A quantised checkpoint rarely stores every tensor in its headline format. The conventions,
the same for every engine profile (each engine loads the same checkpoints), with their
sources:

* FP8 (``fp8``) and NVFP4 (``fp4``): every linear layer but the LM head is quantised,
  attention projections included. ModelOpt, TensorRT-LLM's quantiser, disables only
  ``*lm_head*``; vLLM's FP8 ("all Linear modules (except for the final lm_head)", docs.vllm.ai
  quantization/fp8) and llm-compressor checkpoints do the same, and SGLang loads those.
  Meta's row-wise FP8 releases (Llama-3.1-405B-FP8) keep attention in bf16 ("we do not
  quantize parameters in the self-attention layers", Llama 3 paper §6.2, arXiv 2407.21783):
  give ``attention_dtype: bf16`` for them.
* Block-scaled FP8 (``fp8_block``, DeepSeek-V3/R1's native checkpoint): every linear layer,
  attention projections included; embeddings, LM head and router in bf16 (DeepSeek-V3
  report §3.3; its config.json ``quantization_config.weight_block_size`` [128, 128]).
* MXFP4 (``mxfp4``, gpt-oss's native checkpoint): the MoE experts only; attention, router,
  embeddings and LM head stay bf16 (its config.json ``modules_to_not_convert``).
* AWQ/GPTQ int4 and int8 (SmoothQuant) quantise every linear layer but the LM head.
* GGUF files mix types inside a layer; their bits per weight are whole-file averages, so
  every part takes the same average here.

A model whose published checkpoint is quantised runs in that format unless the scenario
says otherwise, and ``fp8`` for it means its own FP8 checkpoint (``checkpoint_dtype``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.errors import UserError
from simulator.specs.dtypes import KV_DTYPES, canonical_dtype, dtype_bytes, is_gguf
from simulator.specs.model import ModelSpec

#: Formats whose checkpoints keep attention projections in bf16 by default.
MLP_ONLY_FORMATS = ("mxfp4",)
UNQUANTISED = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class WeightFormats:
    """Storage dtype of each part of the weights."""

    mlp: str
    """Dense MLPs, routed and shared experts."""
    attention: str
    """Attention projections (QKV / MLA projections and output)."""
    lm_head: str
    embedding: str

    def describe(self) -> str:
        parts = {"mlp": self.mlp, "attention": self.attention, "lm_head": self.lm_head}
        if len(set(parts.values())) == 1:
            return self.mlp
        return ", ".join(f"{k} {v}" for k, v in parts.items())


def _dtype(field: str, value: str) -> str:
    try:
        return canonical_dtype(value)
    except ValueError as exc:
        raise UserError(f"{field}: {exc}") from None


def resolve_weight_formats(
    weight_dtype: str, attention_dtype: str | None = None, lm_head_dtype: str | None = None
) -> WeightFormats:
    """Formats of each part for a checkpoint in ``weight_dtype`` (see the module docstring)."""
    w = _dtype("weight_dtype", weight_dtype)
    if w in UNQUANTISED or is_gguf(w):
        attn, head = w, w
    elif w in MLP_ONLY_FORMATS:
        attn, head = "bf16", "bf16"
    else:  # fp8, fp8_block, fp4, int8, int4: every linear layer but the LM head
        attn, head = w, "bf16"
    if attention_dtype is not None:
        attn = _dtype("attention_dtype", attention_dtype)
    if lm_head_dtype is not None:
        head = _dtype("lm_head_dtype", lm_head_dtype)
    embedding = w if is_gguf(w) or w in UNQUANTISED else "bf16"
    return WeightFormats(mlp=w, attention=attn, lm_head=head, embedding=embedding)


def checkpoint_dtype(model: ModelSpec, weight_dtype: str, explicit: bool = True) -> str:
    """The weight format a scenario runs ``model`` in: its native quantised checkpoint when
    ``weight_dtype`` was not given (``explicit`` False), and that checkpoint when the given
    format names its family (``fp8`` for a block-scaled FP8 checkpoint)."""
    native = model.native_weight_dtype
    if not native:
        return weight_dtype
    if not explicit:
        return native
    if native == "fp8_block" and _dtype("weight_dtype", weight_dtype) == "fp8":
        return native
    return weight_dtype


def check_kv_dtype(kv_dtype: str) -> str:
    """Canonical KV-cache dtype, or a ``UserError`` listing the allowed ones."""
    kv = _dtype("kv_dtype", kv_dtype)
    if kv not in KV_DTYPES:
        raise UserError(f"kv_dtype: {kv_dtype!r} is not a KV-cache format; allowed: {KV_DTYPES}")
    return kv


@dataclass(frozen=True)
class WeightBytes:
    """Bytes of each part of a model's weights (whole model, not sharded)."""

    attention: float
    dense_mlp: float
    routed_experts: float
    shared_experts: float
    router: float
    embedding: float
    lm_head: float
    norms: float

    @property
    def layer_bytes(self) -> float:
        """Everything inside the decoder layers."""
        return (
            self.attention
            + self.dense_mlp
            + self.routed_experts
            + self.shared_experts
            + self.router
            + self.norms
        )

    @property
    def total(self) -> float:
        return self.layer_bytes + self.embedding + self.lm_head


def weight_bytes(model: ModelSpec, formats: WeightFormats) -> WeightBytes:
    """Bytes of every part of ``model`` stored in ``formats``."""
    moe_layers = model.num_moe_layers()
    dense_layers = model.num_layers - moe_layers
    emb = model.vocab_size * model.hidden_size
    return WeightBytes(
        attention=model.num_layers
        * model.attention_params_per_layer()
        * dtype_bytes(formats.attention),
        dense_mlp=dense_layers * model.dense_mlp_params() * dtype_bytes(formats.mlp),
        routed_experts=moe_layers
        * model.num_experts
        * model.expert_params()
        * dtype_bytes(formats.mlp),
        shared_experts=moe_layers
        * model.num_shared_experts
        * model.expert_params()
        * dtype_bytes(formats.mlp),
        router=moe_layers * model.hidden_size * model.num_experts * 2.0,
        embedding=emb * dtype_bytes(formats.embedding),
        lm_head=0.0 if model.tie_word_embeddings else emb * dtype_bytes(formats.lm_head),
        norms=(2 * model.num_layers + 1) * model.hidden_size * 2.0,
    )


def weight_bytes_per_gpu(
    model: ModelSpec,
    formats: WeightFormats,
    *,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    expert_parallel: int = 1,
    layers_on_device: int | None = None,
) -> float:
    """Weight bytes held by the most loaded GPU of a replica.

    Attention, dense MLPs and shared experts are split over the tensor-parallel ranks and
    copied in every expert group (data-parallel attention); routed experts are split over
    tensor × expert ranks; layers over pipeline stages (the heaviest stage holds
    ⌈layers / stages⌉). Embedding and LM head are vocabulary-parallel over the TP ranks, on
    the first and last stage. MLA's small latent projections are counted as sharded too.
    ``layers_on_device``: decoder layers kept on the GPU when the rest is offloaded.
    """
    parts = weight_bytes(model, formats)
    tp, ep = tensor_parallel, expert_parallel
    layers = model.num_layers
    on_device = math.ceil(layers / pipeline_parallel)
    if layers_on_device is not None:
        on_device = min(on_device, layers_on_device)
    per_layer = (
        (parts.attention + parts.dense_mlp + parts.shared_experts) / tp
        + parts.routed_experts / (tp * ep)
        + parts.router
        + parts.norms
    ) / layers
    ends = parts.embedding + parts.lm_head
    if layers_on_device == 0:  # everything runs on the host (llama.cpp -ngl 0)
        ends = 0.0
    elif pipeline_parallel > 1:
        ends = max(parts.embedding, parts.lm_head)
    return per_layer * on_device + ends / tp


def weight_bytes_for_layers(model: ModelSpec, formats: WeightFormats, layers: int) -> float:
    """Bytes of ``layers`` decoder layers (an average layer), nothing sharded."""
    return weight_bytes(model, formats).layer_bytes * layers / model.num_layers
