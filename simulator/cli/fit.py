"""``servesim fit``: does a model fit on a GPU configuration, and how many sequences?

Prints the memory plan of the most loaded GPU (weights, KV cache per token and at the
given context, workspace, free memory) and the largest number of sequences of that context
the replica holds at once; when the model does not fit, says why and lists the smallest
configurations that would (GPU count by tensor/pipeline parallelism, weight and KV dtypes).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from simulator.cli.common import add_replica_arguments, add_weight_dtype_argument, weight_format
from simulator.costmodel.memory import MemoryPlan, memory_plan
from simulator.costmodel.profiles import MEMORY_KNOBS
from simulator.errors import UserError
from simulator.specs.gpu import GpuSpec
from simulator.specs.model import ModelSpec

#: Weight dtypes tried, widest first, when searching for a configuration that fits.
SEARCH_WEIGHT_DTYPES = ("bf16", "fp8", "int8", "int4", "q4_k_m")
SEARCH_KV_DTYPES = ("bf16", "fp8")
#: Largest replica searched (GPUs).
SEARCH_MAX_GPUS = 64
#: Configurations listed when the requested one does not fit.
SUGGESTIONS = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="memory plan: does a model fit, how many sequences at a context",
        description=(
            "Memory plan of one GPU of a replica (weights, KV cache, workspace, free) and the "
            "most sequences of --context tokens held at once; if it does not fit, the smallest "
            "configurations that would."
        ),
        epilog=(
            "examples:\n"
            "  servesim fit --model llama-3.1-70b --gpu h100-sxm --tp 4 --context 8192\n"
            "  servesim fit --model deepseek-v3 --gpu h100-sxm --tp 2 --ep 8 --weight-dtype fp8\n"
            "  servesim fit --model llama-3.1-8b --gpu rtx-4090 --weight-dtype q4_k_m --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_replica_arguments(p)
    add_weight_dtype_argument(p, "bf16, fp8, int8, int4, fp4, q4_k_m, ...")
    p.add_argument("--kv-dtype", default="bf16", help="bf16, fp16, fp8, int8")
    p.add_argument("--attention-dtype", help="override the attention projections' dtype")
    p.add_argument("--context", type=int, default=4096, help="tokens per sequence (default 4096)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-num-batched-tokens", type=int, default=8192)
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class FitOptions:
    """What ``fit`` is asked about."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    expert_parallel: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    attention_dtype: str | None = None
    context_tokens: int = 4096
    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int = 8192
    #: How the engine sizes its KV cache (``costmodel.memory``) and the fraction's knob.
    accounting: str = "gpu_fraction"

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.expert_parallel

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, model: ModelSpec, **settings: object
    ) -> FitOptions:
        """The layout and formats of parsed options (``--tp``, ``--pp``, ``--ep``,
        ``--weight-dtype`` for ``model``, ``--kv-dtype``, ``--attention-dtype``) with
        ``settings``."""
        return cls(
            tensor_parallel=args.tp,
            pipeline_parallel=args.pp,
            expert_parallel=args.ep,
            weight_dtype=weight_format(model, args.weight_dtype),
            kv_dtype=args.kv_dtype,
            attention_dtype=args.attention_dtype,
            **settings,
        )


def plan_for(model: ModelSpec, gpu: GpuSpec, opts: FitOptions) -> MemoryPlan:
    """The memory plan of ``opts`` (shape checks as the cost model makes them)."""
    if opts.tensor_parallel < 1 or opts.pipeline_parallel < 1 or opts.expert_parallel < 1:
        raise UserError("--tp, --pp and --ep must be >= 1")
    errors = model.layout_errors(opts.tensor_parallel, opts.pipeline_parallel, opts.expert_parallel)
    if errors:
        flags = {"tensor_parallel": "--tp", "pipeline_parallel": "--pp", "expert_parallel": "--ep"}
        raise UserError([flags[e.partition(":")[0]] + ":" + e.partition(":")[2] for e in errors])
    if opts.context_tokens < 1:
        raise UserError(f"--context: {opts.context_tokens} must be >= 1")
    if opts.context_tokens > model.max_position_embeddings:
        raise UserError(
            f"--context: {opts.context_tokens} tokens is more than {model.name} takes "
            f"({model.max_position_embeddings:,}, its max_position_embeddings)"
        )
    if opts.max_num_batched_tokens < 1:
        raise UserError(
            f"--max-num-batched-tokens: {opts.max_num_batched_tokens} must be >= 1 (the most "
            "tokens one step holds, which sizes the activation workspace)"
        )
    return memory_plan(
        model,
        gpu,
        tensor_parallel=opts.tensor_parallel,
        pipeline_parallel=opts.pipeline_parallel,
        expert_parallel=opts.expert_parallel,
        weight_dtype=opts.weight_dtype,
        kv_dtype=opts.kv_dtype,
        attention_dtype=opts.attention_dtype,
        gpu_memory_utilization=opts.gpu_memory_utilization,
        max_num_batched_tokens=opts.max_num_batched_tokens,
        accounting=opts.accounting,
        knob=MEMORY_KNOBS[opts.accounting],
    )


