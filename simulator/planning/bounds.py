"""Bounds that prune a search before anything is simulated.

- **Memory**: the model must fit next to its workspace (``costmodel.memory_plan``).
- **Rate** (an upper bound on what one replica sustains, requests/s): each request needs its
  prompt prefilled and its output decoded. Prefill costs at least the per-token time of the
  largest step the engine runs (``max_num_batched_tokens`` tokens, linear layers only, no
  attention); decode costs at least the per-sequence time of the largest decode batch the
  engine may hold (``max_num_seqs``, or as many sequences as the KV cache holds at their
  prompt lengths) with every context at its prompt length. Real steps are slower (attention
  over growing contexts, smaller batches, prefill stalls), so the bound is optimistic; a
  margin (``RATE_BOUND_MARGIN``) keeps it so for steps that mix prefill and decode, and a
  replica of ``pipeline_parallel`` stages may run that many batches at once.
- **Latency** (a lower bound on each request's TTFT, TPOT, ITL and E2E, ms): the request
  alone on the replica, its prompt in one prefill step, its output decoded at batch 1. Any
  percentile of the per-request bounds lower-bounds the same percentile of the simulation,
  since each request's simulated latency is at least its bound.

The workload's own requests (same seed) are drawn once to get their lengths: the first
``LENGTH_SAMPLE_REQUESTS`` of them, however few the scenario holds, as the planner's runs
simulate at least ``plan.min_requests_per_replica`` (``planning.points``); a bound taken on
the scenario's own count would move with it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from simulator.config.scenario import Scenario
from simulator.costmodel import CostModel, MemoryPlan, StepShape, memory_plan
from simulator.specs.catalog import load_gpu, load_model

#: Requests drawn from the workload to estimate its lengths.
LENGTH_SAMPLE_REQUESTS = 1000
#: Headroom on the rate bound: a step that mixes prefill chunks with decodes (chunked
#: prefill) reads the weights once for both and pays the per-step latencies (kernel
#: launches, all-reduces) once, which the separate prefill and decode terms do not credit.
#: Chunked prefill on tensor-parallel H100/H200 replicas was simulated up to 1.37 times the
#: unmargined bound (tests/test_planning_search.py checks the bound holds).
RATE_BOUND_MARGIN = 1.5


@dataclass(frozen=True)
class LengthSample:
    """Prompt and output lengths (tokens) of the workload's first requests."""

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    @property
    def mean_prompt_tokens(self) -> float:
        return float(self.prompt_tokens.mean())

    @property
    def mean_output_tokens(self) -> float:
        return float(self.output_tokens.mean())


def sample_lengths(scenario: Scenario, max_requests: int = LENGTH_SAMPLE_REQUESTS) -> LengthSample:
    """Lengths of the first ``max_requests`` requests the scenario's workload produces, past
    its own ``num_requests`` or ``duration_s`` when those hold fewer (see the module
    docstring)."""
    from simulator.workload import build_source, iterate_requests

    workload = scenario.workload
    if (workload.num_requests or 0) < max_requests:
        workload = workload.replace(num_requests=max_requests, duration_s=None)
    source = build_source(workload, base_dir=scenario.base_dir)
    requests = list(itertools.islice(iterate_requests(source), max_requests))
    prompts = np.array([r.prompt_tokens for r in requests], dtype=np.int64)
    outputs = np.array([r.output_tokens for r in requests], dtype=np.int64)
    if len(requests) == 0:
        prompts = outputs = np.ones(1, dtype=np.int64)
    return LengthSample(prompts, outputs)


def scenario_memory_plan(scenario: Scenario) -> MemoryPlan:
    """Memory budget of the most loaded GPU of the scenario's replica."""
    try:
        from simulator.api import build_memory_plan
    except ImportError:  # a build whose API predates parallel layouts
        build_memory_plan = None
    if build_memory_plan is not None:
        return build_memory_plan(scenario)
    hw, eng = scenario.hardware, scenario.engine
    return memory_plan(
        load_model(scenario.model),
        load_gpu(hw.gpu),
        tensor_parallel=hw.tensor_parallel,
        weight_dtype=eng.weight_dtype,
        kv_dtype=eng.kv_dtype,
        gpu_memory_utilization=eng.gpu_memory_utilization,
        max_num_batched_tokens=eng.max_num_batched_tokens,
    )


def gpus_per_replica(scenario: Scenario) -> int:
    """GPUs of one replica (tensor × pipeline × expert parallel where modelled)."""
    hw = scenario.hardware
    return int(getattr(hw, "gpus_per_replica", hw.tensor_parallel))


