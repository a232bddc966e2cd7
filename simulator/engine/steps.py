"""The steps a replica runs, priced: what a batch plan becomes once its prompt chunks and
decodes are known.

Every kind of plan becomes one ``Step``, which the replica runs the same way (time passes,
the prompts and the batch advance, tokens are recorded):

- a mixed step: prompt chunks, fused with a decode step of the running batch or not;
- a decode run: identical pure-decode steps back to back, priced in one vectorised call
  until the next arrival could join or the shortest request ends (the batch does not
  change in between, so this changes no result, only speed);
- a static batch's padded prefill, or its decode steps until its next request ends (rows
  already finished stay as padding and produce nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.costmodel.shape import StepShape
from simulator.engine.batch import RunningBatch
from simulator.engine.deployment import StepPricer
from simulator.engine.entities import Prefilling


@dataclass(slots=True)
class Step:
    """One event of a replica: how long it takes, what it computes and when its tokens come.

    The step takes ``delay_s`` and is charged ``busy_s`` of GPU time; it prefills
    ``chunks`` (tokens per partly prefilled sequence) and runs ``decode_steps`` decode steps
    of the running batch (only the ``live`` rows produce tokens, when given): their first
    token comes at ``first_end_s``, each later one after one of ``later_s``, the last at
    ``end_s``."""

    delay_s: float
    end_s: float
    busy_s: float
    #: Sequences and tokens in each of its steps (for utilisation and time series).
    seqs: int
    tokens: int
    chunks: list[tuple[Prefilling, int]]
    decode_steps: int = 0
    first_end_s: float = 0.0
    later_s: np.ndarray | None = None
    live: np.ndarray | None = None
    #: Static batch: the rows whose last token comes in this step (they stay as padding).
    finishing: np.ndarray | None = None
    #: Whether a running request may finish in this step (False: its batch outlives it).
    may_finish: bool = True
    #: Prompt tokens computed (the padding of a static batch's prompts left out).
    prefill_tokens: int = 0
    #: Engine iterations this step stands for.
    count: int = 1


def prompt_chunks(prefilling: list[Prefilling], budget: int) -> list[tuple[Prefilling, int]]:
    """Prompt tokens each partly prefilled sequence gets from a budget of ``budget``, in
    admission order (the last one may get a chunk)."""
    chunks = []
    for p in prefilling:
        if budget <= 0:
            break
        if not p.todo:
            continue
        take = p.todo if p.todo <= budget else budget
        chunks.append((p, take))
        budget -= take
    return chunks


def mixed_step(
    cost: StepPricer,
    chunks: list[tuple[Prefilling, int]],
    batch: RunningBatch,
    decodes: int,
    now_s: float,
    extra_s: float,
) -> Step:
    """Prompt ``chunks`` with a decode step of ``decodes`` running sequences (0: none);
    ``extra_s`` of swap traffic is charged to it."""
    tokens = 0
    pairs = 0.0
    kv_tokens = 0
    completing = 0
    for p, take in chunks:
        tokens += take
        pairs += take * (p.done + (take + 1) / 2)
        kv_tokens += p.done + take
        completing += take == p.todo
    shape = StepShape(
        prefill_tokens=tokens,
        prefill_seqs=len(chunks),
        prefill_attn_pairs=pairs,
        prefill_kv_tokens=kv_tokens,
        decode_seqs=decodes,
        decode_context_tokens=batch.context_sum if decodes else 0,
        logits_rows=decodes + completing,
    )
    dt = cost.step_time_s(shape) + extra_s
    end = now_s + dt
    return Step(
        delay_s=dt,
        end_s=end,
        busy_s=dt,
        seqs=decodes + len(chunks),
        tokens=tokens + decodes,
        chunks=chunks,
        decode_steps=1 if decodes else 0,
        first_end_s=end,
        prefill_tokens=tokens,
    )


def decode_run_steps(
    cost: StepPricer, batch: RunningBatch, max_steps: int, now_s: float, horizon_s: float
) -> tuple[int, int]:
    """Identical decode steps to run before asking the policy again: at most ``max_steps``,
    until the shortest request ends, and until the first step boundary after
    ``horizon_s`` (when the next arrival could join). Returns them and the steps the
    shortest request still needs."""
    n = batch.size
    shortest = int(batch.remaining[:n].min())
    steps = min(shortest, max_steps)
    if horizon_s < math.inf and steps > 1:
        shape = StepShape(decode_seqs=n, decode_context_tokens=batch.context_sum, logits_rows=n)
        first = cost.step_time_s(shape)
        # Step durations never shrink as contexts grow, so this many steps reach the horizon.
        steps = max(1, min(steps, math.ceil((horizon_s - now_s) / first) + 1))
    return steps, shortest


def decode_run(
    cost: StepPricer,
    batch: RunningBatch,
    steps: int,
    shortest: int,
    now_s: float,
    horizon_s: float,
    extra_s: float,
) -> Step:
    """``steps`` decode steps of the whole running batch (fewer if the run passes
    ``horizon_s``), whose shortest request needs ``shortest`` more; ``extra_s`` of swap
    traffic is charged to the first."""
    n = batch.size
    if steps == 1:
        shape = StepShape(decode_seqs=n, decode_context_tokens=batch.context_sum, logits_rows=n)
        d = cost.step_time_s(shape) + extra_s
        end = now_s + d
        return Step(
            delay_s=end - now_s,
            end_s=end,
            busy_s=d,
            seqs=n,
            tokens=n,
            chunks=[],
            decode_steps=1,
            first_end_s=end,
            may_finish=shortest == 1,
        )
    durations = cost.decode_run_s(n, batch.context_sum, steps)
    durations[0] += extra_s
    ends = np.cumsum(durations)
    ends += now_s
    if horizon_s < ends[-1]:
        steps = int(np.searchsorted(ends, horizon_s, side="left")) + 1
        durations = durations[:steps]
    end = float(ends[steps - 1])
    return Step(
        delay_s=end - now_s,
        end_s=end,
        busy_s=end - now_s,
        seqs=n,
        tokens=n,
        chunks=[],
        decode_steps=steps,
        first_end_s=float(ends[0]),
        later_s=durations[1:] if steps > 1 else None,
        may_finish=steps == shortest,
        count=steps,
    )


def static_decode(cost: StepPricer, batch: RunningBatch, live: np.ndarray, now_s: float) -> Step:
    """Decode steps of a whole static batch until its next request ends; finished rows are
    computed with the batch (padding) but produce nothing."""
    n = batch.size
    steps = int(batch.remaining[:n][live].min())
    durations = cost.decode_run_s(n, batch.context_sum, steps)
    ends = now_s + np.cumsum(durations)
    end = float(ends[-1])
    return Step(
        delay_s=end - now_s,
        end_s=end,
        busy_s=end - now_s,
        seqs=n,
        tokens=n,
        chunks=[],
        decode_steps=steps,
        first_end_s=float(ends[0]),
        later_s=durations[1:] if steps > 1 else None,
        live=live,
        finishing=live & (batch.remaining[:n] == steps),
        count=steps,
    )


def static_prefill(cost: StepPricer, chunks: list[tuple[Prefilling, int]], now_s: float) -> Step:
    """A static batch's prefill: every prompt padded to the longest one."""
    longest = max(p.todo for p, _ in chunks)
    k = len(chunks)
    dt = cost.step_time_s(StepShape.build(prefills=[(longest, 0)] * k))
    return Step(
        delay_s=dt,
        end_s=now_s + dt,
        busy_s=dt,
        seqs=k,
        tokens=k * longest,
        chunks=chunks,
        prefill_tokens=sum(take for _, take in chunks),
    )
