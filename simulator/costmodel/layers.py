"""Per-model constants of a forward step: the ops of one decoder layer, sharded for TP.

Everything here is computed once per (model, tensor_parallel, dtypes) so that pricing a
step only multiplies token counts by precomputed coefficients.

The op sequence mirrors a Llama-style layer as run by PyTorch reference code and by
serving engines: RMSNorm → fused QKV GEMM → rotary → KV-cache write → attention → output
GEMM → residual add → RMSNorm → fused gate+up GEMM → SiLU×up → down GEMM → residual add.
Engines that run the residual add inside the norm, or rotary and the KV-cache write inside
the attention kernel, launch those kernels no more (``CostParams.residual_add_kernels``,
``rope_kv_write_kernels``): their traffic stays, their launch latency goes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.costmodel.quant import WeightFormats
from simulator.specs.dtypes import dtype_bytes
from simulator.specs.model import ModelSpec

#: Formats priced with ``gemm_efficiency_8bit``.
EIGHT_BIT_OR_LESS = ("fp8", "int8", "int4", "fp4")


@dataclass(frozen=True, slots=True)
class GemmOp:
    """``x[tokens, k] @ w[k, n]`` once per layer that has it (sizes per GPU)."""

    name: str
    k: int
    n: int
    layers: int
    weight_bytes: float  # per layer instance
    act_bytes_per_token: float  # input row + output row
    #: MoE experts: number of routed experts per layer and experts each token picks (0 = dense).
    experts: int = 0
    experts_per_token: int = 0
    #: Storage format of the weights (sets bytes, compute path and dequantisation).
    dtype: str = "bf16"
    #: Expert parallelism: routed experts held by this GPU's expert group.
    local_experts: int = 0
    #: The kernel that produces the GEMM's input: "norm" (RMSNorm), "attention" (the
    #: attention output) or "activation" (SiLU × up); engines fuse an FP8 cast into some.
    input_from: str = "norm"

    @property
    def flops_per_token(self) -> float:
        """FLOPs per token over all experts it picks (every expert group together)."""
        per_expert = 2.0 * self.k * self.n
        return per_expert * (self.experts_per_token if self.experts else 1)

    @property
    def is_expert(self) -> bool:
        return self.experts > 0

    def experts_touched(self, tokens: int) -> float:
        """Expected distinct experts of this GPU's group hit by ``tokens`` tokens.

        Each token picks ``experts_per_token`` of ``experts`` (uniform routing), so one expert
        is missed by all of them with probability ``(1 - k/E)^tokens``: a batch touches
        ``E·(1 - (1 - k/E)^B)`` experts in expectation."""
        miss = (1.0 - self.experts_per_token / self.experts) ** tokens
        return (self.local_experts or self.experts) * (1.0 - miss)

    def weight_bytes_touched(self, tokens: int) -> float:
        """Weight bytes read for ``tokens`` rows: all of a dense GEMM, touched experts of MoE."""
        if not self.experts:
            return self.weight_bytes
        return self.weight_bytes * self.experts_touched(tokens)


@dataclass(frozen=True, slots=True)
class ElementwiseOp:
    """A memory-bound kernel whose traffic grows with tokens (norm, rotary, add, ...)."""

    name: str
    layers: int
    bytes_per_token: float
    fixed_bytes: float = 0.0
    #: The kernel an engine may run it inside: "norm" for the residual add, "attention" for
    #: rotary and the KV-cache write ("" for none; ``GemmPricer._kernels_per_op``).
    fusable_into: str = ""


@dataclass(frozen=True)
class LayerPlan:
    """The ops of a model's step, with sizes per GPU under tensor parallelism."""

    gemms: tuple[GemmOp, ...]
    elementwise: tuple[ElementwiseOp, ...]
    lm_head: GemmOp
    num_layers: int
    hidden_size: int
    heads_per_gpu: int
    #: KV heads held per GPU (replicated when TP exceeds them; 1 for MLA's latent cache).
    kv_heads_per_gpu: int
    qk_head_dim: int
    v_head_dim: int
    #: Per-head widths of decode attention; differ from prefill's for MLA, whose decode runs
    #: in the weight-absorbed form over the latent (kv_lora_rank + rope) cache.
    decode_qk_head_dim: int
    decode_v_head_dim: int
    kv_bytes_per_token_per_layer: float  # per GPU
    q_bytes_per_token: float  # query + output rows of attention, per GPU
    activation_bytes: float  # bytes per activation element
    allreduce_bytes_per_token: float  # one all-reduce message per token
    allreduces_per_layer: int
    compute_dtype: str
    small_kernels_per_layer: int  # kernels other than attention per layer


