"""CUDA-graph padding: a decode-only step runs as the graph of the next captured batch size.

An engine that replays decode steps as CUDA graphs captured at a few batch sizes, with
padding on, rounds a decode-only batch up to the smallest captured size that holds it and
fills the difference with dummy sequences (TensorRT-LLM's PyTorch runtime with
``cuda_graph_config: {enable_padding: true, batch_sizes: [...]}``:
``CUDAGraphRunner._get_padded_batch`` / ``_round_up_batch_size``). The dummies run through
every layer like real rows (GEMMs, experts, collectives, norms, the LM head); each holds one
token of KV (``add_dummy_requests(is_gen=True)``), so attention barely notices them.

The rules, as ``tensorrt_llm/_torch/pyexecutor`` applies them:

- the captured sizes are the listed ones up to ``min(max_batch_size, max_num_tokens)`` of a
  rank, plus that cap itself when a larger size was listed (``_filter_cuda_graph_batch_sizes``);
- only a step without prompt tokens replays a graph (``can_run_cuda_graph``);
- with attention data parallelism every rank replays the same graph: the batch padded is
  the largest rank's (``tp_allgather([can_run_cuda_graph, batch_size])``, then ``max``), and
  a step in which any rank has prompt tokens pads nothing;
- a batch larger than the largest captured size is not padded.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

#: KV tokens of one dummy padding sequence (a generation request of one token).
DUMMY_CONTEXT_TOKENS = 1


def captured_batch_sizes(
    listed: Iterable[int], max_batch_size: int, max_num_tokens: int
) -> tuple[int, ...]:
    """The batch sizes a rank captures from the ``listed`` ones, under its own
    ``max_batch_size`` and ``max_num_tokens`` (module docstring)."""
    cap = min(max_batch_size, max_num_tokens)
    sizes = sorted({int(s) for s in listed if s > 0})
    kept = [s for s in sizes if s <= cap]
    if cap >= 1 and len(kept) < len(sizes) and (not kept or kept[-1] != cap):
        kept.append(cap)
    return tuple(kept)


def padded_batch(sizes: tuple[int, ...], batch: int) -> int:
    """The batch a decode-only step of ``batch`` sequences (per rank) runs as: the smallest
    captured size that holds it; ``batch`` itself past the largest or without sizes."""
    if not sizes or batch <= 0:
        return batch
    i = bisect_left(sizes, batch)
    return sizes[i] if i < len(sizes) else batch
