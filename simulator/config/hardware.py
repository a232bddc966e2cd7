"""Schema of the ``hardware:`` section: the GPUs of one replica, how many replicas, where
they sit, and how their number may change during a run."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, field_validator, model_validator

from simulator.config.base import Parallel, Replicas, Seconds, StrictModel
from simulator.specs.catalog import gpu_catalog_spelling


class OffloadConfig(StrictModel):
    """Decoder layers kept outside GPU memory (llama.cpp ``-ngl``-style split)."""

    #: Decoder layers kept on the GPU; the rest live in host memory.
    gpu_layers: Annotated[int, Field(ge=0, le=1 << 16)]
    #: "cpu": the other layers run on the host CPU; "stream": their weights are copied over
    #: the GPU's host link every step and run on the GPU.
    mode: Literal["cpu", "stream"] = "cpu"
    #: Device spec of the host (CPU memory bandwidth, FLOP/s, memory size).
    host: str = "cpu-server"


class AutoscaleConfig(StrictModel):
    """Grow and shrink the number of replicas during a run on a load signal."""

    min_replicas: Replicas = 1
    max_replicas: Replicas
    #: Load signal per serving replica: "queue" (waiting requests), "kv" (KV-cache use,
    #: 0..1) or "rate" (arrivals per second).
    metric: Literal["queue", "kv", "rate"] = "queue"
    #: Scale up when the signal exceeds this; scale down when it stays below
    #: ``scale_down_fraction`` × target for ``scale_down_after_s``.
    target: PositiveFloat
    #: Time from the decision to a new replica serving (model load, warm-up), seconds.
    scale_up_delay_s: Seconds = 120.0
    scale_down_after_s: Seconds = 300.0
    scale_down_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    #: How often the signal is evaluated (simulated seconds).
    evaluate_every_s: float = Field(10.0, ge=1e-3, le=1e9)

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
    tensor_parallel: Parallel = 1
    #: Pipeline stages of one replica (layers split evenly).
    pipeline_parallel: Parallel = 1
    #: Expert groups of one replica (MoE only): routed experts split over them, attention
    #: data-parallel across them, each group scheduling under its share of the engine's
    #: token budget (``max_num_batched_tokens / expert_parallel``).
    expert_parallel: Parallel = 1
    #: Micro-batches per step with pipeline stages; default: one per stage.
    pipeline_microbatches: Parallel | None = None
    replicas: Replicas = 1
    #: Link between the GPUs of a node (catalog name); default: the GPU's own interconnect.
    interconnect: str | None = None
    #: GPUs per node; default: one node holds the whole replica.
    gpus_per_node: Parallel | None = None
    #: Network between nodes, per GPU (catalog name, e.g. infiniband-ndr).
    inter_node_link: str | None = None
    #: Layers kept in host memory (offload); unset: the whole model is on the GPUs.
    offload: OffloadConfig | None = None
    #: Calibration file (path), "none" for datasheet defaults, or unset for the GPU's shipped one.
    calibration: str | None = None
    #: Autoscaling: ``replicas`` is then the number serving at the start.
    autoscale: AutoscaleConfig | None = None

    @field_validator("gpu")
    @classmethod
    def _catalog_spelling(cls, value: str) -> str:
        return gpu_catalog_spelling(value)

    @model_validator(mode="after")
    def _microbatches_need_stages(self) -> HardwareConfig:
        """Micro-batches split a step over pipeline stages: without stages they do nothing."""
        if self.pipeline_microbatches is not None and self.pipeline_parallel == 1:
            raise ValueError(
                f"pipeline_microbatches: {self.pipeline_microbatches} micro-batches need "
                "pipeline stages (pipeline_parallel > 1); drop it or set pipeline_parallel"
            )
        return self

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.expert_parallel