def compute_dtype(weight_dtype: str, activation_dtype: str) -> str:
    """Tensor-core format of the GEMMs: the wider of weights and activations (W4A16 → bf16)."""
    w, a = dtype_bytes(weight_dtype), dtype_bytes(activation_dtype)
    return weight_dtype if w >= a else activation_dtype


def split_layers(model: ModelSpec, layers: int) -> tuple[int, int]:
    """(dense, MoE) decoder layers among ``layers`` of the model's layers, in proportion
    (rounded up): the heaviest pipeline stage, or the layers kept on one device."""
    moe_total = model.num_moe_layers()
    dense_total = model.num_layers - moe_total
    if layers >= model.num_layers:
        return dense_total, moe_total
    moe = math.ceil(moe_total * layers / model.num_layers)
    return max(0, min(dense_total, layers - moe)), moe


@dataclass(frozen=True)
class _GemmFactory:
    """Builds the sharded GEMM ops of one device: sizes, bytes and local experts."""

    activation_bytes: float
    expert_parallel: int
    default_dtype: str

    def __call__(
        self,
        name: str,
        k: int,
        n: int,
        n_layers: int,
        experts: int = 0,
        top_k: int = 0,
        dtype: str | None = None,
        input_from: str = "norm",
    ) -> GemmOp:
        dtype = dtype or self.default_dtype
        local = math.ceil(experts / self.expert_parallel) if experts else 0
        wbytes = k * n * dtype_bytes(dtype)
        ab = self.activation_bytes
        return GemmOp(
            name, k, n, n_layers, wbytes, (k + n) * ab, experts, top_k, dtype, local, input_from
        )


@dataclass(frozen=True)
class _Attention:
    """Attention of one device: its projections and the sizes of its heads and KV cache."""

    gemms: tuple[GemmOp, ...]
    heads: int
    kv_heads: int
    qk_dim: int
    v_dim: int
    decode_qk: int
    decode_v: int
    kv_per_token_layer: float
    rope_width: int


