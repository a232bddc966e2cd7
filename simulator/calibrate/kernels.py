"""Single-kernel microbenchmarks: ceilings, weight GEMMs, attention, launch latency.

Each function returns the JSON rows it measured. Kernels whose operands would sit in L2
when repeated (the weights of a small GEMM, a short KV cache) are run over enough
rotating copies that each replay reads from device memory, as a forward pass over
different layers does. Per-kernel times are graph replays divided by the kernels in the
graph (``"graph": true``), so they exclude the host launch cost that a single eager call
would add.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from simulator.calibrate.timing import capture, free_memory, time_region
from simulator.specs.model import ModelSpec

#: Operands of a rotated kernel should span this many bytes so that L2 (50-60 MB on
#: H100/H200) cannot serve them; 4x the largest L2 of the GPUs measured.
ROTATE_BYTES = 256 << 20
MAX_COPIES = 32
#: Kernels per graph for per-kernel timings of small kernels (amortises graph launch).
MIN_KERNELS_PER_GRAPH = 32


def _copies(bytes_each: float) -> int:
    return max(2, min(MAX_COPIES, math.ceil(ROTATE_BYTES / max(bytes_each, 1.0))))


#: Graphs of large kernels are kept near this length (s) so that big shapes stay cheap.
TARGET_GRAPH_S = 4e-3
#: Rough rates (FLOP/s, B/s) used only to size graphs, never reported.
SIZING_FLOPS, SIZING_BW = 600e12, 2.5e12


def _estimate_s(flops: float, nbytes: float) -> float:
    return max(flops / SIZING_FLOPS, nbytes / SIZING_BW, 3e-6)


def _per_kernel(
    make_body: Callable[[int], Callable[[], Any]],
    copies: int,
    device,
    warmup: int,
    iters: int,
    estimate_s: float = 0.0,
):
    """Time a graph that runs ``body(i)`` for rotating copy ``i``; per-kernel Timing."""
    rounds = max(1, math.ceil(MIN_KERNELS_PER_GRAPH / copies))
    if estimate_s > 0:
        rounds = max(1, min(rounds, math.ceil(TARGET_GRAPH_S / (estimate_s * copies))))
    bodies = [make_body(i) for i in range(copies)]

    def region() -> None:
        for _ in range(rounds):
            for body in bodies:
                body()

    replay = capture(region, device)
    timing = time_region(replay, device, warmup=warmup, iters=iters)
    return timing.scaled(1.0 / (rounds * copies)), rounds * copies


def ceilings(device, dtype, *, side: int, copy_bytes: int, warmup: int, iters: int) -> list[dict]:
    """Large square bf16 (and fp8 where supported) GEMMs and a large device copy."""
    import torch

    rows = []
    a = torch.randn(side, side, device=device, dtype=dtype)
    b = torch.randn(side, side, device=device, dtype=dtype)
    out = torch.empty(side, side, device=device, dtype=dtype)
    t = time_region(lambda: torch.matmul(a, b, out=out), device, warmup=warmup, iters=iters)
    flops = 2.0 * side**3
    rows.append(
        {"kind": "ceiling", "what": "gemm_bf16", "m": side, "n": side, "k": side, **t.fields()}
        | {"tflops": flops / (t.ms * 1e-3) / 1e12}
    )
    fp8 = fp8_matmul(a, b.t().contiguous())
    if fp8 is not None:
        t = time_region(fp8, device, warmup=warmup, iters=iters)
        rows.append(
            {"kind": "ceiling", "what": "gemm_fp8", "m": side, "n": side, "k": side, **t.fields()}
            | {"tflops": flops / (t.ms * 1e-3) / 1e12}
        )
    n = copy_bytes // 2
    src = torch.randn(n, device=device, dtype=dtype)
    dst = torch.empty_like(src)
    t = time_region(lambda: dst.copy_(src), device, warmup=warmup, iters=iters)
    rows.append(
        {"kind": "ceiling", "what": "copy", "bytes": copy_bytes, **t.fields()}
        | {"gbps": 2.0 * copy_bytes / (t.ms * 1e-3) / 1e9}
    )
    return rows


def fp8_matmul(x, w_nk) -> Callable[[], Any] | None:
    """``x @ w_nk.T`` in float8 e4m3 with bf16 output, or None where unsupported."""
    import torch

    try:
        xq = x.to(torch.float8_e4m3fn)
        wq = w_nk.to(torch.float8_e4m3fn).t()  # column-major view, as _scaled_mm wants
        one = torch.ones((), device=x.device, dtype=torch.float32)

        def run():
            return torch._scaled_mm(xq, wq, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

        run()
        return run
    except (RuntimeError, AttributeError, TypeError, NotImplementedError):
        return None


def gemms(
    models: list[ModelSpec], m_values, device, dtype, *, warmup: int, iters: int, fp8: bool
) -> Iterator[dict]:
    """``x[m,k] @ w[k,n]`` for every weight shape of ``models`` (deduplicated)."""
    import torch

    from simulator.calibrate.plan import gemm_shapes

    seen = set()
    for model in models:
        for op, k, n in gemm_shapes(model):
            if (k, n) in seen:
                continue
            seen.add((k, n))
            w_bytes = (1 if fp8 else 2) * k * n
            copies = _copies(w_bytes)
            ws = [torch.randn(n, k, device=device, dtype=dtype) for _ in range(copies)]
            for m in m_values:
                x = torch.randn(m, k, device=device, dtype=dtype)
                outs = [torch.empty(m, n, device=device, dtype=dtype) for _ in range(copies)]
                if fp8:
                    runs = [fp8_matmul(x, w) for w in ws]
                    if any(run is None for run in runs):
                        continue  # this PyTorch/GPU has no fp8 GEMM for this shape
                    make = runs.__getitem__
                else:
                    wts = [w.t() for w in ws]  # [k, n] views; cuBLAS handles the layout

                    def make(i, wts=wts, outs=outs, x=x):
                        return lambda: torch.matmul(x, wts[i], out=outs[i])

                flops = 2.0 * m * k * n
                moved = w_bytes + (1 if fp8 else 2) * m * k + 2 * m * n
                estimate = _estimate_s(flops, moved)
                t, count = _per_kernel(make, copies, device, warmup, iters, estimate)
                yield {
                    "kind": "gemm",
                    "m": m,
                    "k": k,
                    "n": n,
                    **t.fields(),
                    "tflops": flops / (t.ms * 1e-3) / 1e12,
                    "gbps": moved / (t.ms * 1e-3) / 1e9,
                    "dtype": "fp8" if fp8 else "bf16",
                    "graph": True,
                    "kernels_per_graph": count,
                    "model": model.name,
                    "op": op,
                }
                del x, outs
            del ws
            free_memory(device)


def sdpa(q, k, v, *, causal: bool, gqa: bool):
    """Grouped-query SDPA: native ``enable_gqa`` where available, else expanded K/V."""
    import torch.nn.functional as F

    if gqa:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def gqa_native(device, dtype) -> bool:
    """Whether this PyTorch's SDPA takes ``enable_gqa`` (2.5 and later)."""
    import torch

    q = torch.randn(1, 4, 2, 8, device=device, dtype=dtype)
    k = torch.randn(1, 2, 2, 8, device=device, dtype=dtype)
    try:
        sdpa(q, k, k, causal=True, gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


def attention(
    model: ModelSpec,
    prefill_shapes,
    decode_shapes,
    device,
    dtype,
    *,
    gqa: bool,
    warmup: int,
    iters: int,
) -> Iterator[dict]:
    """One layer's attention kernel: causal prefill (no cache) and decode over a KV cache."""
    import torch

    heads, kv_heads, d = model.num_attention_heads, model.num_kv_heads, model.head_dim
    for batch, seq in prefill_shapes:
        kv_bytes = 2 * batch * kv_heads * seq * d * 2
        copies = _copies(kv_bytes + batch * heads * seq * d * 4)
        qs = [torch.randn(batch, heads, seq, d, device=device, dtype=dtype) for _ in range(copies)]
        ks = [torch.randn(batch, kv_heads, seq, d, device=device, dtype=dtype) for _ in qs]
        vs = [torch.randn_like(k) for k in ks]

        def make(i, qs=qs, ks=ks, vs=vs):
            return lambda: sdpa(qs[i], ks[i], vs[i], causal=True, gqa=gqa)

        pairs = batch * seq * (seq + 1) / 2
        flops = 4.0 * pairs * heads * d
        t, count = _per_kernel(make, copies, device, warmup, iters, _estimate_s(flops / 0.5, 0))
        yield {
            "kind": "attn_prefill",
            "model": model.name,
            "batch": batch,
            "seq": seq,
            **t.fields(),
            "tflops": flops / (t.ms * 1e-3) / 1e12,
            "graph": True,
            "kernels_per_graph": count,
        }
        del qs, ks, vs
        free_memory(device)
    for batch, context in decode_shapes:
        length = context + 1
        kv_bytes = 2 * batch * kv_heads * length * d * 2
        copies = _copies(kv_bytes)
        qs = [torch.randn(batch, heads, 1, d, device=device, dtype=dtype) for _ in range(copies)]
        ks = [torch.randn(batch, kv_heads, length, d, device=device, dtype=dtype) for _ in qs]
        vs = [torch.randn_like(k) for k in ks]

        def make(i, qs=qs, ks=ks, vs=vs):
            return lambda: sdpa(qs[i], ks[i], vs[i], causal=False, gqa=gqa)

        t, count = _per_kernel(make, copies, device, warmup, iters, _estimate_s(0, kv_bytes))
        yield {
            "kind": "attn_decode",
            "model": model.name,
            "batch": batch,
            "context": context,
            **t.fields(),
            "kv_bytes": kv_bytes,
            "gbps": kv_bytes / (t.ms * 1e-3) / 1e9,
            "graph": True,
            "kernels_per_graph": count,
        }
        del qs, ks, vs
        free_memory(device)


def launch_latency(device, dtype, *, kernels: int, warmup: int, iters: int) -> list[dict]:
    """Time per tiny kernel (an in-place add on 1024 elements) eagerly and inside a graph."""
    import torch

    x = torch.zeros(1024, device=device, dtype=dtype)

    def region() -> None:
        for _ in range(kernels):
            x.add_(1.0)

    rows = []
    for mode, fn in (("eager", region), ("graph", capture(region, device))):
        t = time_region(fn, device, warmup=warmup, iters=iters)
        rows.append(
            {"kind": "launch", "mode": mode, "kernels": kernels, **t.fields()}
            | {"us_per_kernel": t.ms * 1e3 / kernels}
        )
    return rows