def busy_time_per_request_s(
    scenario: Scenario, lengths: LengthSample, cost_model: CostModel, max_kv_tokens: int
) -> tuple[float, float]:
    """Least GPU time (s) a mean request needs: (prefill part, decode part), at the most
    efficient step sizes the engine allows (see the module docstring)."""
    eng = scenario.engine
    chunk = eng.max_num_batched_tokens
    prefill_per_token_s = cost_model.step_time_s(StepShape(prefill_tokens=chunk)) / chunk
    mean_prompt = lengths.mean_prompt_tokens
    kv_limited = int(max_kv_tokens // max(1.0, mean_prompt + 1))
    batch = max(1, min(eng.max_num_seqs, kv_limited))
    context = round(mean_prompt) * batch
    decode_step_s = float(cost_model.decode_run_s(batch, context, 1)[0])
    decode_tokens = float(np.maximum(lengths.output_tokens - 1, 0).mean())
    return mean_prompt * prefill_per_token_s, decode_tokens * decode_step_s / batch


def replica_rate_bound_per_s(
    scenario: Scenario, lengths: LengthSample, cost_model: CostModel, max_kv_tokens: int
) -> float:
    """Upper bound on the requests/s one replica can complete (see the module docstring)."""
    prefill_s, decode_s = busy_time_per_request_s(scenario, lengths, cost_model, max_kv_tokens)
    per_request_s = prefill_s + decode_s
    # Pipeline stages work on different batches at once: at most ``stages`` times the rate
    # of one pass through all of them.
    stages = int(getattr(scenario.hardware, "pipeline_parallel", 1))
    return stages * RATE_BOUND_MARGIN / per_request_s if per_request_s > 0 else float("inf")


def request_latency_bounds_ms(
    cost_model: CostModel, lengths: LengthSample
) -> dict[str, np.ndarray]:
    """Per-request lower bounds (ms) of TTFT, TPOT and E2E: each request alone on the replica."""
    prompts, outputs = lengths.prompt_tokens, lengths.output_tokens
    ttft = np.empty(len(prompts))
    decode = np.empty(len(prompts))
    tpot = np.full(len(prompts), np.nan)
    cache: dict[tuple[int, int], tuple[float, float]] = {}
    for i, (p, o) in enumerate(zip(prompts.tolist(), outputs.tolist(), strict=True)):
        key = (p, o)
        if key not in cache:
            first_s = cost_model.step_time_s(StepShape.build(prefills=[(p, 0)]))
            steps = cost_model.decode_run_s(1, p, o - 1) if o > 1 else np.zeros(0)
            cache[key] = (first_s, float(steps.sum()))
        first_s, decode_s = cache[key]
        ttft[i] = first_s * 1e3
        decode[i] = decode_s * 1e3
        if o > 1:
            tpot[i] = decode_s * 1e3 / (o - 1)
    return {"ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": ttft + decode}


def _pipeline_stages(cost_model: CostModel) -> int:
    return int(getattr(cost_model, "pipeline_parallel", 1))


def latency_lower_bound_ms(
    bounds: dict[str, np.ndarray],
    cost_model: CostModel,
    lengths: LengthSample,
    metric: str,
    statistic: str,
) -> float:
    """Lower bound of ``metric``'s ``statistic`` (mean, pNN, max) over the run, in ms.

    With pipeline stages a priced step is a whole pipeline round; the engine may overlap
    rounds, so the bound is divided by the number of stages to stay a lower bound."""
    stages = _pipeline_stages(cost_model)
    if metric == "itl_ms":  # every gap is at least the fastest decode step
        step_s = float(cost_model.decode_run_s(1, int(lengths.prompt_tokens.min()), 1)[0])
        return step_s * 1e3 / stages
    values = bounds[metric] / stages
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0
    if statistic == "mean":
        return float(values.mean())
    if statistic == "max":
        return float(values.max())
    return float(np.percentile(values, float(statistic.removeprefix("p"))))


def slo_violations_at_any_load(
    scenario: Scenario,
    bounds: dict[str, np.ndarray],
    cost_model: CostModel,
    lengths: LengthSample,
) -> list[str]:
    """SLO targets that even a lone request cannot meet (roofline latency above the target)."""
    out = []
    for metric, targets in (scenario.slo or {}).items():
        if metric not in bounds and metric != "itl_ms":
            continue  # relative to the request: no lone-request bound kept
        for statistic, threshold_ms in targets.items():
            floor_ms = latency_lower_bound_ms(bounds, cost_model, lengths, metric, statistic)
            if floor_ms > threshold_ms:
                out.append(
                    f"{metric} {statistic} >= {floor_ms:.1f} ms even for a lone request "
                    f"> {threshold_ms:g} ms"
                )
    return out
