"""What a cost model prices: one typed configuration, validated once.

``CostConfig`` names the model, the GPU, the efficiency parameters, the measured kernel
tables of the engine (when there are any), how the replica's GPUs share the work
(``Parallelism``) and the formats of its weights, KV cache and activations
(``Precision``). Every check that needs only these runs here, with messages that name the
field, so a ``CostModel`` is built from a configuration that is known to be consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from simulator.costmodel.kernels import KernelTables
from simulator.costmodel.moe import GroupedGemmCurve
from simulator.costmodel.offload import OffloadPlan
from simulator.costmodel.params import CostParams
from simulator.costmodel.quant import WeightFormats, check_kv_dtype, resolve_weight_formats
from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec
from simulator.specs.topology import ReplicaPlacement


@dataclass(frozen=True)
class Parallelism:
    """How one replica's ``tensor × expert × pipeline`` GPUs share a step."""

    tensor: int = 1
    pipeline: int = 1
    expert: int = 1
    #: Micro-batches per step with pipeline stages; None: one per stage.
    microbatches: int | None = None
    #: Where the GPUs sit (nodes, links); None: one node joined by ``link``.
    placement: ReplicaPlacement | None = None
    #: Link between the GPUs when no placement is given; None: the GPU's interconnect.
    link: LinkSpec | None = None

    @property
    def gpus(self) -> int:
        return self.tensor * self.pipeline * self.expert


@dataclass(frozen=True)
class Precision:
    """Storage formats: weights (with the parts a checkpoint keeps apart), KV cache and
    activations. ``attention``/``lm_head`` None: the convention of ``quant.py``."""

    weights: str = "bf16"
    kv_cache: str = "bf16"
    activations: str = "bf16"
    attention: str | None = None
    lm_head: str | None = None


@dataclass(frozen=True)
class CostConfig:
    """Everything one ``CostModel`` prices (see the module docstring)."""

    model: ModelSpec
    gpu: GpuSpec
    params: CostParams = field(default_factory=CostParams.defaults)
    #: Measured kernel tables of the engine on this GPU; None: ``params`` alone.
    kernels: KernelTables | None = None
    #: Grouped expert GEMM efficiency by tokens per expert of the reference calibration
    #: (``costmodel.moe``); prices routed experts where no kernel table does.
    moe_grouped_gemm: GroupedGemmCurve | None = None
    parallel: Parallelism = field(default_factory=Parallelism)
    precision: Precision = field(default_factory=Precision)
    offload: OffloadPlan | None = None
    #: Decoder layers to price (a stage, or the part run on one device); None: the
    #: heaviest pipeline stage.
    layers: int | None = None
    #: Whether this device runs the LM head.
    lm_head: bool = True
    #: Batch sizes (per attention-data-parallel rank) of the CUDA graphs a decode-only step
    #: is padded up to (``graph_padding.captured_batch_sizes``); empty: no padding.
    graph_batch_sizes: tuple[int, ...] = ()
    #: Most tokens one attention-data-parallel rank schedules in a step: its share of the
    #: replica's token budget (``ep_group_shape``); None: no bound.
    group_token_budget: int | None = None

    def __post_init__(self) -> None:
        _check_parallel(self.model, self.parallel, self.offload)
        p = self.precision
        object.__setattr__(
            self,
            "precision",
            replace(
                p,
                weights=_dtype("weight_dtype", p.weights),
                activations=_dtype("activation_dtype", p.activations),
                kv_cache=check_kv_dtype(p.kv_cache),
            ),
        )

    @property
    def formats(self) -> WeightFormats:
        """Storage format of each part of the weights."""
        p = self.precision
        return resolve_weight_formats(p.weights, p.attention, p.lm_head)

    def with_params(self, params: CostParams) -> CostConfig:
        return replace(self, params=params)


def _dtype(name: str, value: str) -> str:
    try:
        return canonical_dtype(value)
    except ValueError as exc:
        raise UserError(f"{name}: {exc}") from None


def _check_parallel(model: ModelSpec, par: Parallelism, offload: OffloadPlan | None) -> None:
    for name, value in (
        ("tensor_parallel", par.tensor),
        ("pipeline_parallel", par.pipeline),
        ("expert_parallel", par.expert),
    ):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name}: {value!r} must be an integer >= 1")
    if model.num_attention_heads % par.tensor:
        raise UserError(
            f"tensor_parallel: {par.tensor} does not divide "
            f"{model.num_attention_heads} attention heads of {model.name}"
        )
    if par.pipeline > model.num_layers:
        raise UserError(
            f"pipeline_parallel: {par.pipeline} exceeds the {model.num_layers} "
            f"layers of {model.name}"
        )
    if par.expert > 1 and not model.is_moe:
        raise UserError(
            f"expert_parallel: {par.expert} needs a mixture-of-experts model; {model.name} is dense"
        )
    if par.expert > max(model.num_experts, 1):
        raise UserError(
            f"expert_parallel: {par.expert} exceeds the {model.num_experts} experts of {model.name}"
        )
    if par.microbatches is not None and par.microbatches < 1:
        raise UserError(f"pipeline_microbatches: {par.microbatches} must be >= 1")
    if offload is not None and (par.pipeline > 1 or par.expert > 1):
        raise UserError("offload: not supported together with pipeline or expert parallelism")
