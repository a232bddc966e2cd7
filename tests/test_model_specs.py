"""ModelSpec from Hugging Face configs: parameter counts, KV bytes, MoE/MLA/window fields."""

from __future__ import annotations

import copy
import json

import pytest

from simulator.errors import UserError
from simulator.specs.catalog import load_model, specs_dir
from simulator.specs.hf_config import model_spec_from_hf_config

# Published parameter counts (reference sheet G1 and the model cards): (total, active).
PUBLISHED_PARAMS = {
    "llama-3.2-1b": (1.24e9, None),
    "llama-3.2-3b": (3.21e9, None),
    "llama-3.1-8b": (8.03e9, None),
    "llama-3.1-70b": (70.6e9, None),
    "llama-3.1-405b": (405e9, None),
    "mistral-7b": (7.24e9, None),
    "qwen2.5-7b": (7.61e9, None),
    "qwen2.5-72b": (72.7e9, None),
    "mixtral-8x7b": (46.7e9, 12.9e9),
    "mixtral-8x22b": (141e9, 39e9),
    "qwen3-30b-a3b": (30.5e9, 3.3e9),
    "qwen3-235b-a22b": (235e9, 22e9),
    "deepseek-v3": (671e9, 37e9),
    "gpt-oss-120b": (116.8e9, None),
    "gpt-oss-20b": (20.9e9, None),
}

# KV-cache bytes per token in bf16 with every layer holding the full context (sheet G1).
KV_BYTES_BF16 = {
    "llama-3.1-8b": 131072,
    "llama-3.1-70b": 327680,
    "llama-3.1-405b": 516096,
    "llama-3.2-1b": 32768,
    "llama-3.2-3b": 114688,
    "mistral-7b": 131072,
    "mixtral-8x7b": 131072,
    "mixtral-8x22b": 229376,
    "qwen2.5-7b": 57344,
    "qwen2.5-72b": 327680,
    "qwen3-30b-a3b": 98304,
    "qwen3-235b-a22b": 192512,
    "deepseek-v3": 70272,
    "deepseek-r1": 70272,
    "gpt-oss-120b": 73728,
    "gpt-oss-20b": 49152,
    "llama-2-70b": 327680,
}


def _config(name: str) -> dict:
    return json.loads((specs_dir() / "models" / f"{name}.json").read_text())


def test_llama_3_1_8b():
    m = load_model("llama-3.1-8b")
    assert m.param_count() == pytest.approx(8.03e9, rel=0.005)
    assert m.kv_bytes_per_token("bf16") == 131072
    assert m.head_dim == 128 and m.num_kv_heads == 8 and not m.tie_word_embeddings


def test_llama_3_1_70b():
    m = load_model("llama-3.1-70b")
    assert m.param_count() == pytest.approx(70.6e9, rel=0.005)
    assert m.kv_bytes_per_token("bf16") == 327680


def test_deepseek_v3():
    m = load_model("deepseek-v3")
    assert m.param_count() == pytest.approx(671e9, rel=0.02)
    assert m.active_param_count() == pytest.approx(37e9, rel=0.05)
    assert m.kv_bytes_per_token("bf16") == 70272
    assert m.kv_bytes_per_token("fp8") == 35136
    assert m.first_dense_layers == 3 and m.num_moe_layers() == 58
    assert m.num_experts == 256 and m.num_shared_experts == 1 and m.experts_per_token == 8
    assert m.uses_mla and m.head_dim == 128 + 64


def test_mixtral_8x7b():
    m = load_model("mixtral-8x7b")
    assert m.param_count() == pytest.approx(46.7e9, rel=0.01)
    assert m.active_param_count() == pytest.approx(12.9e9, rel=0.01)
    assert m.moe_intermediate_size == m.intermediate_size == 14336


