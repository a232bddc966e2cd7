"""Whole forward steps of an MoE model with random weights (the Llama recipe with an MoE MLP).

Attention, norms, rotary, KV cache and LM head are those of ``llama.LlamaModel``. The MLP
of every layer is a routed mixture of experts, as PyTorch reference MoE code runs it:

router GEMM → top-k of the logits → softmax over the k (Qwen3's and Mixtral's routing
weights: softmax over all experts renormalised over the top k) → sort the token-expert
pairs by expert (stable ``argsort``; per-expert counts by ``scatter_add_``, cumulative
offsets) → gather the rows → grouped gate+up GEMM → SiLU × up → grouped down GEMM → scale
by the routing weights → ``index_add_`` back to the tokens.

Routing: random weights route the tokens of one prompt alike (causal attention averages
their hidden states), which no trained, load-balanced model does. So a static random draw
per token and layer (``ROUTING_NOISE_STD`` in logit units, far above the router's own
spread) is added to the router logits: each token picks its experts uniformly at random, as
the cost model assumes, while the router GEMM, softmax and top-k still run. Nothing reads
the routing on the host, so a whole step is one CUDA graph. Rows record how many experts
the first layer's routing touched and its busiest expert's load over the mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from simulator.calibrate.kernels import _per_kernel
from simulator.calibrate.llama import LlamaModel
from simulator.calibrate.moe_kernels import GroupedMm
from simulator.calibrate.moe_plan import MoeStepModel
from simulator.calibrate.timing import capture, free_memory, is_cuda, time_region
from simulator.specs.model import ModelSpec

#: Spread of the random draw added to router logits (the router's own is about 1).
ROUTING_NOISE_STD = 100.0


def route(logits, top_k: int, experts: int):
    """Routing of ``logits`` [tokens, experts]: (weight of each row sorted by expert,
    cumulative per-expert row counts (int32), token of each sorted row, chosen experts)."""
    import torch

    # Top-k of the logits, then softmax over the k: the same experts and weights as softmax
    # over all experts renormalised over the top k, without underflow to tied zeros.
    top_logits, top_i = torch.topk(logits.float(), top_k, dim=-1)
    top_w = torch.softmax(top_logits, dim=-1)
    flat = top_i.flatten()
    order = torch.argsort(flat, stable=True)
    counts = torch.zeros(experts, dtype=torch.int32, device=logits.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    offs = counts.cumsum(0, dtype=torch.int32)
    row_w = top_w.flatten().index_select(0, order)
    return row_w, offs, order // top_k, top_i


def combine(expert_out, row_w, token_of_row, hn):
    """Weighted sum of each token's expert outputs (sorted rows) back to ``hn``'s rows."""
    import torch

    weighted = expert_out * row_w.to(expert_out.dtype).unsqueeze(-1)
    return torch.zeros_like(hn).index_add_(0, token_of_row, weighted)


class MoeModel(LlamaModel):
    """Random bf16 weights of an MoE model with grouped-query attention on one device."""

    def __init__(self, spec: ModelSpec, device, dtype, gmm: GroupedMm, seed: int = 0) -> None:
        self.gmm = gmm
        self._noise = None
        super().__init__(spec, device, dtype, seed)
        self._index = {id(layer): i for i, layer in enumerate(self.layers)}

    @staticmethod
    def _check(spec: ModelSpec) -> None:
        if not spec.is_moe or spec.uses_mla or not spec.gated_mlp or spec.num_shared_experts:
            raise ValueError(f"{spec.name}: only routed gated-MLP MoE models with GQA")

    def _mlp_weights(self, weight) -> dict:
        spec = self.spec
        h, experts = spec.hidden_size, spec.num_experts
        inter = spec.moe_intermediate_size or spec.intermediate_size
        return {
            "router": weight(h, experts),
            # [E, n, k] as nn.Linear stores them; the grouped GEMM reads the transpose.
            "experts_gate_up": weight(experts, 2 * inter, h).transpose(-2, -1),
            "experts_down": weight(experts, h, inter).transpose(-2, -1),
        }

    def reserve_routing(self, max_tokens: int, seed: int = 2) -> None:
        """Draw the routing noise for steps of up to ``max_tokens`` tokens (layer ``i`` uses
        rows ``i .. i + tokens`` of one table, so each layer routes a token differently)."""
        import torch

        gen = torch.Generator(device="cpu").manual_seed(seed)
        shape = (max_tokens + len(self.layers), self.spec.num_experts)
        noise = torch.randn(shape, generator=gen) * ROUTING_NOISE_STD
        self._noise = noise.to(self.device)

    def mlp(self, layer: dict, hn):
        """Routed experts over normed rows ``hn`` [tokens, hidden]; returns their sum."""
        import torch.nn.functional as F

        spec = self.spec
        i = self._index[id(layer)]
        logits = (hn @ layer["router"]).float()
        if self._noise is not None:
            logits = logits + self._noise[i : i + hn.shape[0]]
        row_w, offs, token_of_row, top_i = route(logits, spec.experts_per_token, spec.num_experts)
        if i == 0:
            self._first_top_i = top_i  # the graph's buffer: refreshed by every replay
        rows = hn.index_select(0, token_of_row)
        gate, up = self.gmm(rows, layer["experts_gate_up"], offs).chunk(2, dim=-1)
        out = self.gmm(F.silu(gate) * up, layer["experts_down"], offs)
        return combine(out, row_w, token_of_row, hn)

    def routing(self) -> dict:
        """Experts the first layer's last routing touched and its busiest load over the mean."""
        import torch

        top_i = getattr(self, "_first_top_i", None)
        if top_i is None:
            return {}
        counts = torch.bincount(top_i.flatten().cpu(), minlength=self.spec.num_experts)
        touched = int((counts > 0).sum())
        mean = float(counts.sum()) / touched if touched else 0.0
        return {"experts_touched": touched, "max_over_mean_load": float(counts.max()) / mean}


