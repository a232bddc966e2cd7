"""The scenario schema: what a YAML what-if describes, validated with pydantic.

Cross-field checks that need the model's shape (tensor-parallel size against attention
heads) run here; checks that need the cost model (does the model fit in memory) run
when the simulation is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from simulator.config.base import SLO_PERCENTILES, StrictModel
from simulator.config.planning import PlanConfig, SearchConfig
from simulator.config.workload import WorkloadConfig
from simulator.specs.dtypes import canonical_dtype


class OffloadConfig(StrictModel):
    """Decoder layers kept outside GPU memory (llama.cpp ``-ngl``-style split)."""

    #: Decoder layers kept on the GPU; the rest live in host memory.
    gpu_layers: NonNegativeInt
    #: "cpu": the other layers run on the host CPU; "stream": their weights are copied over
    #: the GPU's host link every step and run on the GPU.
    mode: Literal["cpu", "stream"] = "cpu"
    #: Device spec of the host (CPU memory bandwidth, FLOP/s, memory size).
    host: str = "cpu-server"


class AutoscaleConfig(StrictModel):
    """Grow and shrink the number of replicas during a run on a load signal."""

    min_replicas: PositiveInt = 1
    max_replicas: PositiveInt
    #: Load signal per serving replica: "queue" (waiting requests), "kv" (KV-cache use,
    #: 0..1) or "rate" (arrivals per second).
    metric: Literal["queue", "kv", "rate"] = "queue"
    #: Scale up when the signal exceeds this; scale down when it stays below
    #: ``scale_down_fraction`` × target for ``scale_down_after_s``.
    target: PositiveFloat
    #: Time from the decision to a new replica serving (model load, warm-up), seconds.
    scale_up_delay_s: float = Field(120.0, ge=0.0)
    scale_down_after_s: float = Field(300.0, ge=0.0)
    scale_down_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    #: How often the signal is evaluated (simulated seconds).
    evaluate_every_s: PositiveFloat = 10.0

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class HardwareConfig(StrictModel):
    """GPUs of one replica, how many replicas, and how they are placed and linked.

    A replica has ``tensor_parallel × pipeline_parallel × expert_parallel`` GPUs; data
    parallelism is ``replicas``. GPUs fill nodes of ``gpus_per_node``; collectives that span
    nodes run over ``inter_node_link`` (per-GPU NIC bandwidth)."""

    gpu: str = "h100-sxm"
    tensor_parallel: PositiveInt = 1
    #: Pipeline stages of one replica (layers split evenly).
    pipeline_parallel: PositiveInt = 1
    #: Expert groups of one replica (MoE only): routed experts split over them, attention
    #: data-parallel across them.
    expert_parallel: PositiveInt = 1
    #: Micro-batches per step with pipeline stages; default: one per stage.
    pipeline_microbatches: PositiveInt | None = None
    replicas: PositiveInt = 1
    #: Link between the GPUs of a node (catalog name); default: the GPU's own interconnect.
    interconnect: str | None = None
    #: GPUs per node; default: one node holds the whole replica.
    gpus_per_node: PositiveInt | None = None
    #: Network between nodes, per GPU (catalog name, e.g. infiniband-ndr).
    inter_node_link: str | None = None
    #: Layers kept in host memory (offload); unset: the whole model is on the GPUs.
    offload: OffloadConfig | None = None
    #: Calibration file (path), "none" for datasheet defaults, or unset for the GPU's shipped one.
    calibration: str | None = None
    #: Autoscaling: ``replicas`` is then the number serving at the start.
    autoscale: AutoscaleConfig | None = None

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.expert_parallel


class SpeculativeConfig(StrictModel):
    """Speculative decoding: a draft proposes tokens that the target verifies in one step."""

    #: "draft": a smaller catalog model on the same GPUs; "mtp": the model's own
    #: multi-token-prediction head (DeepSeek-V3 style: one extra layer and the LM head).
    method: Literal["draft", "mtp"] = "draft"
    draft_model: str | None = None
    #: Tokens proposed per step (k).
    num_speculative_tokens: PositiveInt = 4
    #: Probability that each proposed token is accepted (independent per token).
    acceptance_rate: float = Field(0.7, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _draft_named(self) -> SpeculativeConfig:
        if self.method == "draft" and not self.draft_model:
            raise ValueError("speculative.draft_model: required when method is 'draft'")
        return self


class PoolConfig(StrictModel):
    """One pool of a disaggregated deployment (prefill or decode)."""

    gpu: str = "h100-sxm"
    tensor_parallel: PositiveInt = 1
    replicas: PositiveInt = 1
    batching: str = "continuous"
    batching_options: dict[str, Any] = Field(default_factory=dict)
    interconnect: str | None = None
    calibration: str | None = None


class EngineConfig(StrictModel):
    """Inference-engine settings (vLLM-style names)."""

    batching: str = "continuous"
    #: Serving runtime (vllm, sglang, trtllm, llama.cpp, hf-transformers, ideal): step
    #: overhead, CUDA graphs, memory accounting, default limits and scheduler (batching),
    #: and the engine's measured kernels where a calibration ships for the GPU; unset: the
    #: GPU's calibration as measured (PyTorch kernels replayed as CUDA graphs).
    profile: str | None = None
    #: Engine version whose kernel calibration prices the run (default: the newest shipped
    #: for the GPU).
    version: str | None = None
    #: Parameters of the batching policy, e.g. {chunk_size: 512} for chunked.
    batching_options: dict[str, Any] = Field(default_factory=dict)
    max_num_seqs: PositiveInt = 256
    max_num_batched_tokens: PositiveInt = 8192
    kv_block_size: PositiveInt = 16
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
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    #: Weights of the attention projections and of the LM head; default: bf16 when the
    #: weights are fp8/fp4 (as FP8 checkpoints keep them), else the weight dtype.
    attention_dtype: str | None = None
    lm_head_dtype: str | None = None
    #: Steps replayed as CUDA graphs (no per-kernel CPU launch cost).
    cuda_graphs: bool = True
    #: Longest prompt + output accepted; default: the model's maximum position embeddings.
    max_model_len: PositiveInt | None = None
    #: Reuse cached KV blocks of shared prefixes (sessions, system prompts).
    prefix_caching: bool = True
    #: When KV blocks run out: drop and recompute later, or swap to host memory over PCIe.
    preemption: Literal["recompute", "swap"] = "recompute"
    #: Host memory for swapped KV cache per GPU (GB; vLLM's default swap space is 4 GiB).
    swap_space_gb: float = Field(4.0, ge=0.0)
    speculative: SpeculativeConfig | None = None
    #: Disaggregated serving (batching: disaggregated): the two pools and the KV link.
    prefill: PoolConfig | None = None
    decode: PoolConfig | None = None
    kv_link: str | None = None

    @field_validator("weight_dtype", "kv_dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        return canonical_dtype(value)

    @model_validator(mode="after")
    def _pools_match_batching(self) -> EngineConfig:
        disaggregated = self.batching == "disaggregated"
        if disaggregated and (self.prefill is None or self.decode is None):
            raise ValueError("batching 'disaggregated' needs both engine.prefill and engine.decode")
        if not disaggregated and (self.prefill is not None or self.decode is not None):
            raise ValueError(
                "engine.prefill and engine.decode apply only to batching "
                f"'disaggregated', not {self.batching!r}"
            )
        return self


class FleetGroupConfig(StrictModel):
    """One group of identical replicas in a heterogeneous fleet."""

    name: str | None = None
    gpu: str
    tensor_parallel: PositiveInt = 1
    replicas: PositiveInt = 1
    interconnect: str | None = None
    calibration: str | None = None
    #: Engine settings that differ from the scenario's ``engine`` section.
    engine: dict[str, Any] = Field(default_factory=dict)


class RoutingConfig(StrictModel):
    """How arriving requests are spread over replicas."""

    policy: str = "round_robin"
    #: length_aware: prompts of at least this many tokens go to the long-request replicas.
    long_prompt_tokens: PositiveInt = 2048
    #: length_aware: share of replicas reserved for long requests.
    long_replica_fraction: float = Field(0.5, gt=0.0, lt=1.0)


class CostConfig(StrictModel):
    #: Price of one GPU-hour (USD) for cost per token; unset: cost is not reported.
    gpu_hour_usd: float | None = Field(None, ge=0.0)


class OutputConfig(StrictModel):
    #: Spacing of the time-series samples per replica (simulated seconds).
    timeseries_interval_s: PositiveFloat = 0.5
    #: Requests arriving before this time are left out of the summary (simulated seconds).
    warmup_s: float = Field(0.0, ge=0.0)


class Scenario(StrictModel):
    """A whole what-if: model, hardware, engine, traffic, latency targets and prices."""

    name: str = "scenario"
    description: str = ""
    model: str
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    #: Heterogeneous fleet: replica groups of different GPUs behind one router (replaces
    #: the single group described by ``hardware``).
    fleet: list[FleetGroupConfig] | None = None
    workload: WorkloadConfig
    #: Latency targets: metric -> {percentile: threshold in ms}, e.g. {ttft_ms: {p99: 1000}}.
    slo: dict[Literal["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"], dict[str, PositiveFloat]] = Field(
        default_factory=dict
    )
    cost: CostConfig = Field(default_factory=CostConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    #: What ``servesim plan`` finds for this deployment (ignored by ``simulate``).
    plan: PlanConfig | None = None
    #: Configurations ``servesim plan`` compares (ignored by ``simulate``).
    search: SearchConfig | None = None
    #: Folder that relative paths in the scenario (traces, calibration files) resolve from.
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self._base_dir or Path.cwd()

    @field_validator("slo")
    @classmethod
    def _known_percentiles(cls, value: dict) -> dict:
        for metric, targets in value.items():
            for key in targets:
                if key not in SLO_PERCENTILES:
                    raise ValueError(
                        f"{metric}.{key}: unknown percentile; allowed: {', '.join(SLO_PERCENTILES)}"
                    )
        return value

    @model_validator(mode="after")
    def _hardware_matches_model(self) -> Scenario:
        from simulator.specs.catalog import load_model

        try:
            model = load_model(self.model)
        except Exception:  # reported by the loader's own name check
            return self
        tp = self.hardware.tensor_parallel
        if model.num_attention_heads % tp:
            raise ValueError(
                f"hardware.tensor_parallel: {tp} does not divide "
                f"{model.num_attention_heads} attention heads of {self.model}"
            )
        return self
