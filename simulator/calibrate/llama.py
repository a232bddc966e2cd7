"""Whole forward steps of a Llama-shaped model with random weights, as the shared file ran.

Per layer: RMSNorm → one fused QKV GEMM → rotary embedding → KV-cache write → attention →
output GEMM → residual add → RMSNorm → fused gate+up GEMM → SiLU × up → down GEMM →
residual add; after the last layer RMSNorm → LM-head GEMM for the rows that need logits.
Norms are ``F.rms_norm``; rotary is the Hugging Face ``rotate_half`` form (unfused
elementwise ops). Attention
is ``scaled_dot_product_attention``: causal for new tokens, over a contiguous per-sequence
KV cache of ``context + 1`` tokens for decodes; a prefill chunk after cached tokens uses a
lower-right causal mask over its cache (flash kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from simulator.calibrate.kernels import sdpa
from simulator.specs.model import ModelSpec

#: Standard deviation of the random weights (keeps activations finite; values do not
#: change the time of dense kernels).
WEIGHT_STD = 0.02
ROPE_THETA = 500000.0
RMS_EPS = 1e-5


@dataclass(frozen=True)
class Step:
    """One step: ``prefill_count`` chunks of ``prefill_new`` tokens after ``prefill_cached``
    cached tokens each, fused with ``decode_count`` decodes after ``decode_context`` tokens."""

    prefill_count: int = 0
    prefill_new: int = 0
    prefill_cached: int = 0
    decode_count: int = 0
    decode_context: int = 0

    @property
    def prefill_tokens(self) -> int:
        return self.prefill_count * self.prefill_new

    @property
    def tokens(self) -> int:
        return self.prefill_tokens + self.decode_count

    def context_tokens(self) -> int:
        """Cached tokens the step starts from (batch x context; the grid limit counts these)."""
        return self.prefill_count * (self.prefill_cached + self.prefill_new) + (
            self.decode_count * self.decode_context
        )

    def kv_tokens(self) -> int:
        """KV-cache tokens this step allocates (per layer)."""
        pre = self.prefill_count * (self.prefill_cached + self.prefill_new)
        return pre + self.decode_count * (self.decode_context + 1)


class LlamaModel:
    """Random bf16 weights of a dense Llama-shaped model on one device."""

    def __init__(self, spec: ModelSpec, device: Any, dtype: Any, seed: int = 0) -> None:
        import torch

        self._check(spec)
        self.spec, self.device, self.dtype = spec, device, dtype
        gen = torch.Generator(device=device).manual_seed(seed)
        h, d = spec.hidden_size, spec.head_dim
        heads, kv = spec.num_attention_heads, spec.num_kv_heads

        def weight(*shape: int):
            w = torch.randn(*shape, generator=gen, device=device, dtype=torch.float32)
            return (w * WEIGHT_STD).to(dtype)

        self.layers = []
        for _ in range(spec.num_layers):
            self.layers.append(
                {
                    "qkv": weight(h, (heads + 2 * kv) * d),
                    "o": weight(heads * d, h),
                    **self._mlp_weights(weight),
                    "norm1": torch.ones(h, device=device, dtype=dtype),
                    "norm2": torch.ones(h, device=device, dtype=dtype),
                }
            )
        self.embedding = weight(spec.vocab_size, h)
        self.final_norm = torch.ones(h, device=device, dtype=dtype)
        self.lm_head = weight(h, spec.vocab_size)
        inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        self.inv_freq = inv_freq.to(device)

    @staticmethod
    def _check(spec: ModelSpec) -> None:
        if spec.is_moe or spec.uses_mla or not spec.gated_mlp:
            raise ValueError(f"{spec.name}: only dense gated-MLP GQA models are supported")

    def _mlp_weights(self, weight) -> dict:
        """One layer's MLP weights (``weight(k, n)`` draws a random ``[k, n]`` matrix)."""
        h, inter = self.spec.hidden_size, self.spec.intermediate_size
        return {"gate_up": weight(h, 2 * inter), "down": weight(inter, h)}

    def mlp(self, layer: dict, hn):
        """The MLP of one layer over normed rows ``hn``: fused gate+up GEMM, SiLU x up, down."""
        import torch.nn.functional as F

        gate, up = (hn @ layer["gate_up"]).chunk(2, dim=-1)
        return (F.silu(gate) * up) @ layer["down"]

    def parameter_count(self) -> int:
        total = sum(t.numel() for layer in self.layers for t in layer.values())
        return total + self.embedding.numel() + self.final_norm.numel() + self.lm_head.numel()

    # --- one step ---------------------------------------------------------------------------
    def prepare(self, step: Step) -> dict:
        """Static inputs and KV caches of ``step`` (reused by every replay)."""
        import torch

        spec, dev = self.spec, self.device
        kv, d = spec.num_kv_heads, spec.head_dim
        positions, logit_rows = [], []
        for i in range(step.prefill_count):
            start = step.prefill_cached
            positions += range(start, start + step.prefill_new)
            logit_rows.append((i + 1) * step.prefill_new - 1)
        positions += [step.decode_context] * step.decode_count
        logit_rows += range(step.prefill_tokens, step.tokens)
        gen = torch.Generator(device="cpu").manual_seed(1)
        tokens = torch.randint(0, spec.vocab_size, (step.tokens,), generator=gen)
        pos = torch.tensor(positions, dtype=torch.float32)
        freqs = torch.outer(pos, self.inv_freq.cpu())
        emb = torch.cat((freqs, freqs), dim=-1)
        state = {
            "tokens": tokens.to(dev),
            "cos": emb.cos()[:, None, :].to(dev, self.dtype),
            "sin": emb.sin()[:, None, :].to(dev, self.dtype),
            "logit_rows": torch.tensor(logit_rows, dtype=torch.long).to(dev),
            "prefill_cache": [],
            "decode_cache": [],
        }
        for _ in self.layers:
            if step.prefill_count:
                length = step.prefill_cached + step.prefill_new
                shape = (step.prefill_count, kv, length, d)
                state["prefill_cache"].append(
                    (
                        torch.randn(shape, device=dev, dtype=self.dtype),
                        torch.randn(shape, device=dev, dtype=self.dtype),
                    )
                )
            if step.decode_count:
                shape = (step.decode_count, kv, step.decode_context + 1, d)
                state["decode_cache"].append(
                    (
                        torch.randn(shape, device=dev, dtype=self.dtype),
                        torch.randn(shape, device=dev, dtype=self.dtype),
                    )
                )
        if step.prefill_cached:
            from torch.nn.attention.bias import causal_lower_right

            state["mask"] = causal_lower_right(
                step.prefill_new, step.prefill_cached + step.prefill_new
            )
        return state

    def forward(self, step: Step, state: dict, *, gqa: bool):
        """Logits of one step (rows: last token of each prefill chunk, every decode)."""
        import torch
        import torch.nn.functional as F

        spec = self.spec
        heads, kv, d = spec.num_attention_heads, spec.num_kv_heads, spec.head_dim
        tokens = step.tokens
        pre, chunks, new = step.prefill_tokens, step.prefill_count, step.prefill_new
        cached, dec, ctx = step.prefill_cached, step.decode_count, step.decode_context
        x = F.embedding(state["tokens"], self.embedding)
        cos, sin = state["cos"], state["sin"]
        for i, layer in enumerate(self.layers):
            hn = _rms_norm(x, layer["norm1"])
            qkv = hn @ layer["qkv"]
            q = qkv[:, : heads * d].view(tokens, heads, d)
            k = qkv[:, heads * d : (heads + kv) * d].view(tokens, kv, d)
            v = qkv[:, (heads + kv) * d :].view(tokens, kv, d)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            outs = []
            if pre:
                kc, vc = state["prefill_cache"][i]
                qp = q[:pre].view(chunks, new, heads, d).transpose(1, 2)
                kc[:, :, cached:] = k[:pre].view(chunks, new, kv, d).transpose(1, 2)
                vc[:, :, cached:] = v[:pre].view(chunks, new, kv, d).transpose(1, 2)
                if cached and gqa:  # flash kernel, lower-right causal, grouped heads
                    mask = state["mask"]
                    attn = F.scaled_dot_product_attention(
                        qp, kc, vc, attn_mask=mask, enable_gqa=True
                    )
                elif cached:
                    groups = heads // kv
                    kx = kc.repeat_interleave(groups, dim=1)
                    vx = vc.repeat_interleave(groups, dim=1)
                    attn = F.scaled_dot_product_attention(qp, kx, vx, attn_mask=state["mask"])
                else:
                    attn = sdpa(qp, kc, vc, causal=True, gqa=gqa)
                outs.append(attn.transpose(1, 2).reshape(pre, heads * d))
            if dec:
                kc, vc = state["decode_cache"][i]
                qd = q[pre:].view(dec, 1, heads, d).transpose(1, 2)
                kc[:, :, ctx : ctx + 1] = k[pre:].view(dec, 1, kv, d).transpose(1, 2)
                vc[:, :, ctx : ctx + 1] = v[pre:].view(dec, 1, kv, d).transpose(1, 2)
                attn = sdpa(qd, kc, vc, causal=False, gqa=gqa)
                outs.append(attn.transpose(1, 2).reshape(dec, heads * d))
            attn_out = outs[0] if len(outs) == 1 else torch.cat(outs)
            x = x + attn_out @ layer["o"]
            x = x + self.mlp(layer, _rms_norm(x, layer["norm2"]))
        hn = _rms_norm(x, self.final_norm)
        return hn.index_select(0, state["logit_rows"]) @ self.lm_head