def _holds_one(plan: MemoryPlan, context: int) -> bool:
    return plan.fits and plan.max_sequences(context) >= 1


def _layouts(model: ModelSpec, max_gpus: int) -> list[tuple[int, int, int]]:
    """(tp, pp, ep) layouts by GPU count, simplest first: TP within 8, then PP, then EP."""
    out = []
    for tp in (1, 2, 4, 8):
        for pp in (1, 2, 3, 4, 6, 8):
            for ep in (1, 2, 4, 8, 16, 32):
                if tp * pp * ep <= max_gpus and not model.layout_errors(tp, pp, ep):
                    out.append((tp, pp, ep))
    return sorted(out, key=lambda t: (t[0] * t[1] * t[2], t[1], t[2], t[0]))


def suggest(
    model: ModelSpec, gpu: GpuSpec, opts: FitOptions, limit: int = SUGGESTIONS
) -> list[tuple[FitOptions, MemoryPlan]]:
    """The smallest configurations that hold one sequence of the requested context: for
    each weight dtype, the fewest GPUs (bf16 KV cache, or fp8 where bf16 needs more GPUs);
    sorted by GPU count, then by the widest weight dtype."""
    found: list[tuple[FitOptions, MemoryPlan]] = []
    for weight in SEARCH_WEIGHT_DTYPES:
        best: tuple[FitOptions, MemoryPlan] | None = None
        for kv in SEARCH_KV_DTYPES:
            for tp, pp, ep in _layouts(model, SEARCH_MAX_GPUS):
                candidate = FitOptions(
                    tensor_parallel=tp,
                    pipeline_parallel=pp,
                    expert_parallel=ep,
                    weight_dtype=weight,
                    kv_dtype=kv,
                    context_tokens=opts.context_tokens,
                    gpu_memory_utilization=opts.gpu_memory_utilization,
                    max_num_batched_tokens=opts.max_num_batched_tokens,
                )
                plan = plan_for(model, gpu, candidate)
                if _holds_one(plan, opts.context_tokens):
                    if best is None or candidate.gpus < best[0].gpus:
                        best = (candidate, plan)
                    break
        if best is not None:
            found.append(best)
    found.sort(key=lambda c: (c[0].gpus, SEARCH_WEIGHT_DTYPES.index(c[0].weight_dtype)))
    return found[:limit]


