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


class ShapeBuffer:
    """The shape of one step, rewritten in place step after step and read by the cost model
    as a ``costmodel.StepShape`` (same fields): a replica allocates no shape per step."""

    __slots__ = (
        "decode_context_tokens",
        "decode_seqs",
        "logits_rows",
        "prefill_attn_pairs",
        "prefill_kv_tokens",
        "prefill_seqs",
        "prefill_tokens",
    )

    def __init__(self) -> None:
        self.prefill_tokens = 0
        self.prefill_seqs = 0
        self.prefill_attn_pairs = 0.0
        self.prefill_kv_tokens = 0
        self.decode_seqs = 0
        self.decode_context_tokens = 0
        self.logits_rows = 0

    @property
    def tokens(self) -> int:
        """Tokens through the linear layers: prefill tokens plus one per decoding sequence."""
        return self.prefill_tokens + self.decode_seqs


def prompt_chunks(
    prefilling: list[Prefilling], budget: int, max_chunk: int | None = None
) -> list[tuple[Prefilling, int]]:
    """Prompt tokens each partly prefilled sequence gets from a budget of ``budget``, in
    admission order (the last one may get a chunk), at most ``max_chunk`` each (None: no
    bound)."""
    chunks = []
    for p in prefilling:
        if budget <= 0:
            break
        if not p.todo:
            continue
        take = p.todo if p.todo <= budget else budget
        if max_chunk is not None and take > max_chunk:
            take = max_chunk
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
    shape: ShapeBuffer,
) -> Step:
    """Prompt ``chunks`` with a decode step of ``decodes`` running sequences (0: none);
    ``extra_s`` of swap traffic is charged to it. ``shape`` is rewritten to price it."""
    tokens = 0
    pairs = 0.0
    kv_tokens = 0
    completing = 0
    for p, take in chunks:
        tokens += take
        pairs += take * (p.done + (take + 1) / 2)
        kv_tokens += p.done + take
        completing += take == p.todo
    shape.prefill_tokens = tokens
    shape.prefill_seqs = len(chunks)
    shape.prefill_attn_pairs = pairs
    shape.prefill_kv_tokens = kv_tokens
    shape.decode_seqs = decodes
    shape.decode_context_tokens = batch.context_sum if decodes else 0
    shape.logits_rows = decodes + completing
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


#: Most decode steps priced one by one when a run may stop at the next arrival (a few, as
#: arrivals come every few steps); beyond, the rest of the run is priced as one array.
SCALAR_STEPS = 16


def decode_run_steps(
    cost: StepPricer,
    batch: RunningBatch,
    max_steps: int,
    now_s: float,
    horizon_s: float,
    shape: ShapeBuffer,
) -> int:
    """Identical decode steps to run before asking the policy again: at most ``max_steps``,
    until the shortest request ends, and until the first step boundary after
    ``horizon_s`` (when the next arrival could join), bounded from the first step's
    duration (durations never shrink as contexts grow)."""
    steps = min(batch.shortest, max_steps)
    if horizon_s < math.inf and steps > 1:
        first = cost.step_time_s(_decode_shape(shape, batch.size, batch.context_sum))
        steps = max(1, min(steps, math.ceil((horizon_s - now_s) / first) + 1))
    return steps


def prices_runs_step_by_step(cost: StepPricer) -> bool:
    """Whether a run of decode steps may be priced one step at a time (``step_time_s``) and
    give ``decode_run_s``'s durations to the last bit: so for the roofline pricing. Measured
    kernel grids (``CostConfig.kernels``) interpolate a run with numpy's vector log and exp,
    which may differ in the last bit from a single step's scalar math (and with the run's
    length), so their runs are priced as arrays of the length bounded before the run."""
    config = getattr(cost, "config", None)
    return getattr(config, "kernels", None) is None


def _decode_shape(shape: ShapeBuffer, seqs: int, context_tokens: int) -> ShapeBuffer:
    shape.decode_seqs = shape.logits_rows = seqs
    shape.decode_context_tokens = context_tokens
    return shape