def _rms_norm(x, weight):
    """``torch.nn.functional.rms_norm`` (one fused kernel on CUDA in recent PyTorch), or the
    reference fp32 formula on versions without it."""
    import torch
    import torch.nn.functional as F

    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, RMS_EPS)
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)
    return weight * xf.to(x.dtype)


def norm_kind() -> str:
    """How ``_rms_norm`` runs on this PyTorch (recorded in each step row)."""
    import torch.nn.functional as F

    return "F.rms_norm" if hasattr(F, "rms_norm") else "fp32-reference"


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def kv_bytes(spec: ModelSpec, step: Step) -> int:
    """Bytes of the KV cache a step allocates over all layers (bf16)."""
    return step.kv_tokens() * 2 * spec.num_kv_heads * spec.head_dim * 2 * spec.num_layers


def fits(spec: ModelSpec, step: Step, free_bytes: float) -> bool:
    """Whether a step's KV cache and activations fit in ``free_bytes`` (with headroom)."""
    act = step.tokens * (spec.intermediate_size * 2 + spec.hidden_size * 8) * 4
    logits = (step.prefill_count + step.decode_count) * spec.vocab_size * 2
    need = kv_bytes(spec, step) + act + logits
    return need < 0.85 * free_bytes and math.isfinite(need)