def fit_report(model: ModelSpec, gpu: GpuSpec, opts: FitOptions) -> dict:
    """Everything ``servesim fit`` prints, as a JSON-ready mapping (bytes in GB)."""
    plan = plan_for(model, gpu, opts)
    gb = 1e9
    context = opts.context_tokens
    kv_per_seq_gpu = plan.kv_bytes_per_token_per_gpu * context
    report = {
        "model": model.name,
        "gpu": gpu.name,
        "tensor_parallel": opts.tensor_parallel,
        "pipeline_parallel": opts.pipeline_parallel,
        "expert_parallel": opts.expert_parallel,
        "gpus": opts.gpus,
        "weight_formats": plan.weight_formats,
        "kv_dtype": plan.kv_dtype,
        "context_tokens": context,
        "gpu_memory_gb": plan.gpu_memory_bytes / gb,
        "usable_gb": plan.usable_bytes / gb,
        "model_weights_gb": plan.total_weight_bytes / gb,
        "weights_per_gpu_gb": plan.weight_bytes_per_gpu / gb,
        "workspace_per_gpu_gb": plan.workspace_bytes / gb,
        "free_for_kv_per_gpu_gb": max(0.0, plan.free_bytes_per_gpu) / gb,
        "kv_bytes_per_token": plan.kv_bytes_per_token,
        "kv_bytes_per_token_per_gpu": plan.kv_bytes_per_token_per_gpu,
        "kv_per_sequence_gb": plan.kv_bytes_per_token * context / gb,
        "kv_per_sequence_per_gpu_gb": kv_per_seq_gpu / gb,
        "max_kv_tokens": plan.max_kv_tokens,
        "fits": _holds_one(plan, context),
        "max_sequences": plan.max_sequences(context) if plan.fits else 0,
    }
    if not report["fits"]:
        if not plan.fits:
            report["reason"] = plan.explain()
        else:
            report["reason"] = (
                f"weights fit, but one sequence of {context} tokens needs "
                f"{kv_per_seq_gpu / gb:.2f} GB of KV cache per GPU and "
                f"{max(0.0, plan.free_bytes_per_gpu) / gb:.2f} GB are free"
            )
        report["suggestions"] = [
            {
                "gpus": o.gpus,
                "tensor_parallel": o.tensor_parallel,
                "pipeline_parallel": o.pipeline_parallel,
                "expert_parallel": o.expert_parallel,
                "weight_dtype": o.weight_dtype,
                "kv_dtype": o.kv_dtype,
                "weights_per_gpu_gb": p.weight_bytes_per_gpu / gb,
                "max_sequences": p.max_sequences(context),
            }
            for o, p in suggest(model, gpu, opts)
        ]
    return report


def format_report(report: dict) -> str:
    """The readable form of ``fit_report``."""
    r = report
    layout = f"TP{r['tensor_parallel']}"
    if r["pipeline_parallel"] > 1:
        layout += f" x PP{r['pipeline_parallel']}"
    if r["expert_parallel"] > 1:
        layout += f" x EP{r['expert_parallel']}"
    lines = [
        f"{r['model']} on {r['gpus']}x {r['gpu']} ({layout}); weights {r['weight_formats']}, "
        f"KV cache {r['kv_dtype']}",
        f"  model weights            {r['model_weights_gb']:10.2f} GB",
        f"  per GPU: usable          {r['usable_gb']:10.2f} GB of {r['gpu_memory_gb']:.2f} GB",
        f"           weights         {r['weights_per_gpu_gb']:10.2f} GB",
        f"           workspace       {r['workspace_per_gpu_gb']:10.2f} GB",
        f"           free for KV     {r['free_for_kv_per_gpu_gb']:10.2f} GB",
        f"  KV cache per token       {r['kv_bytes_per_token']:10.0f} B "
        f"({r['kv_bytes_per_token_per_gpu']:.0f} B per GPU)",
        f"  KV cache at {r['context_tokens']} tokens  "
        f"{r['kv_per_sequence_gb']:8.3f} GB per sequence",
    ]
    if r["fits"]:
        lines.append(
            f"  fits: {r['max_sequences']} concurrent sequences of {r['context_tokens']} tokens "
            f"({r['max_kv_tokens']} KV tokens)"
        )
        return "\n".join(lines)
    lines.append(f"  does not fit: {r['reason']}")
    if r["suggestions"]:
        lines.append("  smallest configurations that fit one sequence of this context:")
        for s in r["suggestions"]:
            lay = f"TP{s['tensor_parallel']}"
            lay += f" PP{s['pipeline_parallel']}" if s["pipeline_parallel"] > 1 else ""
            lay += f" EP{s['expert_parallel']}" if s["expert_parallel"] > 1 else ""
            lines.append(
                f"    {s['gpus']:3d} GPUs  {lay:<14} weights {s['weight_dtype']:<7} "
                f"KV {s['kv_dtype']:<5} {s['weights_per_gpu_gb']:7.2f} GB/GPU  "
                f"{s['max_sequences']} sequences"
            )
    else:
        lines.append(f"  no configuration of up to {SEARCH_MAX_GPUS} GPUs fits")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from simulator.specs.catalog import load_gpu, load_model

    model, gpu = load_model(args.model), load_gpu(args.gpu)
    opts = FitOptions.from_args(
        args,
        model,
        context_tokens=args.context,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_batched_tokens=args.max_num_batched_tokens,
    )
    report = fit_report(model, gpu, opts)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
