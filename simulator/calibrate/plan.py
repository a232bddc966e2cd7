"""What ``servesim calibrate --measure`` times: the grids of shapes for each size of run.

Pure data, no PyTorch: the grids are chosen here so that tests can check them and so that
the measured rows line up with those of ``shared/calibration/h100_sxm_microbench.jsonl``
(same step shapes of the Llama-3.2-1B-shaped model), which makes the two files
cross-checkable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.errors import UserError
from simulator.specs.model import ModelSpec

SIZES = ("full", "quick", "smoke")

#: Models whose GEMM shapes are timed by default (dense Llama/Qwen shapes and one MoE).
DEFAULT_GEMM_MODELS = (
    "llama-3.2-1b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "qwen2.5-7b",
    "mixtral-8x7b",
)
QUICK_GEMM_MODELS = ("llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b")

#: Model whose whole steps are timed (as in the shared file) and a second one, held out.
DEFAULT_STEP_MODELS = ("llama-3.2-1b", "llama-3.1-8b")

#: A tiny Llama-shaped model for the CPU smoke test (sizes in elements).
SMOKE_MODEL = ModelSpec(
    name="smoke-tiny-llama",
    hidden_size=64,
    num_layers=2,
    num_attention_heads=4,
    num_kv_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=256,
)


@dataclass(frozen=True)
class StepGrid:
    """Shapes of whole steps of one model."""

    #: (batch, context) decode steps.
    decode: tuple[tuple[int, int], ...]
    #: (batch, seq) prefill steps without cached context.
    prefill: tuple[tuple[int, int], ...]
    #: (chunk, chunk_context, decode_batch, decode_context) fused chunked-prefill steps.
    mixed: tuple[tuple[int, int, int, int], ...] = ()
    #: Shapes (same tuples as above) also timed eagerly, op by op without a graph.
    eager_decode: tuple[tuple[int, int], ...] = ()
    eager_prefill: tuple[tuple[int, int], ...] = ()
    #: Largest batch x context (tokens of KV cache) to allocate; larger shapes are skipped.
    max_kv_tokens: int = 1 << 20


@dataclass(frozen=True)
class MeasurePlan:
    """Every grid of one run."""

    size: str
    gemm_m: tuple[int, ...]
    fp8_gemm_m: tuple[int, ...]
    attn_prefill: tuple[tuple[int, int], ...]  # (batch, seq)
    attn_decode: tuple[tuple[int, int], ...]  # (batch, context)
    launch_kernels: int
    copy_bytes: int
    ceiling_gemm: int  # square GEMM side for the FLOP/s ceiling
    allreduce_bytes: tuple[int, ...]
    steps: dict[str, StepGrid] = field(default_factory=dict)
    warmup: int = 3
    iters: int = 20


def _grid(batches, contexts, limit):
    return tuple((b, c) for c in contexts for b in batches if b * c <= limit)


def _mixed(chunks, contexts, decode_batches, decode_context=1024):
    return tuple(
        (chunk, ctx, d, decode_context)
        for chunk in chunks
        for ctx in contexts
        for d in decode_batches
    )


def make_plan(size: str, step_models: tuple[str, ...] = DEFAULT_STEP_MODELS) -> MeasurePlan:
    """The grids of a ``full``, ``quick`` (under two minutes on an H100) or ``smoke`` run."""
    if size not in SIZES:
        raise UserError(f"measure size {size!r}: must be one of {', '.join(SIZES)}")
    if size == "smoke":
        grid = StepGrid(
            decode=((1, 8), (4, 16)),
            prefill=((1, 16), (2, 8)),
            mixed=((8, 0, 2, 8), (8, 8, 2, 8)),
            eager_decode=((1, 8),),
            eager_prefill=((1, 16),),
        )
        return MeasurePlan(
            size=size,
            gemm_m=(1, 16),
            fp8_gemm_m=(),
            attn_prefill=((1, 16),),
            attn_decode=((2, 16),),
            launch_kernels=50,
            copy_bytes=1 << 20,
            ceiling_gemm=128,
            allreduce_bytes=(4096, 65536),
            steps={SMOKE_MODEL.name: grid},
            warmup=1,
            iters=3,
        )
    full = size == "full"
    batches = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if full else (1, 8, 64, 256)
    contexts = (128, 512, 1024, 2048, 4096, 8192) if full else (128, 1024, 4096)
    # Same grid as the shared file for the 1B model: up to 512 x 2048 (1M KV tokens).
    small = StepGrid(
        decode=_grid(batches, contexts, 1 << 20),
        prefill=(
            (
                *((1, s) for s in (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)),
                *((4, 512), (8, 1024), (16, 256), (32, 128)),
            )
            if full
            else ((1, 128), (1, 1024), (1, 4096), (8, 1024))
        ),
        mixed=_mixed((256, 512, 1024, 2048), (0, 2048), (0, 16, 64))
        if full
        else _mixed((256, 2048), (0, 2048), (16,)),
        eager_decode=((1, 128), (8, 1024), (64, 1024), (256, 512)) if full else ((1, 128),),
        eager_prefill=((1, 16), (1, 512), (1, 4096)) if full else ((1, 128),),
    )
    # A second, larger model, never used for fitting by default: a check across models.
    large = StepGrid(
        decode=_grid((1, 8, 32, 64, 128, 256), (512, 2048, 8192), 256 * 1024)
        if full
        else ((1, 1024), (64, 1024)),
        prefill=((1, 512), (1, 2048), (1, 8192), (4, 1024)) if full else ((1, 2048),),
        mixed=_mixed((512, 2048), (0, 2048), (32,)) if full else (),
        eager_decode=((1, 512), (32, 2048)) if full else (),
        max_kv_tokens=256 * 1024,
    )
    steps = {}
    for i, name in enumerate(step_models):
        steps[name] = small if i == 0 else large
    return MeasurePlan(
        size=size,
        gemm_m=(1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096) if full else (1, 32, 256, 2048),
        fp8_gemm_m=(1, 32, 256, 2048, 8192) if full else (),
        attn_prefill=(*((1, s) for s in (256, 1024, 4096, 16384)), (8, 2048))
        if full
        else ((1, 1024), (1, 8192)),
        attn_decode=_grid((1, 8, 64, 256), (512, 2048, 8192), 1 << 20)
        if full
        else ((1, 2048), (64, 2048)),
        launch_kernels=2000 if full else 500,
        copy_bytes=(2 << 30) if full else (1 << 30),
        ceiling_gemm=8192,
        allreduce_bytes=tuple(4096 * 4**i for i in range(9)) if full else (4096, 1 << 20, 1 << 26),
        steps=steps,
        warmup=3,
        iters=20 if full else 8,
    )


def gemm_shapes(model: ModelSpec) -> list[tuple[str, int, int]]:
    """(op name, k, n) of the weight GEMMs of one layer (unsharded) and the LM head."""
    h, d = model.hidden_size, model.head_dim
    shapes = [
        ("qkv_proj", h, (model.num_attention_heads + 2 * model.num_kv_heads) * d),
        ("o_proj", model.num_attention_heads * d, h),
    ]
    mlp = 2 if model.gated_mlp else 1
    if model.is_moe:
        inter = model.moe_intermediate_size or model.intermediate_size
        shapes += [("experts_gate_up", h, mlp * inter), ("experts_down", inter, h)]
    else:
        shapes += [
            ("gate_up_proj", h, mlp * model.intermediate_size),
            ("down_proj", model.intermediate_size, h),
        ]
    shapes.append(("lm_head", h, model.vocab_size))
    return shapes
