"""Plain data of one replica's scheduler: its settings and the states a request goes through
(waiting, being prefilled, swapped out)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.policies.base import rank_share


@dataclass(frozen=True)
class ReplicaConfig:
    """Scheduler limits, KV-cache geometry and preemption settings of one replica."""

    max_num_seqs: int
    max_num_batched_tokens: int
    kv_block_size: int
    total_kv_blocks: int
    #: Fraction of KV blocks kept free at admission so running sequences can grow (vLLM: 0.01).
    kv_watermark_fraction: float = 0.01
    gpus: int = 1
    prefix_caching: bool = False
    #: "recompute" (drop the KV, prefill it again later) or "swap" (to host memory and back).
    preemption: str = "recompute"
    #: Host memory for swapped KV per replica (bytes); when full, preemption recomputes.
    swap_space_bytes: float = 0.0
    #: KV bytes per token of the whole replica (all its GPUs), for swap traffic.
    kv_bytes_per_token: float = 0.0
    #: Host-link bandwidth per GPU (bytes/s, one direction) and its latency (s), for swaps.
    host_link_bytes_per_s: float = 0.0
    host_link_latency_s: float = 0.0
    #: Admit a request only when the KV blocks of its whole sequence (prompt and every
    #: output token) fit beside the growth still due to the admitted ones, so nothing is
    #: ever preempted (TensorRT-LLM's GUARANTEED_NO_EVICT); False: its prompt's blocks.
    reserve_whole_sequence: bool = False
    #: Attention-data-parallel ranks, each scheduling its own sequences under an equal share
    #: of ``max_num_batched_tokens`` (1: none).
    data_parallel_ranks: int = 1

    @property
    def max_chunk_tokens(self) -> int | None:
        """Most prompt tokens one sequence prefills in a step: the token budget of the
        attention-data-parallel rank it runs on (None: the replica's whole budget)."""
        if self.data_parallel_ranks <= 1:
            return None
        return rank_share(self.max_num_batched_tokens, self.data_parallel_ranks)


@dataclass(slots=True)
class Waiting:
    """A request queued on a replica (new, preempted, or arriving with its KV prefilled)."""

    ordinal: int
    arrival_s: float
    context_tokens: int  # tokens its KV cache must hold once admitted
    remaining: int  # output tokens still to produce after admission's first token
    priority: int
    started: bool  # it already produced its first token (preempted)
    last_token_s: float = math.nan
    prefix_id: int = -1
    prefix_tokens: int = 0
    #: KV already computed elsewhere (disaggregated decode): admission prefills nothing.
    prefilled: bool = False


@dataclass(slots=True)
class Prefilling:
    """An admitted sequence whose prompt is (partly) being prefilled."""

    source: Waiting
    todo: int  # prompt tokens still to prefill
    done: int  # tokens already in its KV cache (cache hit + chunks so far)
    own_blocks: int  # KV blocks taken for it (beyond shared cached blocks)
    shared_blocks: int


@dataclass(slots=True)
class Swapped:
    ordinal: int
    context: int
    remaining: int
    last_token_s: float
