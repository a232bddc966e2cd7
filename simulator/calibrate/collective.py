"""All-reduce over message sizes between the GPUs of one host (run under ``torchrun``)."""

from __future__ import annotations

from collections.abc import Iterator

from simulator.calibrate.timing import capture, is_cuda, time_region


def allreduce_rows(
    sizes_bytes, device, *, warmup: int, iters: int, graphed: bool
) -> Iterator[dict]:
    """``torch.distributed.all_reduce`` of bf16 messages; rows on every rank (rank 0 writes).

    ``busbw_gbps`` follows NCCL's convention: message bytes x 2(n-1)/n per second. With
    ``graphed`` the all-reduce is captured in a CUDA graph too (as engines replay decode),
    which removes the host launch and shows the latency the GPUs themselves need."""
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    for size in sizes_bytes:
        x = torch.ones(size // 2, device=device, dtype=torch.bfloat16)
        modes = [False, True] if graphed and is_cuda(device) else [False]
        for in_graph in modes:

            def body(x=x) -> None:
                dist.all_reduce(x)

            fn = capture(body, device) if in_graph else body
            dist.barrier()
            t = time_region(fn, device, warmup=warmup, iters=iters)
            busbw = size * 2 * (world - 1) / world / (t.ms * 1e-3) / 1e9
            yield {
                "kind": "allreduce",
                "bytes": size,
                **t.fields(),
                "busbw_gbps": busbw,
                "tp": world,
                "graph": in_graph,
            }
        del x
