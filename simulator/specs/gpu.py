"""Accelerator datasheet numbers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator as its datasheet describes it (dense peaks, no sparsity).

    Efficiencies (how much of a peak real kernels reach) are not held here: they are
    properties of kernels and engines and live in the cost model's parameters.
    """

    name: str
    #: Dense peak FLOP/s (or OP/s for integer formats) by compute dtype, e.g. {"bf16": 989.4e12}.
    peak_flops: dict[str, float]
    memory_bytes: float
    memory_bw_bytes_per_s: float
    l2_bytes: float = 0.0
    tdp_w: float = 0.0
    #: Streaming multiprocessors (NVIDIA) or compute units; 0 when the catalog lacks it.
    sm_count: int = 0
    #: Boost clock of the SMs (Hz); 0 when the catalog lacks it.
    boost_clock_hz: float = 0.0
    #: Catalog name of the scale-up link between GPUs of one node (e.g. "nvlink4"); "" if none.
    interconnect: str = ""
    #: Catalog name of the host link (e.g. "pcie5").
    host_link: str = "pcie4"
    vendor: str = ""
    #: Where each number came from: field name -> citation.
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def sm_cycles_per_s(self) -> float:
        """SM clock cycles per second over the whole GPU (SMs × boost clock); 0 if unknown.

        Kernels whose inner loop runs on the CUDA cores rather than the tensor cores or the
        memory system scale with this rather than with a datasheet peak."""
        return self.sm_count * self.boost_clock_hz

    def flops_for(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype``; falls back to bf16 for formats without a native path."""
        if dtype in self.peak_flops:
            return self.peak_flops[dtype]
        if dtype == "fp16" and "bf16" in self.peak_flops:
            return self.peak_flops["bf16"]
        return self.peak_flops["bf16"]