def decode_run(
    cost: StepPricer,
    batch: RunningBatch,
    steps: int,
    now_s: float,
    horizon_s: float,
    extra_s: float,
    shape: ShapeBuffer,
    step_by_step: bool = True,
) -> Step:
    """At most ``steps`` decode steps of the whole running batch, ending at the first step
    boundary after ``horizon_s`` (the next arrival); ``extra_s`` of swap traffic is charged
    to the first. ``shape`` (pure decode) is rewritten to price them.

    A run that may stop at the horizon is priced step by step (``step_time_s``) where that
    gives the array's durations (``step_by_step``), else, like a longer run, as one array
    (``decode_run_s``); end times are running sums from the first step, plus ``now_s``,
    either way."""
    n = batch.size
    context = batch.context_sum
    single = steps == 1 or horizon_s <= now_s
    if not single and (horizon_s == math.inf or not step_by_step):
        durations = cost.decode_run_s(n, context, steps)
        durations[0] += extra_s
        ends = np.cumsum(durations)
        ends += now_s
        return _run_step(batch, now_s, ends, durations, horizon_s)
    limit = 1 if single else min(steps, SCALAR_STEPS)
    step_time_s = cost.step_time_s
    _decode_shape(shape, n, context)
    first = d = step_time_s(shape)
    d += extra_s
    durations_list = [d]
    total = d
    end = total + now_s
    done = 1
    while done < limit and end <= horizon_s:
        shape.decode_context_tokens = context + done * n
        d = step_time_s(shape)
        durations_list.append(d)
        total += d
        end = total + now_s
        done += 1
    if single:
        return Step(
            delay_s=end - now_s,
            end_s=end,
            busy_s=d,
            seqs=n,
            tokens=n,
            chunks=[],
            decode_steps=1,
            first_end_s=end,
            may_finish=batch.shortest == 1,
        )
    if horizon_s < end or done == steps:
        later = durations_list[1:] if done > 1 else None
        return _decode_steps(batch, now_s, end, done, durations_list[0] + now_s, later)
    # far from the horizon: the rest as an array, enough to pass it (durations never shrink)
    reach = min(steps, max(done + 1, math.ceil((horizon_s - now_s) / first) + 1))
    rest = cost.decode_run_s(n, context + done * n, reach - done)
    durations = np.concatenate((durations_list, rest))
    sums = np.cumsum(np.concatenate(((total,), rest)))  # running sums continued exactly
    ends = np.concatenate((np.cumsum(durations_list), sums[1:]))
    ends += now_s
    return _run_step(batch, now_s, ends, durations, horizon_s)


def _run_step(
    batch: RunningBatch,
    now_s: float,
    ends: np.ndarray,
    durations: np.ndarray,
    horizon_s: float = math.inf,
) -> Step:
    """The step of a decode run with these step ``ends``, cut at the first after ``horizon_s``."""
    if horizon_s < ends[-1]:
        steps = int(np.searchsorted(ends, horizon_s, side="left")) + 1
    else:
        steps = len(ends)
    end = float(ends[steps - 1])
    later = durations[1:steps] if steps > 1 else None
    return _decode_steps(batch, now_s, end, steps, float(ends[0]), later)


def _decode_steps(
    batch: RunningBatch,
    now_s: float,
    end_s: float,
    steps: int,
    first_end_s: float,
    later_s: np.ndarray | list[float] | None,
) -> Step:
    """``steps`` decode steps of the whole running batch from ``now_s`` to ``end_s`` (s), the
    first ending at ``first_end_s``, the later ones lasting ``later_s``."""
    n = batch.size
    return Step(
        delay_s=end_s - now_s,
        end_s=end_s,
        busy_s=end_s - now_s,
        seqs=n,
        tokens=n,
        chunks=[],
        decode_steps=steps,
        first_end_s=first_end_s,
        later_s=later_s,
        may_finish=steps == batch.shortest,
        count=steps,
    )


def static_decode(cost: StepPricer, batch: RunningBatch, now_s: float) -> Step:
    """Decode steps of a whole static batch until its next request ends; finished rows are
    computed with the batch (padding) but produce nothing."""
    n = batch.size
    live = batch.live_rows()
    steps = batch.shortest
    durations = cost.decode_run_s(n, batch.context_sum, steps)
    ends = now_s + np.cumsum(durations)
    end = float(ends[-1])
    last = batch.clock + steps
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
        finishing=np.array([e == last for e in batch.end], dtype=bool),
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
