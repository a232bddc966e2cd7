"""Grouped expert GEMMs of mixture-of-experts layers, priced by tokens per expert.

An MoE layer multiplies each active expert's rows by that expert's weights in one grouped
GEMM (gate+up, then down). Few rows per expert make it far slower per FLOP than a dense
GEMM of the same total rows: each expert's weights are read for a handful of rows and each
expert's tile is padded on its own. The cost model therefore prices expert GEMMs from a
measured **efficiency curve**: the achieved fraction of the GPU's peak FLOP/s as a function
of tokens per expert, one curve per weight format.

Section format (a top-level key of a calibration YAML file, or a file of its own)::

    moe_grouped_gemm:
      source: "what was measured: GPU, kernels, software, date, rows"
      bf16:                                 # weight storage format (servesim dtype name)
        tokens_per_expert: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
        efficiency: [0.0024, 0.0048, ...]   # same length, each in (0, 1.5]
      fp8: {tokens_per_expert: [...], efficiency: [...]}

- **format keys** are servesim dtype names of the experts' *stored* weights (``bf16``,
  ``fp16``, ``fp8``, ``int8``, ``int4``, ``fp4`` for NVFP4, ``mxfp4``; aliases such as
  ``nvfp4`` or ``bfloat16`` are accepted). An expert GEMM uses the curve of its weights'
  format; a format without a curve is priced as a dense GEMM.
- **tokens_per_expert**: rows each *active* expert multiplies in one grouped GEMM, i.e.
  token-expert assignments divided by the experts that receive at least one (balanced
  routing of ``T`` tokens with top-k of ``E`` experts and ``T·k ≥ E``: ``T·k/E``). Strictly
  increasing, positive.
- **efficiency**: ``FLOPs / (time × peak)``, where FLOPs are ``2·rows·k·n`` summed over
  the experts, time is the whole grouped-GEMM kernel less ``latency_s`` (memory traffic and
  tile padding included: the cost model adds nothing else to it) and peak is the GPU's
  datasheet dense peak of the format the GEMM *computes* in (``GpuSpec.flops_for``: bf16 for
  bf16 and weight-only int4/MXFP4 on Hopper, fp8 for fp8 on Hopper, fp4 on Blackwell).
- **between and beyond the points**: log(efficiency) is interpolated linearly in
  log(tokens per expert) and held at the end values outside the measured range.
- ``source`` is free text and required (every number carries its source).
- ``latency_s`` (optional, default 0): fixed time of one grouped GEMM call (seconds: launch,
  problem setup, ramp), added to the time the efficiency gives for every expert GEMM of a
  layer; the efficiency then describes the rest. It matters when few experts are active
  (decode of a few tokens); without it the efficiency is the whole kernel's.
- ``routing`` (optional) prices the single-GPU dispatch and combine around the grouped
  GEMMs of one MoE layer (softmax, top-k, sort by expert, gather of the rows, weighting and
  scatter-add back; the router GEMM and the activation are ops of their own)::

      routing: {latency_s: 6.0e-05, s_per_row_element: 2.0e-13, s_per_logit: 1.0e-12}

  ``latency_s + s_per_row_element × rows × hidden + s_per_logit × tokens × experts`` per
  MoE layer, added to the layer's gate+up GEMM. Absent: not priced (fused engine kernels
  whose tables include it in the GEMM time).

``hardware_specs/calibration/<gpu>-moe.yaml`` holds the curve of the PyTorch reference
calibration ``<gpu>.yaml`` and applies with it (``curve_for_calibration``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.costmodel.costs import OpCost, bound_of, gemm_dtype
from simulator.costmodel.layers import GemmOp, compute_dtype
from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype
from simulator.specs.files import read_yaml

if TYPE_CHECKING:
    from simulator.costmodel.model import CostModel

#: Top-level key of the section in a YAML file.
SECTION = "moe_grouped_gemm"
#: Largest accepted efficiency (the dense ``*_efficiency`` fields allow the same).
MAX_EFFICIENCY = 1.5


@dataclass(frozen=True)
class EfficiencyCurve:
    """Efficiency against tokens per expert for one weight format (log-log interpolated)."""

    tokens_per_expert: tuple[float, ...]
    efficiency: tuple[float, ...]
    _log_x: np.ndarray = field(init=False, repr=False, compare=False)
    _log_y: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the logs are cached once through object.__setattr__.
        object.__setattr__(self, "_log_x", np.log(np.asarray(self.tokens_per_expert, float)))
        object.__setattr__(self, "_log_y", np.log(np.asarray(self.efficiency, float)))

    def at(self, tokens_per_expert: float) -> float:
        """Efficiency (fraction of peak FLOP/s) at ``tokens_per_expert`` rows per expert."""
        x = math.log(max(tokens_per_expert, 1e-9))
        return float(np.exp(np.interp(x, self._log_x, self._log_y)))


@dataclass(frozen=True)
class RoutingCost:
    """Dispatch and combine of one MoE layer on one GPU (seconds and seconds per unit)."""

    latency_s: float
    s_per_row_element: float
    s_per_logit: float

    def time_s(self, rows: float, hidden: int, tokens: float, experts: int) -> float:
        """Per MoE layer: ``rows`` token-expert rows of ``hidden`` elements, ``tokens`` x
        ``experts`` router logits."""
        return (
            self.latency_s
            + self.s_per_row_element * rows * hidden
            + self.s_per_logit * tokens * experts
        )


@dataclass(frozen=True)
class GroupedGemmCurve:
    """Grouped expert GEMM efficiency curves per weight format, with their source."""

    curves: Mapping[str, EfficiencyCurve]
    source: str
    routing: RoutingCost | None = None
    #: Fixed time of one grouped GEMM call (s), added to the curve's time of every call.
    latency_s: float = 0.0

    def efficiency(self, weight_dtype: str, tokens_per_expert: float) -> float | None:
        """Efficiency of an expert GEMM over ``weight_dtype`` weights, None without a curve."""
        curve = self.curves.get(_dtype_key(weight_dtype))
        return curve.at(tokens_per_expert) if curve is not None else None

    def to_section(self) -> dict[str, Any]:
        """The YAML section (``{SECTION: ...}`` value) describing this curve."""
        out: dict[str, Any] = {"source": self.source}
        if self.latency_s:
            out["latency_s"] = float(f"{self.latency_s:.6g}")
        if self.routing is not None:
            out["routing"] = {k: float(f"{v:.6g}") for k, v in vars(self.routing).items()}
        for name, curve in self.curves.items():
            out[name] = {
                "tokens_per_expert": [_plain_number(x) for x in curve.tokens_per_expert],
                "efficiency": [round(float(y), 6) for y in curve.efficiency],
            }
        return out

    @classmethod
    def from_section(cls, section: Any, *, where: str) -> GroupedGemmCurve:
        """Parse a ``moe_grouped_gemm`` mapping; errors name ``where`` and the field."""
        if not isinstance(section, Mapping):
            raise UserError(f"{where}: {SECTION} must be a mapping of formats to curves")
        source = section.get("source")
        if not isinstance(source, str) or not source.strip():
            raise UserError(f"{where}: {SECTION}.source must say what was measured (text)")
        curves: dict[str, EfficiencyCurve] = {}
        routing = _parse_routing(section.get("routing"), f"{where}: {SECTION}.routing")
        latency = section.get("latency_s", 0.0)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or not latency >= 0:
            raise UserError(f"{where}: {SECTION}.latency_s: {latency!r} must be a number >= 0")
        for name, body in section.items():
            if name in ("source", "routing", "latency_s"):
                continue
            field = f"{where}: {SECTION}.{name}"
            try:
                key = _dtype_key(str(name))
            except ValueError as exc:
                raise UserError(f"{field}: {exc}") from None
            curves[key] = _parse_curve(body, field)
        if not curves:
            raise UserError(f"{where}: {SECTION} holds no curve (e.g. a 'bf16' entry)")
        return cls(curves, source, routing, float(latency))


def _dtype_key(name: str) -> str:
    return canonical_dtype(name)


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _parse_curve(body: Any, field: str) -> EfficiencyCurve:
    if not isinstance(body, Mapping) or set(body) != {"tokens_per_expert", "efficiency"}:
        raise UserError(f"{field}: expected exactly 'tokens_per_expert' and 'efficiency' lists")
    xs, ys = body["tokens_per_expert"], body["efficiency"]
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
        raise UserError(f"{field}: 'tokens_per_expert' and 'efficiency' must be lists, one length")
    try:
        xf, yf = [float(x) for x in xs], [float(y) for y in ys]
    except (TypeError, ValueError):
        raise UserError(f"{field}: every entry must be a number") from None
    increasing = all(b > a for a, b in itertools.pairwise(xf))
    if any(not math.isfinite(x) or x <= 0 for x in xf) or not increasing:
        raise UserError(f"{field}.tokens_per_expert: {xs!r} must be positive and increasing")
    bad = [y for y in yf if not (0 < y <= MAX_EFFICIENCY)]
    if bad:
        raise UserError(f"{field}.efficiency: {bad[0]!r} must be in (0, {MAX_EFFICIENCY}]")
    return EfficiencyCurve(tuple(xf), tuple(yf))


def _parse_routing(body: Any, field: str) -> RoutingCost | None:
    if body is None:
        return None
    names = ("latency_s", "s_per_row_element", "s_per_logit")
    if not isinstance(body, Mapping) or set(body) != set(names):
        raise UserError(f"{field}: expected exactly {', '.join(names)}")
    values = {}
    for name in names:
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise UserError(f"{field}.{name}: {value!r} must be a number >= 0")
        values[name] = float(value)
    return RoutingCost(**values)


def load_curve(path: str | Path) -> GroupedGemmCurve | None:
    """The ``moe_grouped_gemm`` section of a YAML file, or None when it has none."""
    path = Path(path)
    data = read_yaml(path, "MoE curve file")
    if not isinstance(data, Mapping) or SECTION not in data:
        return None
    return GroupedGemmCurve.from_section(data[SECTION], where=str(path))


def curve_for_calibration(calibration: str | Path | None) -> GroupedGemmCurve | None:
    """The grouped-GEMM curve that goes with a calibration file: its own section, else the
    file ``<stem>-moe.yaml`` beside it; None for no file (datasheet defaults) or no curve."""
    if calibration is None:
        return None
    path = Path(calibration)
    if not path.is_file():
        return None
    curve = load_curve(path)
    if curve is not None:
        return curve
    beside = companion_curve_file(path)
    return load_curve(beside) if beside is not None else None


def companion_curve_file(calibration: Path) -> Path | None:
    """The ``<stem>-moe.yaml`` beside a calibration file that carries its curve, if any."""
    beside = calibration.with_name(f"{calibration.stem}-moe.yaml")
    return beside if beside.is_file() else None


def expert_gemm_s(
    curve: GroupedGemmCurve,
    weight_dtype: str,
    peak_flops: float,
    flops: float,
    rows: float,
    experts_active: float,
) -> float | None:
    """Time (s) of one grouped expert GEMM of ``flops`` FLOPs over ``rows`` token-expert rows
    spread on ``experts_active`` experts, from the curve; None when the format has no curve.

    ``peak_flops``: the GPU's dense peak (FLOP/s) of the format the GEMM computes in."""
    if _dtype_key(weight_dtype) not in curve.curves:
        return None
    if rows <= 0 or experts_active <= 0:
        return 0.0
    eff = curve.efficiency(weight_dtype, rows / experts_active)
    return curve.latency_s + flops / (peak_flops * eff)