def test_qwen3_30b_a3b():
    m = load_model("qwen3-30b-a3b")
    assert m.param_count() == pytest.approx(30.5e9, rel=0.01)
    assert m.active_param_count() == pytest.approx(3.3e9, rel=0.02)
    # Explicit head_dim: the query projection (32 x 128) is wider than hidden_size (2048).
    assert m.q_dim == 4096 > m.hidden_size


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts_match_published_ones(name):
    total, active = PUBLISHED_PARAMS[name]
    m = load_model(name)
    assert m.param_count() == pytest.approx(total, rel=0.02)
    if active is not None:
        assert m.active_param_count() == pytest.approx(active, rel=0.05)


@pytest.mark.parametrize(
    ("name", "published_active"),
    [("gpt-oss-120b", 5.13e9), ("gpt-oss-20b", 3.61e9), ("deepseek-v3", 36.6e9)],
)
def test_active_counts_that_leave_out_the_input_embedding(name, published_active):
    """OpenAI's gpt-oss card and DeepSeek's weight notes count active parameters without the
    input-embedding lookup (DeepSeek: '36.6B including 0.9B for the output head')."""
    m = load_model(name)
    embedding_lookup = m.vocab_size * m.hidden_size
    assert m.active_param_count() - embedding_lookup == pytest.approx(published_active, rel=0.01)


@pytest.mark.parametrize("name", sorted(KV_BYTES_BF16))
def test_kv_bytes_per_token(name):
    assert load_model(name).kv_bytes_per_token("bf16") == KV_BYTES_BF16[name]


def test_deepseek_r1_has_the_v3_architecture():
    v3, r1 = load_model("deepseek-v3"), load_model("deepseek-r1")
    assert r1.param_count() == v3.param_count()
    assert r1.kv_bytes_per_token() == v3.kv_bytes_per_token()


def test_tied_embeddings_are_counted_once():
    tied = load_model("llama-3.2-1b")
    assert tied.tie_word_embeddings
    assert tied.embedding_params() == tied.vocab_size * tied.hidden_size
    config = _config("llama-3.2-1b")
    config["tie_word_embeddings"] = False
    untied = model_spec_from_hf_config(config, "untied")
    assert untied.param_count() - tied.param_count() == tied.vocab_size * tied.hidden_size


def test_head_dim_defaults_to_hidden_over_heads():
    config = _config("llama-3.1-8b")
    assert "head_dim" not in config
    m = model_spec_from_hf_config(config, "x")
    assert m.head_dim == 4096 // 32
    del config["num_key_value_heads"]  # HF default: as many KV heads as query heads
    assert model_spec_from_hf_config(config, "x").num_kv_heads == 32


def test_sliding_windows():
    mistral = load_model("mistral-7b")
    assert (mistral.sliding_window, mistral.sliding_window_layers) == (4096, 32)
    assert mistral.kv_bytes_for_context(100_000) == 4096 * mistral.kv_bytes_per_token()
    gpt = load_model("gpt-oss-120b")
    assert (gpt.sliding_window, gpt.sliding_window_layers) == (128, 18)
    per_layer = 2 * 8 * 64 * 2  # K and V, 8 KV heads x 64, bf16
    assert gpt.kv_bytes_for_context(131072) == per_layer * (18 * 131072 + 18 * 128)
    assert gpt.kv_bytes_for_context(100) == 100 * gpt.kv_bytes_per_token()
    # Qwen2.5 lists a sliding_window but does not use it.
    assert load_model("qwen2.5-7b").sliding_window == 0
    llama = load_model("llama-3.1-8b")
    assert llama.kv_bytes_for_context(1000) == 1000 * llama.kv_bytes_per_token()


def test_gpt_oss_reads_either_experts_per_token_field():
    config = _config("gpt-oss-20b")
    del config["num_experts_per_tok"]
    m = model_spec_from_hf_config(config, "gpt-oss-20b")
    assert m.experts_per_token == 4 and m.num_experts == 32
    del config["experts_per_token"]
    with pytest.raises(UserError, match="'num_experts_per_tok' or 'experts_per_token'"):
        model_spec_from_hf_config(config, "gpt-oss-20b")