def build(
    entry: MoeStepModel, spec: ModelSpec, device, dtype, gmm: GroupedMm, max_tokens: int
) -> MoeModel:
    """The model of a plan entry, built with its first ``entry.layers`` layers."""
    layers = min(entry.layers, spec.num_layers)
    model = MoeModel(dataclasses.replace(spec, num_layers=layers), device, dtype, gmm)
    model.reserve_routing(max_tokens)
    return model


def moe_step_rows(model: MoeModel, rows: Iterator[dict]) -> Iterator[dict]:
    """``decode``/``prefill`` rows of ``steps.time_steps`` as ``moe_decode``/``moe_prefill``,
    with the layer count and the routing of the step."""
    for row in rows:
        yield {
            **row,
            "kind": f"moe_{row['kind']}",
            "layers": model.spec.num_layers,
            "lm_head": True,
            "routing": "uniform",
            "api": model.gmm.api,
            **model.routing(),
        }


def moe_layer_rows(
    model: MoeModel, tokens: tuple[int, ...], *, warmup: int, iters: int, out_of_time: Callable
) -> Iterator[dict]:
    """The MoE block alone (router to combine) of every layer in one graph, per layer."""
    import torch

    device, spec = model.device, model.spec
    for count in tokens:
        if out_of_time():
            return
        hn = torch.randn(count, spec.hidden_size, device=device, dtype=model.dtype)
        held: dict = {}

        def body(hn=hn, held=held) -> None:
            for layer in model.layers:
                held["out"] = model.mlp(layer, hn)

        with torch.inference_mode():
            t = time_region(capture(body, device), device, warmup=warmup, iters=iters)
        yield {
            "kind": "moe_layer",
            "model": spec.name,
            "tokens": count,
            "layers": spec.num_layers,
            **t.scaled(1.0 / spec.num_layers).fields(),
            "routing": "uniform",
            "api": model.gmm.api,
            **model.routing(),
        }
        held.clear()
        del hn
        free_memory(device)


def routing_rows(
    models: list[ModelSpec], tokens: tuple[int, ...], device, dtype, *, warmup: int, iters: int
) -> Iterator[dict]:
    """The single-GPU dispatch and combine around the grouped GEMMs, without them and without
    the router GEMM and activation (which the cost model prices as their own ops): top-k,
    softmax over the k, sort by expert, counts and offsets, gather of the rows, weighting
    and scatter-add back; uniform routing. One row per (expert shape, tokens), per layer."""
    import torch

    seen = set()
    for model in models:
        h, experts, top_k = model.hidden_size, model.num_experts, model.experts_per_token
        if (h, experts, top_k) in seen:
            continue
        seen.add((h, experts, top_k))
        for count in tokens:
            rows = count * top_k
            copies = 4  # distinct inputs per graph, each used once per round
            data = [
                (
                    torch.randn(count, experts, device=device, dtype=dtype) * ROUTING_NOISE_STD,
                    torch.randn(count, h, device=device, dtype=dtype),
                    torch.randn(rows, h, device=device, dtype=dtype),
                )
                for _ in range(copies)
            ]

            def make(i: int, data=data, top_k=top_k, experts=experts):
                logits, hn, expert_out = data[i]

                def body():
                    row_w, _, token_of_row, _ = route(logits, top_k, experts)
                    hn.index_select(0, token_of_row)
                    return combine(expert_out, row_w, token_of_row, hn)

                return body

            t, count_k = _per_kernel(make, copies, device, warmup, iters)
            yield {
                "kind": "moe_routing",
                "model": model.name,
                "tokens": count,
                "rows": rows,
                "hidden": h,
                "experts": experts,
                "top_k": top_k,
                **t.fields(),
                "graph": is_cuda(device),
                "calls_per_graph": count_k,
            }
            del data
            free_memory(device)
