"""Weights that do not fit the GPU: stream them from host memory, or run layers on the CPU.

Two ways real runtimes handle a model larger than GPU memory:

* ``stream`` (DeepSpeed-Inference / FlexGen / accelerate ``device_map`` offload): the
  offloaded layers' weights live in pinned host memory and are copied over the host link
  every step, prefetched while resident layers compute; the GPU computes every layer.
* ``cpu`` (llama.cpp ``-ngl N``): the first ``gpu_layers`` layers (and the LM head) run on
  the GPU, the rest run on the host's CPU out of host memory; one activation row per token
  crosses the host link each way per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.costmodel.params import CostParams
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec

OFFLOAD_MODES = ("stream", "cpu")


@dataclass(frozen=True)
class OffloadPlan:
    """Where the decoder layers that are not on the GPU live and how they are served."""

    gpu_layers: int
    """Decoder layers kept in GPU memory."""
    mode: str = "cpu"
    """``"stream"`` or ``"cpu"`` (see the module docstring)."""
    host: GpuSpec | None = None
    """The host device (CPU memory bandwidth and FLOP/s): a catalog spec such as
    ``cpu-server``; needed for ``cpu`` mode and for the host-memory check."""
    host_link: LinkSpec | None = None
    """Link between host memory and the GPU (the GPU's ``host_link``, e.g. PCIe 4)."""

    def __post_init__(self) -> None:
        if self.mode not in OFFLOAD_MODES:
            raise ValueError(f"offload mode {self.mode!r}; known: {OFFLOAD_MODES}")


def host_params(params: CostParams) -> CostParams:
    """Cost parameters of layers run on the host: its own bandwidth and GEMM efficiencies;
    no per-step overhead (counted once on the GPU) and no host launch bound (C++ runtime)."""
    p = params
    return p.replace(
        memory_bw_efficiency=p.host_memory_bw_efficiency,
        attention_decode_bw_efficiency=p.host_memory_bw_efficiency,
        gemm_efficiency=p.host_gemm_efficiency,
        gemm_efficiency_8bit=p.host_gemm_efficiency,
        attention_prefill_efficiency=p.host_gemm_efficiency,
        step_overhead_s=0.0,
        cuda_graphs=True,
    )
