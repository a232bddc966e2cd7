"""Aggregate description of one forward step: just enough to price it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepShape:
    """What one forward step computes, summed over the sequences in its batch.

    A step may fuse prefill chunks (new prompt tokens, possibly after cached ones) with
    decoding sequences (one new token each). The sums below are all the cost model needs.
    """

    prefill_tokens: int = 0
    """New tokens of all prefill chunks in the step."""
    prefill_seqs: int = 0
    """Number of prefill chunks (sequences) in the step."""
    prefill_attn_pairs: float = 0.0
    """Causal query-key pairs of prefill attention: sum over chunks of new*(cached + (new+1)/2)."""
    prefill_kv_tokens: int = 0
    """KV tokens read by prefill attention: sum over chunks of (cached + new)."""
    decode_seqs: int = 0
    """Sequences adding one token each."""
    decode_context_tokens: int = 0
    """Sum of cached context over decoding sequences (the new token not included)."""
    logits_rows: int = 0
    """Rows that need the LM head: decodes plus the last chunk of each finishing prompt."""

    @property
    def tokens(self) -> int:
        """Tokens through the linear layers: prefill tokens plus one per decoding sequence."""
        return self.prefill_tokens + self.decode_seqs

    @staticmethod
    def build(
        prefills: Sequence[tuple[int, int]] = (),
        decode_contexts: Sequence[int] = (),
        prefill_logits: int | None = None,
    ) -> StepShape:
        """Shape of a step from its parts.

        ``prefills``: (new_tokens, cached_tokens) per chunk. ``decode_contexts``: cached
        tokens per decoding sequence. ``prefill_logits``: how many prefill chunks finish their
        prompt and need logits (default: all of them).
        """
        new_total = 0
        pairs = 0.0
        kv_tokens = 0
        for new, cached in prefills:
            if new < 0 or cached < 0:
                raise ValueError(f"prefill chunk ({new}, {cached}): token counts must be >= 0")
            new_total += new
            pairs += new * (cached + (new + 1) / 2)
            kv_tokens += cached + new
        n_prefill = len(prefills)
        if prefill_logits is None:
            prefill_logits = n_prefill
        if not 0 <= prefill_logits <= n_prefill:
            raise ValueError(f"prefill_logits {prefill_logits} must be within 0..{n_prefill}")
        context = 0
        for c in decode_contexts:
            if c < 0:
                raise ValueError(f"decode context {c} must be >= 0")
            context += c
        n_decode = len(decode_contexts)
        return StepShape(
            prefill_tokens=new_total,
            prefill_seqs=n_prefill,
            prefill_attn_pairs=pairs,
            prefill_kv_tokens=kv_tokens,
            decode_seqs=n_decode,
            decode_context_tokens=context,
            logits_rows=n_decode + prefill_logits,
        )

    @staticmethod
    def uniform(
        *,
        prefill_count: int = 0,
        prefill_new: int = 0,
        prefill_cached: int = 0,
        decode_count: int = 0,
        decode_context: int = 0,
    ) -> StepShape:
        """Shape of ``prefill_count`` equal chunks plus ``decode_count`` equal decodes (O(1))."""
        return StepShape(
            prefill_tokens=prefill_count * prefill_new,
            prefill_seqs=prefill_count,
            prefill_attn_pairs=prefill_count
            * prefill_new
            * (prefill_cached + (prefill_new + 1) / 2),
            prefill_kv_tokens=prefill_count * (prefill_cached + prefill_new),
            decode_seqs=decode_count,
            decode_context_tokens=decode_count * decode_context,
            logits_rows=decode_count + (prefill_count if prefill_new > 0 else 0),
        )

    def __add__(self, other: StepShape) -> StepShape:
        """Two parts of one step fused into one batch."""
        return StepShape(
            self.prefill_tokens + other.prefill_tokens,
            self.prefill_seqs + other.prefill_seqs,
            self.prefill_attn_pairs + other.prefill_attn_pairs,
            self.prefill_kv_tokens + other.prefill_kv_tokens,
            self.decode_seqs + other.decode_seqs,
            self.decode_context_tokens + other.decode_context_tokens,
            self.logits_rows + other.logits_rows,
        )
