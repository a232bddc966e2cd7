"""Schema of the ``engine:`` section: the serving runtime's settings (vLLM-style names).

``batching`` holds the parameters of one batching policy, each policy declaring its own
(``simulator.policies``). An engine ``profile`` (``simulator.costmodel.profiles``) supplies
the runtime's defaults (limits, scheduler, CUDA graphs) for every field the scenario leaves
unset; they are filled in here, at load, so the validated section is what will run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from simulator.config.base import MAX_BATCHED_TOKENS, MAX_NUM_SEQS, StrictModel, Tokens
from simulator.costmodel.profiles import load_profile
from simulator.errors import UserError
from simulator.policies import BatchingParams, PolicyParams, policy_params
from simulator.specs.dtypes import canonical_dtype


class SpeculativeConfig(StrictModel):
    """Speculative decoding: a draft proposes tokens that the target verifies in one step."""

    #: "draft": a smaller catalog model on the same GPUs; "mtp": the model's own
    #: multi-token-prediction head (DeepSeek-V3 style: one extra layer and the LM head).
    method: Literal["draft", "mtp"] = "draft"
    draft_model: str | None = None
    #: Tokens proposed per step (k).
    num_speculative_tokens: Annotated[int, Field(gt=0, le=64)] = 4
    #: Probability that each proposed token is accepted (independent per token).
    acceptance_rate: float = Field(0.7, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _draft_named(self) -> SpeculativeConfig:
        if self.method == "draft" and not self.draft_model:
            raise ValueError("speculative.draft_model: required when method is 'draft'")
        if self.method == "mtp" and self.draft_model:
            raise ValueError(
                f"draft_model: {self.draft_model!r} is not used by method 'mtp' "
                "(the model's own multi-token-prediction head drafts); remove it, or use "
                "method: draft"
            )
        return self


class EngineConfig(StrictModel):
    """Inference-engine settings (vLLM-style names)."""

    #: Batching policy and its parameters: a name (``chunked``) or a mapping
    #: (``{policy: chunked, chunk_size: 512}``); ``servesim list policies`` lists them.
    batching: BatchingParams = policy_params("continuous")
    #: Serving runtime (vllm, sglang, trtllm, llama.cpp, hf-transformers, ideal): step
    #: overhead, CUDA graphs, memory accounting, default limits and scheduler (batching),
    #: and the engine's measured kernels where a calibration ships for the GPU; unset: the
    #: GPU's calibration as measured (PyTorch kernels replayed as CUDA graphs).
    profile: str | None = None
    #: Engine version whose kernel calibration prices the run (default: the newest shipped
    #: for the GPU).
    version: str | None = None
    max_num_seqs: Annotated[int, Field(gt=0, le=MAX_NUM_SEQS)] = 256
    max_num_batched_tokens: Annotated[int, Field(gt=0, le=MAX_BATCHED_TOKENS)] = 8192
    kv_block_size: Annotated[int, Field(gt=0, le=1 << 16)] = 16
    #: vLLM: fraction of the whole GPU for weights, activations and the KV cache.
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    #: TensorRT-LLM (profile trtllm): fraction of the memory left after weights and
    #: activations that the KV cache takes; default 0.9.
    kv_cache_free_gpu_mem_fraction: float | None = Field(None, gt=0.0, le=1.0)
    #: SGLang (profile sglang): fraction of the GPU for weights and the KV pool; default by
    #: tensor-parallel size (0.88 at TP1 ... 0.79 at TP16).
    mem_fraction_static: float | None = Field(None, gt=0.0, le=1.0)
    #: Fraction of KV blocks kept free at admission so running sequences can grow.
    kv_watermark: float = Field(0.01, ge=0.0, lt=1.0)
    #: What admission reserves in the KV cache: the prompt's blocks ("prompt": sequences
    #: that outgrow the cache are preempted, as vLLM and SGLang do) or the whole sequence,
    #: prompt and every output token ("whole_sequence": nothing is ever preempted, as
    #: TensorRT-LLM's default GUARANTEED_NO_EVICT capacity scheduler does).
    kv_admission: Literal["prompt", "whole_sequence"] = "prompt"
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    #: Weights of the attention projections and of the LM head; default: the checkpoint
    #: convention of ``weight_dtype`` (costmodel/quant.py: FP8 and NVFP4 quantise attention
    #: too, MXFP4 keeps it bf16; the LM head stays bf16 when quantised).
    attention_dtype: str | None = None
    lm_head_dtype: str | None = None
    #: Per-tensor FP8 checkpoints: "static" (the checkpoint's calibrated activation scales,
    #: the producing kernel emitting FP8: ModelOpt checkpoints on TensorRT-LLM) or "dynamic"
    #: (each GEMM computes its activation's scale and casts it); default: the profile's
    #: (static for trtllm, dynamic otherwise).
    fp8_activation_scales: Literal["static", "dynamic"] | None = None
    #: Steps replayed as CUDA graphs (no per-kernel CPU launch cost).
    cuda_graphs: bool = True
    #: Batch sizes of the captured CUDA graphs when the engine pads a decode-only step up
    #: to the next one (TensorRT-LLM ``cuda_graph_config: {enable_padding: true,
    #: batch_sizes: [...]}``); per attention-data-parallel rank. Unset: no padding.
    cuda_graph_batch_sizes: list[Annotated[int, Field(gt=0, le=MAX_NUM_SEQS)]] | None = None
    #: Longest prompt + output accepted; default: the model's maximum position embeddings.
    max_model_len: Tokens | None = None
    #: Reuse cached KV blocks of shared prefixes (sessions, system prompts).
    prefix_caching: bool = True
    #: When KV blocks run out: drop and recompute later, or swap to host memory over PCIe.
    preemption: Literal["recompute", "swap"] = "recompute"
    #: Host memory for swapped KV cache per GPU (GB; vLLM's default swap space is 4 GiB).
    swap_space_gb: float = Field(4.0, ge=0.0, le=1e6)
    speculative: SpeculativeConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _options_into_batching(cls, data: Any) -> Any:
        """``batching: NAME`` with ``batching_options: {...}`` (the older form) is read as
        ``batching: {policy: NAME, ...}``."""
        if not isinstance(data, dict) or "batching_options" not in data:
            return data
        data = dict(data)
        options = data.pop("batching_options")
        if "batching" not in data:
            raise ValueError("batching_options: give the policy too, as batching: {policy: ...}")
        if not isinstance(options, dict):
            raise ValueError(f"batching_options: expected a mapping (got {options!r})")
        batching = data["batching"]
        if isinstance(batching, PolicyParams):
            batching = batching.model_dump()
        elif isinstance(batching, str):
            batching = {"policy": batching}
        if isinstance(batching, dict):
            data["batching"] = {**batching, **options}
        return data

    @field_validator("weight_dtype", "kv_dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        return canonical_dtype(value)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                load_profile(value)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _profile_defaults(self) -> EngineConfig:
        """Fill the fields left unset with the profile's defaults; they stay unset (a copy
        with another profile takes that profile's)."""
        if self.profile is None:
            return self
        profile = load_profile(self.profile)
        defaults = {
            "cuda_graphs": profile.cuda_graphs,
            "fp8_activation_scales": "static" if profile.fp8_static_activations else "dynamic",
            **profile.limits,
        }
        unset = {k: v for k, v in defaults.items() if k not in self.model_fields_set}
        if unset:
            filled = self.replace(**unset)
            self.__dict__.update({key: getattr(filled, key) for key in unset})
        return self

    @model_validator(mode="after")
    def _batching_within_limits(self) -> EngineConfig:
        """A policy's step budget and batch size stay within the engine's limits, which also
        size its activation memory: a larger one would be cut back without a word."""
        checks = (
            ("chunk_size", "tokens", "max_num_batched_tokens", "the most tokens one step holds"),
            ("batch_size", "sequences", "max_num_seqs", "the most sequences in one batch"),
        )
        for param, unit, limit_name, meaning in checks:
            value, limit = getattr(self.batching, param, None), getattr(self, limit_name)
            if value is not None and value > limit:
                raise ValueError(
                    f"batching.{param}: {value} {unit} exceeds {limit_name} ({limit}), "
                    f"{meaning}; set {param} to at most {limit}, or raise {limit_name}"
                )
        return self

    @model_validator(mode="after")
    def _graph_sizes_need_graphs(self) -> EngineConfig:
        """Padding to captured graph sizes needs captured graphs, and at least one size."""
        sizes = self.cuda_graph_batch_sizes
        if sizes is None:
            return self
        if not sizes:
            raise ValueError(
                "cuda_graph_batch_sizes: give at least one batch size, or leave it unset "
                "(no padding)"
            )
        if not self.cuda_graphs:
            under = f" under profile {self.profile!r}" if self.profile else ""
            raise ValueError(
                f"cuda_graph_batch_sizes: decode steps are padded to captured CUDA graphs, but "
                f"this engine runs without them (cuda_graphs false{under}); set cuda_graphs: "
                "true or drop the sizes"
            )
        return self
