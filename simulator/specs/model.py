"""Transformer decoder architecture, as read from a Hugging Face ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.specs.dtypes import dtype_bytes


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a decoder-only transformer (dense; MoE and MLA fields optional).

    All sizes are element counts; bytes follow from a dtype.
    """

    name: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 131072
    #: Gated MLP (gate + up + down, SwiGLU) as in Llama; False for a plain up/down MLP.
    gated_mlp: bool = True
    # --- mixture of experts (0 experts = dense) ---
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    #: Leading layers that keep a dense MLP in an MoE model (DeepSeek's first_k_dense_replace).
    first_dense_layers: int = 0
    #: Group-limited routing (DeepSeek ``n_group`` / ``topk_group``): routed experts form
    #: ``expert_groups`` groups and a token's experts come from at most
    #: ``expert_groups_per_token`` of them (0: no limit).
    expert_groups: int = 0
    expert_groups_per_token: int = 0
    # --- multi-head latent attention (kv_lora_rank 0 = standard attention) ---
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # --- sliding-window attention (0 = every layer attends to the whole context) ---
    #: Window length in tokens of the layers that use one (Mistral v0.1, gpt-oss).
    sliding_window: int = 0
    #: How many layers use the window (gpt-oss alternates: half of them).
    sliding_window_layers: int = 0
    # --- the published checkpoint ---
    #: Multi-token-prediction modules of the checkpoint (``num_nextn_predict_layers``), the
    #: draft of ``speculative: {method: mtp}``; 0: the model has none.
    mtp_layers: int = 0
    #: Weight format of the model's own checkpoint when it is quantised ("" = bf16/fp16):
    #: "fp8_block" (DeepSeek-V3/R1: block-scaled FP8), "mxfp4" (gpt-oss: MXFP4 experts).
    native_weight_dtype: str = ""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def layout_errors(
        self, tensor_parallel: int = 1, pipeline_parallel: int = 1, expert_parallel: int = 1
    ) -> list[str]:
        """Why this model cannot be split this way, one message per broken rule, each
        starting with the parallel size it concerns (empty: the layout is possible)."""
        errors = []
        if self.num_attention_heads % tensor_parallel:
            errors.append(
                f"tensor_parallel: {tensor_parallel} does not divide "
                f"{self.num_attention_heads} attention heads of {self.name}"
            )
        if pipeline_parallel > self.num_layers:
            errors.append(
                f"pipeline_parallel: {pipeline_parallel} exceeds the {self.num_layers} "
                f"layers of {self.name}"
            )
        if expert_parallel > 1 and not self.is_moe:
            errors.append(
                f"expert_parallel: {expert_parallel} needs a mixture-of-experts model; "
                f"{self.name} is dense"
            )
        elif expert_parallel > max(self.num_experts, 1):
            errors.append(
                f"expert_parallel: {expert_parallel} exceeds the {self.num_experts} experts "
                f"of {self.name}"
            )
        return errors

    @property
    def uses_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def q_dim(self) -> int:
        """Width of the query projection output (may exceed hidden_size, e.g. Qwen3)."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of one of K or V per token per layer (grouped-query attention)."""
        return self.num_kv_heads * self.head_dim

    def kv_elements_per_token(self) -> int:
        """KV-cache elements stored per token over all layers."""
        if self.uses_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * self.num_layers
        return 2 * self.kv_dim * self.num_layers

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes per token over all layers (e.g. 131072 for Llama-3.1-8B in bf16)."""
        return self.kv_elements_per_token() * dtype_bytes(kv_dtype)

    def kv_bytes_for_context(self, context_tokens: int, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes one sequence of ``context_tokens`` needs when sliding-window layers
        keep only their last ``sliding_window`` tokens (equals tokens x kv_bytes_per_token
        for a model without a window)."""
        if self.sliding_window <= 0 or self.sliding_window_layers <= 0:
            return context_tokens * self.kv_bytes_per_token(kv_dtype)
        per_layer = self.kv_bytes_per_token(kv_dtype) / self.num_layers
        full_layers = self.num_layers - self.sliding_window_layers
        windowed_tokens = min(context_tokens, self.sliding_window)
        return per_layer * (
            full_layers * context_tokens + self.sliding_window_layers * windowed_tokens
        )

    # --- parameter counts (elements) ---
    def attention_params_per_layer(self) -> int:
        h = self.hidden_size
        if self.uses_mla:
            nope, rope, v = self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim
            heads = self.num_attention_heads
            q = (
                h * self.q_lora_rank + self.q_lora_rank * heads * (nope + rope)
                if self.q_lora_rank
                else h * heads * (nope + rope)
            )
            kv_down = h * (self.kv_lora_rank + rope)
            kv_up = self.kv_lora_rank * heads * (nope + v)
            out = heads * v * h
            return q + kv_down + kv_up + out
        return h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h

    def dense_mlp_params(self, intermediate: int | None = None) -> int:
        inter = self.intermediate_size if intermediate is None else intermediate
        return (3 if self.gated_mlp else 2) * self.hidden_size * inter

    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    def expert_params(self) -> int:
        """Parameters of one routed expert's MLP."""
        return self.dense_mlp_params(self.moe_intermediate_size or self.intermediate_size)

    def mlp_params_total(self) -> int:
        dense_layers = self.num_layers - self.num_moe_layers()
        total = dense_layers * self.dense_mlp_params()
        if self.is_moe:
            per_layer = (self.num_experts + self.num_shared_experts) * self.expert_params()
            router = self.hidden_size * self.num_experts
            total += self.num_moe_layers() * (per_layer + router)
        return total

    def embedding_params(self) -> int:
        """Input embedding plus LM head (counted once when tied)."""
        emb = self.vocab_size * self.hidden_size
        return emb if self.tie_word_embeddings else 2 * emb

    def param_count(self) -> int:
        """Total parameters (elements), norms included."""
        norms = (2 * self.num_layers + 1) * self.hidden_size
        attn = self.num_layers * self.attention_params_per_layer()
        return attn + self.mlp_params_total() + self.embedding_params() + norms

    def active_param_count(self) -> int:
        """Parameters touched per token (routed experts counted top-k times)."""
        if not self.is_moe:
            return self.param_count()
        inactive = self.num_moe_layers() * (self.num_experts - self.experts_per_token)
        return self.param_count() - inactive * self.expert_params()

    def weight_bytes(self, weight_dtype: str = "bf16") -> float:
        """Bytes of all weights stored in ``weight_dtype``."""
        return self.param_count() * dtype_bytes(weight_dtype)
