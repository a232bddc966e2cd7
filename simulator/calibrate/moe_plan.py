"""What the MoE part of ``servesim calibrate --measure`` times: grouped expert GEMMs of
the catalog MoE models and whole steps of MoE-shaped models, per size of run.

Pure data, no PyTorch, so tests can check the grids.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.calibrate.plan import SMOKE_MODEL, StepGrid
from simulator.specs.model import ModelSpec

#: Catalog MoE models whose expert shapes (hidden, intermediate, experts, top-k) are timed.
MOE_GEMM_MODELS = (
    "deepseek-v3",
    "qwen3-30b-a3b",
    "qwen3-235b-a22b",
    "mixtral-8x7b",
    "gpt-oss-20b",
    "gpt-oss-120b",
)

#: Most rows (token-expert assignments) of one timed grouped GEMM: at many tokens per
#: expert the GEMM keeps ``rows // tokens_per_expert`` of the model's experts, each of whose
#: GEMMs alone then fills the GPU (32 and more 128-row tiles of output per expert).
MAX_GROUPED_ROWS = 65536

#: A tiny MoE model for the CPU smoke test.
SMOKE_MOE_MODEL = ModelSpec(
    name="smoke-tiny-moe",
    hidden_size=SMOKE_MODEL.hidden_size,
    num_layers=2,
    num_attention_heads=SMOKE_MODEL.num_attention_heads,
    num_kv_heads=SMOKE_MODEL.num_kv_heads,
    head_dim=SMOKE_MODEL.head_dim,
    intermediate_size=128,
    vocab_size=SMOKE_MODEL.vocab_size,
    num_experts=8,
    experts_per_token=2,
    moe_intermediate_size=32,
)


@dataclass(frozen=True)
class MoeStepModel:
    """Whole steps of a catalog MoE model built with its first ``layers`` layers (the cost
    model prices the same layers and the LM head)."""

    model: str
    layers: int
    grid: StepGrid


@dataclass(frozen=True)
class MoePlan:
    """Every MoE grid of one run."""

    gemm_models: tuple[str, ...]
    tokens_per_expert: tuple[int, ...]
    max_rows: int
    steps: tuple[MoeStepModel, ...]
    #: Token counts of the MoE block timed alone (router to combine, every layer).
    layer_tokens: tuple[int, ...]
    #: Token counts of the routing alone (dispatch and combine, no GEMMs), per expert shape.
    routing_tokens: tuple[int, ...]
    warmup: int
    iters: int


def _decode(batches, contexts, limit):
    return tuple((b, c) for c in contexts for b in batches if b * c <= limit)


def make_moe_plan(size: str) -> MoePlan:
    """The MoE grids of a ``full``, ``quick`` or ``smoke`` run."""
    if size == "smoke":
        grid = StepGrid(decode=((1, 8), (4, 16)), prefill=((1, 16), (2, 8)))
        return MoePlan(
            gemm_models=(SMOKE_MOE_MODEL.name,),
            tokens_per_expert=(1, 4, 16),
            max_rows=64,
            steps=(MoeStepModel(SMOKE_MOE_MODEL.name, 2, grid),),
            layer_tokens=(1, 16),
            routing_tokens=(1, 16),
            warmup=1,
            iters=3,
        )
    full = size == "full"
    batches = (1, 4, 16, 32, 64, 128, 256) if full else (1, 16, 128)
    contexts = (512, 2048) if full else (1024,)
    prefill = (
        ((1, 128), (1, 512), (1, 2048), (1, 8192), (4, 1024)) if full else ((1, 512), (1, 4096))
    )
    # Many small experts (Qwen3-30B-A3B: 128 experts of 768, top-8; half its 48 layers)
    # and few large ones (Mixtral-8x7B: 8 experts of 14336, top-2; 8 of its 32 layers, as
    # the whole model does not fit an 80 GB GPU).
    steps = (
        MoeStepModel("qwen3-30b-a3b", 24, StepGrid(_decode(batches, contexts, 1 << 19), prefill)),
        MoeStepModel("mixtral-8x7b", 8, StepGrid(_decode(batches, contexts, 1 << 19), prefill)),
    )
    return MoePlan(
        gemm_models=MOE_GEMM_MODELS,
        tokens_per_expert=tuple(2**i for i in range(13)) if full else (1, 8, 64, 512, 4096),
        max_rows=MAX_GROUPED_ROWS,
        steps=steps,
        layer_tokens=(1, 8, 32, 128, 512, 2048, 8192) if full else (1, 128, 2048),
        routing_tokens=(1, 4, 16, 64, 256, 1024, 4096, 8192) if full else (1, 64, 4096),
        warmup=3,
        iters=20 if full else 8,
    )


def expert_shapes(model: ModelSpec) -> list[tuple[str, int, int]]:
    """(op, k, n) of one routed expert's GEMMs: fused gate+up, then down."""
    inter = model.moe_intermediate_size or model.intermediate_size
    mlp = 2 if model.gated_mlp else 1
    h = model.hidden_size
    return [("experts_gate_up", h, mlp * inter), ("experts_down", inter, h)]


def groups_for(model: ModelSpec, tokens_per_expert: int, max_rows: int) -> int:
    """Experts in the timed grouped GEMM at ``tokens_per_expert`` rows each."""
    return max(1, min(model.num_experts, max_rows // tokens_per_expert))


def max_step_tokens(plan: MoePlan, entry: MoeStepModel) -> int:
    """Most tokens one step or MoE block of ``entry`` runs (sizes the routing draw)."""
    grid = entry.grid
    counts = [b for b, _ in grid.decode] + [b * s for b, s in grid.prefill]
    return max([*counts, *plan.layer_tokens, 1])