def _attention(
    model: ModelSpec, tp: int, layers: int, kv_bytes: float, gemm: _GemmFactory, dtype: str
) -> _Attention:
    h = model.hidden_size
    heads = max(1, model.num_attention_heads // tp)
    if model.uses_mla:
        qk_dim = model.qk_nope_head_dim + model.qk_rope_head_dim
        v_dim = model.v_head_dim
        # Projections as one GEMM of the same parameter count; latent KV is replicated.
        attn_params = model.attention_params_per_layer()
        out_params = model.num_attention_heads * v_dim * h
        qkv_n = math.ceil((attn_params - out_params) / h / tp)
        o_k = model.num_attention_heads * v_dim // tp
        return _Attention(
            (
                gemm("qkv_proj", h, qkv_n, layers, dtype=dtype),
                gemm("o_proj", o_k, h, layers, dtype=dtype, input_from="attention"),
            ),
            heads,
            1,
            qk_dim,
            v_dim,
            model.kv_lora_rank + model.qk_rope_head_dim,
            model.kv_lora_rank,
            (model.kv_lora_rank + model.qk_rope_head_dim) * kv_bytes,
            (heads + 1) * model.qk_rope_head_dim,
        )
    d = model.head_dim
    kv_heads = max(1, math.ceil(model.num_kv_heads / tp))  # replicated when tp > kv heads
    qkv_n = heads * d + 2 * kv_heads * d
    return _Attention(
        (
            gemm("qkv_proj", h, qkv_n, layers, dtype=dtype),
            gemm("o_proj", heads * d, h, layers, dtype=dtype, input_from="attention"),
        ),
        heads,
        kv_heads,
        d,
        d,
        d,
        d,
        2 * kv_heads * d * kv_bytes,
        (heads + kv_heads) * d,
    )


def _mlp(model: ModelSpec, tp: int, layers: int, gemm: _GemmFactory) -> tuple[list[GemmOp], int]:
    """The MLP GEMMs (dense layers, router, routed and shared experts) and the width of
    the activation between them."""
    h = model.hidden_size
    dense_layers, moe_layers = split_layers(model, layers)
    mlp_factor = 2 if model.gated_mlp else 1
    inter = model.intermediate_size // tp
    gemms: list[GemmOp] = []
    if dense_layers:
        gemms.append(gemm("gate_up_proj", h, mlp_factor * inter, dense_layers))
        gemms.append(gemm("down_proj", inter, h, dense_layers, input_from="activation"))
    act_width = inter if dense_layers else 0
    if model.is_moe and moe_layers:
        e_inter = (model.moe_intermediate_size or model.intermediate_size) // tp
        experts, top_k = model.num_experts, model.experts_per_token
        gemms.append(gemm("router", h, experts, moe_layers, dtype="bf16"))
        gemms.append(gemm("experts_gate_up", h, mlp_factor * e_inter, moe_layers, experts, top_k))
        gemms.append(
            gemm("experts_down", e_inter, h, moe_layers, experts, top_k, input_from="activation")
        )
        if model.num_shared_experts:
            s_inter = e_inter * model.num_shared_experts
            gemms.append(gemm("shared_gate_up", h, mlp_factor * s_inter, moe_layers))
            gemms.append(gemm("shared_down", s_inter, h, moe_layers, input_from="activation"))
        act_width = max(act_width, e_inter * top_k)
    return gemms, act_width


def _elementwise(
    model: ModelSpec,
    layers: int,
    ab: float,
    kvb: float,
    attn: _Attention,
    act_width: int,
    lm_head: bool,
) -> tuple[ElementwiseOp, ...]:
    h = model.hidden_size
    mlp_factor = 2 if model.gated_mlp else 1
    kv = attn.kv_per_token_layer
    return (
        # Read the hidden row, write the normed row (weights are negligible).
        ElementwiseOp("norms", 2 * layers, 2 * h * ab, h * 2.0),
        ElementwiseOp("residual_adds", 2 * layers, 3 * h * ab, fusable_into="norm"),
        # Rotary reads and writes query and key rows.
        ElementwiseOp("rotary", layers, 2 * attn.rope_width * ab, fusable_into="attention"),
        ElementwiseOp("kv_cache_write", layers, kv + kv / kvb * ab, fusable_into="attention"),
        # SiLU(gate) × up: read 2 rows of the intermediate width, write one.
        ElementwiseOp("activation", layers, (mlp_factor + 1) * act_width * ab),
        ElementwiseOp("embedding", 1, 2 * h * ab),
        ElementwiseOp("final_norm", 1 if lm_head else 0, 2 * h * ab, h * 2.0),
    )


def build_layer_plan(
    model: ModelSpec,
    *,
    tensor_parallel: int,
    weight_dtype: str,
    kv_dtype: str,
    activation_dtype: str,
    formats: WeightFormats | None = None,
    expert_parallel: int = 1,
    layers: int | None = None,
    lm_head: bool = True,
) -> LayerPlan:
    """Shard every op of ``model`` over ``tensor_parallel`` GPUs and size it in bytes.

    ``formats`` gives the storage dtype of attention, MLP and LM head (default: all
    ``weight_dtype``). ``expert_parallel`` groups share the routed experts. ``layers``: the
    decoder layers this device runs (a pipeline stage, or the part kept on a GPU when the
    rest is offloaded); ``lm_head``: whether it also runs the LM head."""
    tp = tensor_parallel
    if formats is None:
        formats = WeightFormats(weight_dtype, weight_dtype, weight_dtype, weight_dtype)
    ab, kvb = dtype_bytes(activation_dtype), dtype_bytes(kv_dtype)
    h = model.hidden_size
    layers = model.num_layers if layers is None else layers
    gemm = _GemmFactory(ab, expert_parallel, formats.mlp)
    attn = _attention(model, tp, layers, kvb, gemm, formats.attention)
    mlp, act_width = _mlp(model, tp, layers, gemm)
    gemms = [*attn.gemms, *mlp]
    head = gemm(
        "lm_head", h, math.ceil(model.vocab_size / tp), 1 if lm_head else 0, dtype=formats.lm_head
    )
    small_kernels = len(gemms) + 2 + 2 + 3  # GEMMs, norms, adds, rotary, kv write, activation
    return LayerPlan(
        gemms=tuple(gemms),
        elementwise=_elementwise(model, layers, ab, kvb, attn, act_width, lm_head),
        lm_head=head,
        num_layers=layers,
        hidden_size=h,
        heads_per_gpu=attn.heads,
        kv_heads_per_gpu=attn.kv_heads,
        qk_head_dim=attn.qk_dim,
        v_head_dim=attn.v_dim,
        decode_qk_head_dim=attn.decode_qk,
        decode_v_head_dim=attn.decode_v,
        kv_bytes_per_token_per_layer=attn.kv_per_token_layer,
        q_bytes_per_token=attn.heads * (attn.qk_dim + attn.v_dim) * ab,
        activation_bytes=ab,
        allreduce_bytes_per_token=h * ab,
        allreduces_per_layer=2 if tp > 1 else 0,
        compute_dtype=compute_dtype(weight_dtype, activation_dtype),
        small_kernels_per_layer=small_kernels,
    )
