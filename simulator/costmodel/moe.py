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
  the experts, time is the whole grouped-GEMM kernel (memory traffic, tile padding and
  fixed latency included: the cost model adds nothing to it) and peak is the GPU's
  datasheet dense peak of the format the GEMM *computes* in (``GpuSpec.flops_for``: bf16 for
  bf16 and weight-only int4/MXFP4 on Hopper, fp8 for fp8 on Hopper, fp4 on Blackwell).
- **between and beyond the points**: log(efficiency) is interpolated linearly in
  log(tokens per expert) and held at the end values outside the measured range.
- ``source`` is free text and required (every number carries its source).

``hardware_specs/calibration/<gpu>-moe.yaml`` holds the curve of the PyTorch reference
calibration ``<gpu>.yaml`` and applies with it (``curve_for_calibration``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype

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
class GroupedGemmCurve:
    """Grouped expert GEMM efficiency curves per weight format, with their source."""

    curves: Mapping[str, EfficiencyCurve]
    source: str

    def efficiency(self, weight_dtype: str, tokens_per_expert: float) -> float | None:
        """Efficiency of an expert GEMM over ``weight_dtype`` weights, None without a curve."""
        curve = self.curves.get(_dtype_key(weight_dtype))
        return curve.at(tokens_per_expert) if curve is not None else None

    def to_section(self) -> dict[str, Any]:
        """The YAML section (``{SECTION: ...}`` value) describing this curve."""
        out: dict[str, Any] = {"source": self.source}
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
        for name, body in section.items():
            if name == "source":
                continue
            field = f"{where}: {SECTION}.{name}"
            try:
                key = _dtype_key(str(name))
            except ValueError as exc:
                raise UserError(f"{field}: {exc}") from None
            curves[key] = _parse_curve(body, field)
        if not curves:
            raise UserError(f"{where}: {SECTION} holds no curve (e.g. a 'bf16' entry)")
        return cls(curves, source)


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


def load_curve(path: str | Path) -> GroupedGemmCurve | None:
    """The ``moe_grouped_gemm`` section of a YAML file, or None when it has none."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"MoE curve file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"MoE curve file {str(path)!r} is not valid YAML: {exc}") from None
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
    beside = path.with_name(f"{path.stem}-moe.yaml")
    return load_curve(beside) if beside.is_file() else None


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
    return flops / (peak_flops * eff)
