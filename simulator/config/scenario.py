"""The scenario schema: what a YAML what-if describes, validated with pydantic.

Cross-field checks that need the model's shape (tensor-parallel size against attention
heads) run here; checks that need the cost model (does the model fit in memory) run
when the simulation is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from simulator.config.base import StrictModel
from simulator.config.workload import WorkloadConfig
from simulator.specs.dtypes import canonical_dtype

SLO_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
SLO_PERCENTILES = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")


class HardwareConfig(StrictModel):
    """GPUs of one replica, how many replicas, and the link between a replica's GPUs."""

    gpu: str = "h100-sxm"
    tensor_parallel: PositiveInt = 1
    replicas: PositiveInt = 1
    #: Link between the GPUs of a replica (catalog name); default: the GPU's own interconnect.
    interconnect: str | None = None
    #: Calibration file (path), "none" for datasheet defaults, or unset for the GPU's shipped one.
    calibration: str | None = None


class EngineConfig(StrictModel):
    """Inference-engine settings (vLLM-style names)."""

    batching: str = "continuous"
    max_num_seqs: PositiveInt = 256
    max_num_batched_tokens: PositiveInt = 8192
    kv_block_size: PositiveInt = 16
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    #: Fraction of KV blocks kept free at admission so running sequences can grow.
    kv_watermark: float = Field(0.01, ge=0.0, lt=1.0)
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    #: Steps replayed as CUDA graphs (no per-kernel CPU launch cost).
    cuda_graphs: bool = True
    #: Longest prompt + output accepted; default: the model's maximum position embeddings.
    max_model_len: PositiveInt | None = None

    @field_validator("weight_dtype", "kv_dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        return canonical_dtype(value)


class RoutingConfig(StrictModel):
    policy: str = "round_robin"


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
    workload: WorkloadConfig
    #: Latency targets: metric -> {percentile: threshold in ms}, e.g. {ttft_ms: {p99: 1000}}.
    slo: dict[Literal["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"], dict[str, PositiveFloat]] = Field(
        default_factory=dict
    )
    cost: CostConfig = Field(default_factory=CostConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
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