def grouped_expert_cost(
    curve: GroupedGemmCurve,
    op: GemmOp,
    model: CostModel,
    tokens: int,
    rows: float,
    flops: float,
    nbytes: float,
) -> OpCost | None:
    """Cost of a routed expert GEMM ``op`` over ``rows`` token-expert rows of a step of
    ``tokens`` tokens (``flops``/``nbytes`` per layer), summed over its layers; None when the
    curve has no entry for the experts' weight format (then it is priced as a dense GEMM).
    The gate+up GEMM also carries the layer's routing when the curve prices it."""
    computes_in = gemm_dtype(op.dtype, compute_dtype(op.dtype, model.activation_dtype), model.gpu)
    peak = model.gpu.flops_for(computes_in)
    time_s = expert_gemm_s(curve, op.dtype, peak, flops, rows, op.experts_touched(tokens))
    if time_s is None:
        return None
    fixed_s = curve.latency_s
    if curve.routing is not None and op.name == "experts_gate_up":  # once per MoE layer
        tokens_routed = rows / op.experts_per_token
        routing_s = curve.routing.time_s(rows, op.k, tokens_routed, op.local_experts or op.experts)
        time_s, fixed_s = time_s + routing_s, fixed_s + curve.routing.latency_s
    # What bounds the GEMM itself: the curve's best rate against the memory roofline.
    best_s = flops / (peak * max(max(c.efficiency) for c in curve.curves.values()))
    bw = model.gpu.memory_bw_bytes_per_s * model.params.memory_bw_efficiency
    bound = bound_of(best_s, nbytes / bw, fixed_s)
    n = op.layers
    return OpCost(op.name, n * flops, n * nbytes, n * time_s, bound)
