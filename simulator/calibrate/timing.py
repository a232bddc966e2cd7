"""Timing helpers: CUDA events around graph replays (or host clocks on a CPU), medians.

Every timed region is warmed up first (module load, cuBLAS handles, autotuning), then run
``iters`` times; a row reports the median with the minimum and maximum.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Median, fastest and slowest of the repeated runs, in milliseconds."""

    ms: float
    ms_min: float
    ms_max: float

    def scaled(self, factor: float) -> Timing:
        return Timing(self.ms * factor, self.ms_min * factor, self.ms_max * factor)

    def fields(self) -> dict[str, float]:
        return {"ms": self.ms, "ms_min": self.ms_min, "ms_max": self.ms_max}


def is_cuda(device: Any) -> bool:
    return getattr(device, "type", str(device)).startswith("cuda")


def time_region(fn: Callable[[], Any], device: Any, *, warmup: int, iters: int) -> Timing:
    """Median time of ``fn()`` (ms): CUDA events on a GPU, ``perf_counter`` on a CPU."""
    import torch

    for _ in range(warmup):
        fn()
    samples = []
    if is_cuda(device):
        torch.cuda.synchronize(device)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        for start, end in zip(starts, ends, strict=True):
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        samples = [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return Timing(statistics.median(samples), min(samples), max(samples))


def capture(body: Callable[[], Any], device: Any) -> Callable[[], Any]:
    """``body`` captured in a CUDA graph and returned as its replay (``body`` on a CPU).

    ``body`` runs twice on a side stream before capture, as PyTorch requires, so that
    lazily created handles and workspaces exist before the graph is recorded."""
    import torch

    if not is_cuda(device):
        return body
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(2):
            body()
    torch.cuda.current_stream(device).wait_stream(stream)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    return graph.replay


def synchronize(device: Any) -> None:
    import torch

    if is_cuda(device):
        torch.cuda.synchronize(device)


def free_memory(device: Any) -> None:
    """Return cached blocks so that the next shape can allocate its KV cache."""
    import gc

    import torch

    gc.collect()
    if is_cuda(device):
        torch.cuda.empty_cache()
