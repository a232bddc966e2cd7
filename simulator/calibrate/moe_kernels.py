"""Grouped expert GEMMs: the best grouped GEMM this PyTorch offers, timed per expert shape.

An MoE layer's routed experts run as one grouped GEMM per weight (gate+up, then down): rows
sorted by expert, ``x[rows, k]`` times each expert's ``w[k, n]`` over its slice of rows.
``torch._grouped_mm`` (CUTLASS grouped GEMM on Hopper, PyTorch 2.8 and later) takes the
slices as device offsets, so uneven groups run in one kernel inside a CUDA graph; where it
is missing or fails, ``torch.bmm`` over equal groups stands in (microbenchmarks only).
Each row is a graph replay of grouped GEMMs over rotating expert windows divided by their
count, like the dense GEMM rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from simulator.calibrate.kernels import ROTATE_BYTES, _estimate_s, _per_kernel
from simulator.calibrate.moe_plan import MoePlan, expert_shapes, groups_for
from simulator.calibrate.timing import capture, free_memory, is_cuda, synchronize
from simulator.specs.model import ModelSpec


@dataclass(frozen=True)
class GroupedMm:
    """A grouped GEMM ``out[rows, n]`` of ``x[rows, k]`` with ``w_t[E, k, n]`` over groups
    ending at ``offs`` (int32, cumulative); ``api`` names what runs it."""

    api: str

    def __call__(self, x, w_t, offs):
        import torch

        if self.api == "torch._grouped_mm":
            return torch._grouped_mm(x, w_t, offs=offs)
        if self.api == "torch.nn.functional.grouped_mm":
            return torch.nn.functional.grouped_mm(x, w_t, offs=offs)
        return _loop_grouped_mm(x, w_t, offs)

    @property
    def uneven_groups(self) -> bool:
        """Whether groups of different sizes run without the host reading the offsets."""
        return self.api != "bmm"


def _loop_grouped_mm(x, w_t, offs):
    """Reference: one matmul per expert (reads ``offs`` on the host; no CUDA graph)."""
    ends = offs.tolist()
    out = x.new_empty(x.shape[0], w_t.shape[-1])
    start = 0
    for e, end in enumerate(ends):
        if end > start:
            out[start:end] = x[start:end] @ w_t[e]
        start = end
    return out


def equal_groups_mm(gmm: GroupedMm, x, w_t, offs, groups: int):
    """The grouped GEMM of equal groups (``bmm`` where no grouped GEMM is available)."""
    if gmm.api != "bmm":
        return gmm(x, w_t, offs)
    m = x.shape[0] // groups
    return (x.view(groups, m, -1) @ w_t).view(groups * m, -1)


def detect_grouped_mm(device, dtype) -> GroupedMm:
    """The first grouped GEMM API that gives the right answer on uneven groups, inside a
    CUDA graph on a GPU: ``torch._grouped_mm``, ``torch.nn.functional.grouped_mm``, else
    ``bmm``."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(0)
    sizes = [3, 0, 17, 8]
    x = torch.randn(sum(sizes), 64, generator=gen).to(device, dtype)
    w = torch.randn(len(sizes), 32, 64, generator=gen).to(device, dtype)  # [E, n, k]
    offs = torch.tensor(sizes, dtype=torch.int32).cumsum(0, dtype=torch.int32).to(device)
    ref = _loop_grouped_mm(x.float(), w.float().transpose(-2, -1), offs)
    for api in ("torch._grouped_mm", "torch.nn.functional.grouped_mm"):
        gmm = GroupedMm(api)
        try:
            held = {}

            def body(gmm=gmm, held=held) -> None:
                held["out"] = gmm(x, w.transpose(-2, -1), offs)

            capture(body, device)()
            synchronize(device)
            err = (held["out"].float() - ref).norm() / ref.norm()
            if math.isfinite(float(err)) and float(err) < 2e-2:
                return gmm
        except (AttributeError, RuntimeError, TypeError, NotImplementedError):
            continue
    return GroupedMm("bmm")


def grouped_gemms(
    models: list[ModelSpec], plan: MoePlan, gmm: GroupedMm, device, dtype
) -> Iterator[dict]:
    """One row per (model expert shape, GEMM, tokens per expert)."""
    import torch

    seen = set()
    for model in models:
        for op, k, n in expert_shapes(model):
            key = (k, n, model.num_experts)
            if key in seen:
                continue
            seen.add(key)
            experts = model.num_experts
            # [E, n, k] (nn.Linear layout); the GEMM reads its transpose, K-major.
            w = torch.randn(experts, n, k, device=device, dtype=dtype).mul_(0.02).transpose(-2, -1)
            for m in plan.tokens_per_expert:
                yield _one(model, op, w, m, plan, gmm, device, dtype)
            # Decode of a few tokens: one row each on a few active experts (not fitted).
            for groups in active_groups(model):
                yield _one(model, op, w, 1, plan, gmm, device, dtype, groups=groups)
            del w
            free_memory(device)


def active_groups(model: ModelSpec) -> list[int]:
    """Active experts of a few-token decode: top-k times 1, 2, 4 and 8, below all experts."""
    top_k = model.experts_per_token
    return [top_k * f for f in (1, 2, 4, 8) if top_k * f < model.num_experts]


def _one(
    model: ModelSpec,
    op: str,
    w_t,
    m: int,
    plan: MoePlan,
    gmm,
    device,
    dtype,
    groups: int | None = None,
) -> dict:
    """One grouped GEMM row: ``m`` rows on each of ``groups`` experts (default: as many of
    the model's experts as ``plan.max_rows`` allows, kind ``grouped_gemm``; given: kind
    ``grouped_gemm_active``, a few active experts)."""
    import torch

    experts, k, n = w_t.shape
    kind = "grouped_gemm" if groups is None else "grouped_gemm_active"
    groups = groups or groups_for(model, m, plan.max_rows)
    expert_bytes = 2.0 * k * n
    # Rotate over disjoint windows of the experts so that L2 cannot serve the weights.
    windows = max(1, min(experts // groups, math.ceil(ROTATE_BYTES / (groups * expert_bytes))))
    rows = groups * m
    x = torch.randn(rows, k, device=device, dtype=dtype)
    offs = torch.full((groups,), m, dtype=torch.int32, device=device).cumsum(0, dtype=torch.int32)

    def make(i: int):
        w = w_t[i * groups : (i + 1) * groups]
        return lambda: equal_groups_mm(gmm, x, w, offs, groups)

    flops = 2.0 * rows * k * n
    moved = groups * expert_bytes + 2.0 * rows * (k + n)
    t, count = _per_kernel(
        make, windows, device, plan.warmup, plan.iters, _estimate_s(flops / 0.5, moved)
    )
    return {
        "kind": kind,
        "model": model.name,
        "op": op,
        "tokens_per_expert": m,
        "experts": groups,
        "model_experts": model.num_experts,
        "top_k": model.experts_per_token,
        "rows": rows,
        "k": k,
        "n": n,
        **t.fields(),
        "tflops": flops / (t.ms * 1e-3) / 1e12,
        "gbps": moved / (t.ms * 1e-3) / 1e9,
        "dtype": "bf16",
        "api": gmm.api,
        "graph": is_cuda(device),
        "kernels_per_graph": count,
    }


def describe(gmm: GroupedMm) -> dict[str, Any]:
    """The ``grouped_mm`` fields of the env row: which API ran the grouped GEMMs."""
    import torch

    return {"grouped_mm": gmm.api, "torch_has_grouped_mm": hasattr(torch, "_grouped_mm")}
