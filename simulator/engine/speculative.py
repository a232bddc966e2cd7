"""Speculative decoding priced on top of a target model's cost model.

Each decode step becomes: the draft proposes ``k`` tokens (``k`` draft decode steps), then the
target verifies them in one step over ``k + 1`` tokens per sequence. With each proposed
token accepted independently with probability ``a``, a step yields on average
``E = (1 - a^(k+1)) / (1 - a)`` tokens per sequence (the accepted run plus the target's own
token). The engine advances one token per step, so a speculative step is charged as its
duration divided by ``E``: throughput, TPOT and end-to-end latency are right in expectation,
while inter-token gaps are smoothed (real tokens arrive in bursts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simulator.costmodel import OpCost, StepCost
from simulator.costmodel.shape import StepShape


def expected_tokens_per_step(k: int, acceptance_rate: float) -> float:
    """Mean tokens a sequence gains per verify step: 1 + a + a^2 + ... + a^k."""
    a = acceptance_rate
    return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


class SpeculativeCostModel:
    """A cost model whose pure-decode steps are draft-and-verify steps (per produced token)."""

    def __init__(self, target, draft, k: int, acceptance_rate: float):
        self.target = target
        self.draft = draft
        self.k = k
        self.acceptance_rate = acceptance_rate
        self.tokens_per_step = expected_tokens_per_step(k, acceptance_rate)

    def _shapes(self, seqs: int, context_tokens: int) -> tuple[StepShape, StepShape]:
        """One draft step and the verify step over ``k + 1`` tokens per sequence."""
        k = self.k
        draft = StepShape(decode_seqs=seqs, decode_context_tokens=context_tokens, logits_rows=seqs)
        verify = StepShape(
            prefill_tokens=seqs * (k + 1),
            prefill_seqs=seqs,
            prefill_attn_pairs=(k + 1) * (context_tokens + seqs * (k + 2) / 2),
            prefill_kv_tokens=context_tokens + seqs * (k + 1),
            logits_rows=seqs * (k + 1),
        )
        return draft, verify

    def spec_step_s(self, seqs: int, context_tokens: int) -> float:
        """Duration (s) of one draft-and-verify step of ``seqs`` sequences."""
        draft, verify = self._shapes(seqs, context_tokens)
        return self.k * self.draft.step_time_s(draft) + self.target.step_time_s(verify)

    def step_time_s(self, shape: StepShape) -> float:
        if shape.prefill_tokens or not shape.decode_seqs:
            return self.target.step_time_s(shape)  # prompts and mixed steps run plainly
        return self.spec_step_s(shape.decode_seqs, shape.decode_context_tokens) / (
            self.tokens_per_step
        )

    def decode_run_s(self, decode_seqs: int, context_tokens: int, n_steps: int) -> np.ndarray:
        per_token = self.tokens_per_step
        return np.array(
            [
                self.spec_step_s(decode_seqs, context_tokens + i * decode_seqs) / per_token
                for i in range(n_steps)
            ]
        )

    def price(self, shape: StepShape) -> StepCost:
        """The step with its ops: for decodes, the draft's ops (``k`` times) and the verify
        step's, each per produced token; ``total_s`` equals ``step_time_s(shape)``."""
        if shape.prefill_tokens or not shape.decode_seqs:
            return self.target.price(shape)
        draft, verify = self._shapes(shape.decode_seqs, shape.decode_context_tokens)
        per_token = 1.0 / self.tokens_per_step
        ops = _scaled(self.draft.price(draft).ops, self.k * per_token, "draft ")
        ops += _scaled(self.target.price(verify).ops, per_token, "verify ")
        return StepCost(self.step_time_s(shape), ops)


def _scaled(ops: tuple[OpCost, ...], factor: float, prefix: str) -> tuple[OpCost, ...]:
    return tuple(
        dataclasses.replace(
            op,
            name=prefix + op.name,
            flops=op.flops * factor,
            bytes=op.bytes * factor,
            time_s=op.time_s * factor,
        )
        for op in ops
    )


class OneLayerDraft:
    """A multi-token-prediction head priced as one transformer layer of the target: the
    target's step divided by its layers."""

    def __init__(self, target, num_layers: int):
        self._target = target
        self._layers = num_layers

    def step_time_s(self, shape: StepShape) -> float:
        return self._target.step_time_s(shape) / self._layers

    def price(self, shape: StepShape) -> StepCost:
        cost = self._target.price(shape)
        return StepCost(cost.total_s / self._layers, _scaled(cost.ops, 1 / self._layers, ""))
