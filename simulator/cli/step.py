"""``servesim step``: price one forward step and show its per-op breakdown."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from simulator.cli.common import add_replica_arguments, add_weight_dtype_argument, weight_format
from simulator.costmodel import CostConfig, CostModel, Parallelism, Precision, StepShape
from simulator.errors import UserError

_DECODE_RE = re.compile(r"^(\d+)x(\d+)$")
_PREFILL_RE = re.compile(r"^(\d+)x(\d+)(?:\+(\d+))?$")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "step",
        help="price one forward step (roofline breakdown per op)",
        description=(
            "Price one forward step of a model on a GPU: time per op (compute, memory, "
            "latency or communication bound) and the step total."
        ),
        epilog=(
            "examples:\n"
            "  servesim step --model llama-3.1-8b --gpu h100-sxm --decode 64x1024\n"
            "  servesim step --model llama-3.1-8b --gpu h100-sxm --prefill 1x256+2048 "
            "--decode 16x1024 --json\n"
            "  servesim step --model llama-3.1-70b --gpu h100-sxm --tp 4 --decode 32x2048"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_replica_arguments(p)
    p.add_argument("--link", help="link between GPUs for --tp > 1 (default: the GPU's own)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs per node (default: all in one node)")
    p.add_argument("--inter-node-link", help="network between nodes, e.g. infiniband-ndr")
    p.add_argument(
        "--decode",
        action="append",
        default=[],
        metavar="COUNTxCONTEXT",
        help="COUNT sequences adding one token after CONTEXT cached tokens (repeatable)",
    )
    p.add_argument(
        "--prefill",
        action="append",
        default=[],
        metavar="COUNTxTOKENS[+CACHED]",
        help="COUNT chunks of TOKENS new tokens, after CACHED cached tokens (repeatable)",
    )
    p.add_argument(
        "--calibration",
        help="calibration YAML, or 'none' for datasheet defaults "
        "(default: hardware_specs/calibration/<gpu>.yaml when it exists)",
    )
    add_weight_dtype_argument(p, "bf16, fp8, fp8_block, int4, fp4, ...")
    p.add_argument("--kv-dtype", default="bf16")
    p.add_argument("--activation-dtype", default="bf16")
    p.add_argument(
        "--attention-dtype",
        help="dtype of the attention projections (an fp8/fp4 checkpoint keeps them bf16)",
    )
    p.add_argument("--eager", action="store_true", help="engine without CUDA graphs")
    p.add_argument(
        "--profile",
        help="engine profile (vllm, sglang, trtllm, llama.cpp, hf-transformers, ideal): its "
        "runtime, and its measured kernels where a calibration ships for the GPU",
    )
    p.add_argument(
        "--version",
        help="engine version whose kernel calibration prices the step (default: the newest "
        "shipped for the GPU)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=run)


def parse_decode(value: str) -> tuple[int, int]:
    """``COUNTxCONTEXT`` → (count, context)."""
    match = _DECODE_RE.match(value.strip())
    if not match:
        raise UserError(
            f"--decode: {value!r} is not of the form COUNTxCONTEXT (e.g. 64x1024: 64 "
            "sequences after 1024 cached tokens)"
        )
    return int(match[1]), int(match[2])


def parse_prefill(value: str) -> tuple[int, int, int]:
    """``COUNTxTOKENS[+CACHED]`` → (count, new_tokens, cached_tokens)."""
    match = _PREFILL_RE.match(value.strip())
    if not match or int(match[2]) == 0:
        raise UserError(
            f"--prefill: {value!r} is not of the form COUNTxTOKENS[+CACHED] with TOKENS >= 1 "
            "(e.g. 4x512, or 1x256+2048 for 256 new tokens after 2048 cached)"
        )
    return int(match[1]), int(match[2]), int(match[3] or 0)


def longest_sequence(decodes: list[str], prefills: list[str]) -> int:
    """Tokens of the longest sequence the flags describe, its new token included."""
    lengths = [parse_decode(d)[1] + 1 for d in decodes]
    lengths += [new + cached for _, new, cached in map(parse_prefill, prefills)]
    return max(lengths, default=0)


def build_shape(decodes: list[str], prefills: list[str]) -> StepShape:
    """The step described by the ``--decode`` and ``--prefill`` flags."""
    shape = StepShape()
    for spec in prefills:
        count, new, cached = parse_prefill(spec)
        shape = shape + StepShape.uniform(
            prefill_count=count, prefill_new=new, prefill_cached=cached
        )
    for spec in decodes:
        count, context = parse_decode(spec)
        shape = shape + StepShape.uniform(decode_count=count, decode_context=context)
    if shape.tokens == 0:
        flags = [*(f"--decode {d}" for d in decodes), *(f"--prefill {p}" for p in prefills)]
        given = ", ".join(flags)
        raise UserError(
            f"step: {given} holds no sequence; give at least one --decode COUNTxCONTEXT or "
            "--prefill COUNTxTOKENS with COUNT >= 1"
            if given
            else "step: give at least one --decode COUNTxCONTEXT or --prefill COUNTxTOKENS"
        )
    return shape


def replica_cost_model(args: argparse.Namespace, model, gpu):
    """The cost model the options describe and what priced it (``costmodel.pricing``)."""
    from simulator.costmodel.moe import curve_for_calibration
    from simulator.costmodel.pricing import resolve_pricing
    from simulator.specs.catalog import load_link
    from simulator.specs.topology import build_placement

    if args.tp < 1:
        raise UserError(f"--tp: {args.tp} must be >= 1")
    for flag, name in (("--link", args.link), ("--inter-node-link", args.inter_node_link)):
        if name is not None:  # checked even where one GPU leaves it unused
            try:
                load_link(name)
            except UserError as exc:
                raise UserError([f"{flag}: {m}" for m in exc.messages]) from None
    placement = build_placement(
        gpu.name,
        gpu.interconnect,
        tensor_parallel=args.tp,
        pipeline_parallel=args.pp,
        expert_parallel=args.ep,
        gpus_per_node=args.gpus_per_node,
        interconnect=args.link,
        inter_node_link=args.inter_node_link,
        field_prefix="--",
        field_names=("link", "inter-node-link"),
        host_link=gpu.host_link,
    )
    explicit = args.calibration is not None and args.calibration.lower() != "none"
    if explicit and not Path(args.calibration).is_file():
        raise UserError(f"--calibration: file {args.calibration!r} does not exist (or pass 'none')")
    pricing = resolve_pricing(
        gpu.name, calibration=args.calibration, profile=args.profile, version=args.version
    )
    params = pricing.params.replace(cuda_graphs=False) if args.eager else pricing.params
    moe_curve = None if pricing.kernels else curve_for_calibration(pricing.parameters)
    cost_model = CostModel(
        CostConfig(
            model,
            gpu,
            params=params,
            kernels=pricing.kernels,
            moe_grouped_gemm=moe_curve,
            parallel=Parallelism(
                tensor=args.tp, pipeline=args.pp, expert=args.ep, placement=placement
            ),
            precision=Precision(
                weights=weight_format(model, args.weight_dtype),
                kv_cache=args.kv_dtype,
                activations=args.activation_dtype,
                attention=args.attention_dtype,
            ),
        )
    )
    return cost_model, pricing


def memory_note(args: argparse.Namespace, model, gpu, shape: StepShape) -> str | None:
    """Why the step could not run on these GPUs (weights over the memory, or more KV tokens
    than the cache holds), sized as the ``--profile`` engine sizes it; None when it fits."""
    from simulator.cli.fit import FitOptions, plan_for
    from simulator.costmodel.profiles import load_profile

    profile = load_profile(args.profile) if args.profile else None
    options = FitOptions.from_args(
        args,
        model,
        max_num_batched_tokens=max(1, shape.tokens),
        gpu_memory_utilization=profile.default_memory_fraction(args.tp) if profile else 0.9,
        accounting=profile.memory_accounting if profile else "gpu_fraction",
    )
    plan = plan_for(model, gpu, options)
    longest = longest_sequence(args.decode, args.prefill)
    if longest > model.max_position_embeddings:
        return (
            f"a sequence of {longest:,} tokens is more than {model.name} takes "
            f"({model.max_position_embeddings:,}, its max_position_embeddings)"
        )
    if not plan.fits:
        return plan.explain()
    kv_tokens = shape.decode_context_tokens + shape.decode_seqs + shape.prefill_kv_tokens
    if kv_tokens > plan.max_kv_tokens:
        return (
            f"the step holds {kv_tokens:,} tokens of KV cache, the replica at most "
            f"{plan.max_kv_tokens:,} ({plan.kv_capacity_bytes_per_gpu / 1e9:.2f} GB per GPU)"
        )
    return None


def run(args: argparse.Namespace) -> int:
    from simulator.specs.catalog import load_gpu, load_model

    shape = build_shape(args.decode, args.prefill)
    model, gpu = load_model(args.model), load_gpu(args.gpu)
    cost_model, pricing = replica_cost_model(args, model, gpu)
    note = memory_note(args, model, gpu, shape)
    cuda_graphs, source = cost_model.params.cuda_graphs, pricing.kernel_source
    cost = cost_model.price(shape)
    tokens_per_s = shape.tokens / cost.total_s if cost.total_s > 0 else 0.0
    if args.json:
        out = {
            "model": model.name,
            "gpu": gpu.name,
            "tensor_parallel": args.tp,
            "pipeline_parallel": args.pp,
            "expert_parallel": args.ep,
            "weight_formats": cost_model.formats.describe(),
            "kv_dtype": cost_model.kv_dtype,
            "calibration": pricing.parameters,
            "pricing": pricing.describe(),
            "cuda_graphs": cuda_graphs,
            "shape": {name: getattr(shape, name) for name in StepShape.__slots__},
            **cost.to_dict(),
            "tokens_per_s": tokens_per_s,
            "fits_in_memory": note is None,
            "memory_note": note,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{model.name} on {args.tp}x {gpu.name} ({'CUDA graphs' if not args.eager else 'eager'}; "
        f"kernels: {source})"
    )
    print(
        f"step: {shape.prefill_tokens} prefill tokens in {shape.prefill_seqs} chunks, "
        f"{shape.decode_seqs} decodes over {shape.decode_context_tokens} context tokens, "
        f"{shape.logits_rows} logits rows"
    )
    print(f"{'op':<20}{'GFLOP':>12}{'MB':>12}{'ms':>10}{'share':>8}  bound")
    for op in cost.ops:
        share = op.time_s / cost.total_s if cost.total_s else 0.0
        print(
            f"{op.name:<20}{op.flops / 1e9:>12.2f}{op.bytes / 1e6:>12.2f}"
            f"{op.time_s * 1e3:>10.4f}{share:>8.1%}  {op.bound}"
        )
    print(f"{'total':<44}{cost.total_s * 1e3:>10.4f} ms   ({tokens_per_s:,.0f} tokens/s)")
    if note is not None:
        print(f"note: priced as asked, but it could not run: {note}")
    return 0