def test_qwen3_moe_dense_layers_from_sparse_step_and_mlp_only_layers():
    config = _config("qwen3-30b-a3b")
    base = model_spec_from_hf_config(config, "q")
    assert base.num_moe_layers() == 48
    every_other = dict(config, decoder_sparse_step=2)
    assert model_spec_from_hf_config(every_other, "q").num_moe_layers() == 24
    some_dense = dict(config, mlp_only_layers=[0, 1, 47])
    m = model_spec_from_hf_config(some_dense, "q")
    assert m.num_moe_layers() == 45 and m.first_dense_layers == 3
    # Dense layers use intermediate_size; experts use moe_intermediate_size.
    assert m.param_count() - base.param_count() == 3 * (
        m.dense_mlp_params() - 128 * m.expert_params() - m.hidden_size * 128
    )


def test_deepseek_without_q_lora_projects_queries_directly():
    config = _config("deepseek-v3")
    config["q_lora_rank"] = None
    m = model_spec_from_hf_config(config, "v2-lite-like")
    assert m.q_lora_rank == 0
    full = load_model("deepseek-v3")
    h, heads = m.hidden_size, m.num_attention_heads
    direct_q = h * heads * (128 + 64)
    low_rank_q = h * 1536 + 1536 * heads * (128 + 64)
    assert full.attention_params_per_layer() - m.attention_params_per_layer() == (
        low_rank_q - direct_q
    )


# ----------------------------------------------------------------------------- errors
def test_missing_field_names_the_field_and_the_file():
    config = _config("llama-3.1-8b")
    del config["vocab_size"]
    with pytest.raises(UserError) as err:
        model_spec_from_hf_config(config, "m", source="/models/m/config.json")
    assert "'vocab_size' is missing" in str(err.value)
    assert "/models/m/config.json" in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("model_type"), "'model_type' is missing"),
        (lambda c: c.update(model_type="mamba"), "model_type 'mamba' is not supported"),
        (lambda c: c.update(hidden_size="4096"), "'hidden_size' must be an integer"),
        (lambda c: c.update(num_hidden_layers=0), "'num_hidden_layers' must be from 1 to 65,536"),
        (lambda c: c.update(num_key_value_heads=5), "not a multiple of num_key_value_heads 5"),
        (lambda c: c.update(hidden_size=4100), "give 'head_dim' explicitly"),
        (lambda c: c.update(tie_word_embeddings="yes"), "'tie_word_embeddings' must be true"),
    ],
)
def test_malformed_dense_configs(mutate, message):
    config = copy.deepcopy(_config("llama-3.1-8b"))
    mutate(config)
    with pytest.raises(UserError, match=message):
        model_spec_from_hf_config(config, "m")


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("mixtral-8x7b", "num_local_experts"),
        ("qwen3-30b-a3b", "moe_intermediate_size"),
        ("deepseek-v3", "kv_lora_rank"),
        ("deepseek-v3", "n_routed_experts"),
        ("gpt-oss-120b", "num_local_experts"),
    ],
)
def test_moe_and_mla_fields_are_required(name, field):
    config = _config(name)
    del config[field]
    with pytest.raises(UserError, match=f"'{field}' is missing"):
        model_spec_from_hf_config(config, name)


def test_more_experts_per_token_than_experts_is_rejected():
    config = _config("mixtral-8x7b")
    config["num_experts_per_tok"] = 9
    with pytest.raises(UserError, match="exceeds the 8 experts"):
        model_spec_from_hf_config(config, "m")


def test_a_non_object_config_is_rejected():
    with pytest.raises(UserError, match="must hold a JSON object"):
        model_spec_from_hf_config([1, 2], "m")  # type: ignore[arg-type]
