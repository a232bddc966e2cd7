"""Read a Hugging Face ``config.json`` (as a dict) into a :class:`ModelSpec`.

Supported ``model_type`` values and the fields read from each:

* dense ``llama``, ``mistral``, ``qwen2``, ``qwen3``: hidden_size, num_hidden_layers,
  num_attention_heads, num_key_value_heads (default: num_attention_heads), head_dim
  (default: hidden_size / num_attention_heads), intermediate_size, vocab_size,
  tie_word_embeddings, max_position_embeddings, sliding_window (when in use);
* ``mixtral``: the dense fields plus num_local_experts and num_experts_per_tok (each
  expert is an MLP of intermediate_size);
* ``qwen3_moe`` (and ``qwen2_moe`` without shared experts): num_experts,
  num_experts_per_tok, moe_intermediate_size, decoder_sparse_step, mlp_only_layers;
* ``deepseek_v3`` / ``deepseek_v2``: n_routed_experts, n_shared_experts,
  num_experts_per_tok, moe_intermediate_size, first_k_dense_replace, moe_layer_freq and
  the multi-head latent attention fields kv_lora_rank, q_lora_rank, qk_rope_head_dim,
  qk_nope_head_dim, v_head_dim;
* ``gpt_oss``: num_local_experts, experts_per_token / num_experts_per_tok,
  intermediate_size per expert, layer_types and sliding_window.

Where a model keeps dense MLPs on some layers of an MoE stack, ModelSpec records how many
(``first_dense_layers``), not where: per-layer costs add up the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.errors import UserError
from simulator.specs.model import ModelSpec

DENSE_TYPES = ("llama", "mistral", "qwen2", "qwen3")
MOE_TYPES = ("mixtral", "qwen3_moe", "qwen2_moe", "deepseek_v3", "deepseek_v2", "gpt_oss")
SUPPORTED_MODEL_TYPES = DENSE_TYPES + MOE_TYPES

#: Transformers' class default for max_position_embeddings, used when a config omits it.
_DEFAULT_MAX_POSITIONS: dict[str, int] = {
    "llama": 2048,
    "mistral": 4096 * 32,
    "qwen2": 32768,
    "qwen3": 32768,
    "mixtral": 4096 * 32,
    "qwen3_moe": 32768,
    "qwen2_moe": 32768,
    "deepseek_v3": 4096,
    "deepseek_v2": 2048,
    "gpt_oss": 131072,
}


#: Largest value accepted for a config field (widths, counts, vocabulary) unless listed in
#: ``_FIELD_MAXIMUM``: far above any real model, low enough that sizes stay exact and
#: the memory plan stays finite.
MAX_FIELD_VALUE = 1 << 24
_FIELD_MAXIMUM = {
    "num_hidden_layers": 1 << 16,
    "max_position_embeddings": 1 << 30,
    "sliding_window": 1 << 30,
    "num_local_experts": 1 << 16,
    "num_experts": 1 << 16,
    "n_routed_experts": 1 << 16,
}


class _Fields:
    """Typed access to config fields with errors that name the field and the file."""

    def __init__(self, config: Mapping[str, Any], source: str, model_type: str):
        self.config = config
        self.source = source
        self.model_type = model_type

    def _fail(self, message: str) -> UserError:
        return UserError(f"{self.source}: {message}")

    def int(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        value = self.config.get(key)
        if value is None:
            if default is None:
                raise self._fail(
                    f"field {key!r} is missing (required for model_type {self.model_type!r})"
                )
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(f"field {key!r} must be an integer, got {value!r}")
        maximum = _FIELD_MAXIMUM.get(key, MAX_FIELD_VALUE)
        if not minimum <= value <= maximum:
            shown = f"{value}" if abs(value) < 10**30 else f"a number of {len(str(value))} digits"
            raise self._fail(f"field {key!r} must be from {minimum} to {maximum:,}, got {shown}")
        return value

    def first_int(self, keys: tuple[str, ...], minimum: int = 1) -> int:
        for key in keys:
            if self.config.get(key) is not None:
                return self.int(key, minimum=minimum)
        names = " or ".join(repr(k) for k in keys)
        raise self._fail(f"field {names} is missing (required for model_type {self.model_type!r})")

    def bool(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(f"field {key!r} must be true or false, got {value!r}")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.config.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self._fail(f"field {key!r} must be a list of layer indices, got {value!r}")
        return value


def model_spec_from_hf_config(
    config: Mapping[str, Any], name: str, source: str | None = None
) -> ModelSpec:
    """Build a ModelSpec from the content of a Hugging Face ``config.json``.

    ``name`` becomes ``ModelSpec.name``; ``source`` (default: ``name``) is the file named in
    error messages. Raises :class:`UserError` for an unsupported ``model_type`` or a missing
    or malformed required field.
    """
    where = source or name
    if not isinstance(config, Mapping):
        kind = type(config).__name__
        raise UserError(f"{where}: a config.json must hold a JSON object, got {kind}")
    model_type = config.get("model_type")
    if model_type is None:
        raise UserError(
            f"{where}: field 'model_type' is missing; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UserError(
            f"{where}: model_type {model_type!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    f = _Fields(config, where, model_type)
    common = _common_fields(f)
    if model_type in DENSE_TYPES:
        extra: dict[str, Any] = {}
    elif model_type == "mixtral":
        extra = _mixtral(f, common)
    elif model_type in ("qwen3_moe", "qwen2_moe"):
        extra = _qwen_moe(f, common)
    elif model_type in ("deepseek_v3", "deepseek_v2"):
        extra = _deepseek(f, common)
    else:
        extra = _gpt_oss(f, common)
    common.update(extra)
    spec = ModelSpec(name=name, **common)
    _check_consistency(spec, where)
    return spec


def _common_fields(f: _Fields) -> dict[str, Any]:
    hidden = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    if f.config.get("head_dim") is not None:
        head_dim = f.int("head_dim")
    else:
        if hidden % heads:
            raise f._fail(
                f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}; "
                "give 'head_dim' explicitly"
            )
        head_dim = hidden // heads
    fields: dict[str, Any] = {
        "hidden_size": hidden,
        "num_layers": f.int("num_hidden_layers"),
        "num_attention_heads": heads,
        "num_kv_heads": f.int("num_key_value_heads", default=heads),
        "head_dim": head_dim,
        "intermediate_size": f.int("intermediate_size"),
        "vocab_size": f.int("vocab_size"),
        # Every supported architecture's transformers class defaults to untied embeddings.
        "tie_word_embeddings": f.bool("tie_word_embeddings", False),
        "max_position_embeddings": f.int(
            "max_position_embeddings", default=_DEFAULT_MAX_POSITIONS[f.model_type]
        ),
    }
    fields.update(_sliding_window(f, fields["num_layers"]))
    # Multi-token-prediction modules shipped with the checkpoint (DeepSeek-V3/R1: 1).
    fields["mtp_layers"] = f.int("num_nextn_predict_layers", default=0, minimum=0)
    native = _native_weight_dtype(f.config.get("quantization_config"))
    if native:
        fields["native_weight_dtype"] = native
    return fields


def _native_weight_dtype(quant: Any) -> str:
    """The checkpoint's weight format from ``quantization_config``: block-scaled FP8
    (``quant_method: fp8`` with ``weight_block_size``), per-tensor FP8, or MXFP4."""
    if not isinstance(quant, Mapping):
        return ""
    method = str(quant.get("quant_method", "")).lower()
    if method == "fp8":
        return "fp8_block" if quant.get("weight_block_size") else "fp8"
    return "mxfp4" if method == "mxfp4" else ""


def _sliding_window(f: _Fields, num_layers: int) -> dict[str, int]:
    """Sliding-window attention in use: window size and how many layers use it."""
    window = f.config.get("sliding_window")
    if window is None or f.config.get("use_sliding_window") is False:
        return {}
    window = f.int("sliding_window")
    layer_types = f.config.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        sliding_layers = sum(1 for t in layer_types if t == "sliding_attention")
    else:
        sliding_layers = num_layers
    if window >= f.config.get("max_position_embeddings", window + 1):
        return {}  # a window as long as the context is no window
    return {"sliding_window": window, "sliding_window_layers": sliding_layers}


def _mixtral(f: _Fields, common: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_experts": f.int("num_local_experts"),
        "experts_per_token": f.int("num_experts_per_tok"),
        "moe_intermediate_size": common["intermediate_size"],
    }


def _qwen_moe(f: _Fields, common: dict[str, Any]) -> dict[str, Any]:
    if f.config.get("shared_expert_intermediate_size"):
        raise f._fail(
            "field 'shared_expert_intermediate_size' (a shared expert of its own size) is not "
            "supported; ModelSpec's shared experts have moe_intermediate_size"
        )
    num_layers = common["num_layers"]
    step = f.int("decoder_sparse_step", default=1)
    mlp_only = set(f.int_list("mlp_only_layers"))
    moe_layers = sum(1 for i in range(num_layers) if i not in mlp_only and (i + 1) % step == 0)
    return {
        "num_experts": f.int("num_experts"),
        "experts_per_token": f.int("num_experts_per_tok"),
        "moe_intermediate_size": f.int("moe_intermediate_size"),
        "first_dense_layers": num_layers - moe_layers,
    }


def _deepseek(f: _Fields, common: dict[str, Any]) -> dict[str, Any]:
    num_layers = common["num_layers"]
    first_dense = f.int("first_k_dense_replace", default=0, minimum=0)
    freq = f.int("moe_layer_freq", default=1)
    moe_layers = sum(1 for i in range(first_dense, num_layers) if i % freq == 0)
    rope = f.int("qk_rope_head_dim")
    nope = f.int("qk_nope_head_dim")
    heads = common["num_attention_heads"]
    return {
        "num_experts": f.int("n_routed_experts"),
        "experts_per_token": f.int("num_experts_per_tok"),
        "num_shared_experts": f.int("n_shared_experts", default=0, minimum=0),
        "moe_intermediate_size": f.int("moe_intermediate_size"),
        "first_dense_layers": num_layers - moe_layers,
        "expert_groups": f.int("n_group", default=0, minimum=0),
        "expert_groups_per_token": f.int("topk_group", default=0, minimum=0),
        "kv_lora_rank": f.int("kv_lora_rank"),
        # q_lora_rank is null in DeepSeek-V2-Lite: queries are projected directly.
        "q_lora_rank": f.int("q_lora_rank", default=0, minimum=0),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": nope,
        "v_head_dim": f.int("v_head_dim"),
        # MLA: every query head has its own K of width nope + rope (decompressed).
        "head_dim": nope + rope,
        "num_kv_heads": heads,
    }


def _gpt_oss(f: _Fields, common: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_experts": f.int("num_local_experts"),
        "experts_per_token": f.first_int(("num_experts_per_tok", "experts_per_token")),
        "moe_intermediate_size": common["intermediate_size"],
    }


def _check_consistency(spec: ModelSpec, where: str) -> None:
    if spec.num_attention_heads % spec.num_kv_heads:
        raise UserError(
            f"{where}: num_attention_heads {spec.num_attention_heads} is not a multiple of "
            f"num_key_value_heads {spec.num_kv_heads}"
        )
    if spec.is_moe and spec.experts_per_token > spec.num_experts:
        raise UserError(
            f"{where}: experts per token {spec.experts_per_token} exceeds the "
            f"{spec.num_experts} experts"
        )
