"""Measured kernel speed of one engine on one GPU: an engine calibration.

A serving engine's kernels (its GEMM library, attention kernels, fused MoE, custom
all-reduce) are measured per GPU and engine version; ``servesim calibrate
--from-aiconfigurator`` turns published tables of such measurements into one YAML file per
(GPU, engine, version) under ``hardware_specs/calibration/engines/``. The cost model
prices with these where they apply and falls back to ``CostParams`` elsewhere.

Efficiencies are achieved fractions of the GPU's datasheet peak (the catalog's numbers,
written into the file as ``peak_flops`` and ``memory_bw_bytes_per_s``):

* ``gemm.<dtype>``: FLOP/s of ``x[tokens, k] @ w[k, n]`` over the peak of that dtype, on a
  grid of (tokens, n, k);
* ``attention_prefill.<kv dtype>``: causal attention FLOP/s over the bf16 peak, on a grid
  of (tokens per sequence, sequences × query heads, head dim);
* ``attention_decode.<kv dtype>``: KV-cache bytes read per second over the memory
  bandwidth, on a grid of (KV tokens per sequence × head dim / 128, sequences, KV heads,
  query heads per KV head);
* ``moe_grouped_gemm.<dtype>``: FLOP/s of the grouped expert GEMMs over the dtype's peak
  by tokens per expert; ``moe_grouped_gemm_grid.<dtype>`` the same on a grid of (tokens
  per expert, expert weight elements per GPU, experts per GPU), used where present;
* ``moe_measured``: seconds of one fused-MoE layer by tokens for each measured expert shape,
  layout and routing (``fused_moe``), used before the grid where the model's shape is there;
* ``allreduce``: seconds of one all-reduce by (message bytes, GPUs) inside a node;
* ``nccl``: seconds of NCCL's ``all_gather``, ``reduce_scatter``, ``all_reduce`` and
  ``alltoall`` by (message bytes, GPUs) inside a node (a gather's bytes: its whole result);
* ``params``: ``CostParams`` fields the measurements set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from simulator.costmodel.fused_moe import FusedMoeCurve, MoeLayout, parse_section
from simulator.costmodel.loggrid import LogGrid
from simulator.errors import UserError

#: Format tag of engine calibration files.
ENGINE_CALIBRATION_FORMAT = "servesim-engine-calibration/1"
#: KV-cache dtypes priced with another's measurements (same bytes per element).
KV_TABLE_ALIASES = {"fp16": "bf16", "fp32": "bf16", "int8": "fp8"}
#: Head dim that the decode grid's first axis counts KV tokens in (tokens × head dim / 128).
DECODE_HEAD_DIM_UNIT = 128.0


@dataclass(frozen=True)
class KernelTables:
    """Kernel efficiencies of one engine version on one GPU (see the module docstring)."""

    engine: str
    version: str
    gpu: str
    gemm: dict[str, LogGrid] = field(default_factory=dict)
    attention_prefill: dict[str, LogGrid] = field(default_factory=dict)
    attention_decode: dict[str, LogGrid] = field(default_factory=dict)
    moe_grouped_gemm: dict[str, LogGrid] = field(default_factory=dict)
    moe_grid: dict[str, LogGrid] = field(default_factory=dict)
    #: Measured fused-MoE curves: {(dtype, routing): {layout key: curve}}.
    moe_measured: dict[tuple[str, str], dict[str, FusedMoeCurve]] = field(default_factory=dict)
    allreduce: LogGrid | None = None
    nccl: dict[str, LogGrid] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    #: Where the measurements come from (one line, for summaries).
    source: str = ""

    @property
    def label(self) -> str:
        """``engine version on gpu`` (what a summary names)."""
        return f"{self.engine} {self.version} on {self.gpu}"

    def gemm_grid(self, dtype: str) -> LogGrid | None:
        return self.gemm.get(dtype)

    def prefill_grid(self, kv_dtype: str) -> LogGrid | None:
        return self.attention_prefill.get(KV_TABLE_ALIASES.get(kv_dtype, kv_dtype))

    def decode_grid(self, kv_dtype: str) -> LogGrid | None:
        return self.attention_decode.get(KV_TABLE_ALIASES.get(kv_dtype, kv_dtype))

    def moe_curve(self, dtype: str) -> LogGrid | None:
        """The grid by (tokens per expert, expert weights, local experts) where measured,
        else the curve by tokens per expert alone."""
        return self.moe_grid.get(dtype) or self.moe_grouped_gemm.get(dtype)

    def fused_moe(self, dtype: str, routing: str, layout: MoeLayout) -> FusedMoeCurve | None:
        """The measured fused-MoE curve of ``layout`` in ``dtype`` under ``routing``; None
        where that shape and layout were not measured."""
        return self.moe_measured.get((dtype, routing), {}).get(layout.key)

    # --- files -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "engine calibration") -> KernelTables:
        if data.get("format") != ENGINE_CALIBRATION_FORMAT:
            raise UserError(
                f"{where}: format {data.get('format')!r}; expected {ENGINE_CALIBRATION_FORMAT!r}"
            )
        try:
            return cls(
                engine=str(data["engine"]),
                version=str(data["version"]),
                gpu=str(data["gpu"]),
                gemm=_grids(data.get("gemm")),
                attention_prefill=_grids(data.get("attention_prefill")),
                attention_decode=_grids(data.get("attention_decode")),
                moe_grouped_gemm=_moe_curves(data.get("moe_grouped_gemm")),
                moe_grid=_grids(data.get("moe_grouped_gemm_grid")),
                moe_measured=parse_section(data.get("moe_measured")),
                allreduce=(
                    LogGrid.from_dict(data["allreduce"], "latency_s")
                    if data.get("allreduce")
                    else None
                ),
                nccl={
                    str(op): LogGrid.from_dict(grid, "latency_s")
                    for op, grid in (data.get("nccl") or {}).items()
                },
                params={k: float(v) for k, v in (data.get("params") or {}).items()},
                source=str((data.get("metadata") or {}).get("summary", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{where}: malformed ({exc})") from None

    @classmethod
    def from_file(cls, path: str | Path) -> KernelTables:
        """Read an engine calibration (read once per file version: the tables are large)."""
        path = Path(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise UserError(f"engine calibration {str(path)!r} does not exist") from None
        return _read(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int, size: int) -> KernelTables:
    """One engine calibration file, parsed with libyaml where available."""
    del mtime_ns, size  # part of the cache key: a rewritten file is read again
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(path.read_text(), Loader=loader)
    except yaml.YAMLError as exc:
        raise UserError(f"engine calibration {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"engine calibration {str(path)!r}: expected a mapping")
    return KernelTables.from_dict(data, str(path))


def _grids(section: dict | None) -> dict[str, LogGrid]:
    return {str(k): LogGrid.from_dict(v) for k, v in (section or {}).items()}


def _moe_curves(section: dict | None) -> dict[str, LogGrid]:
    """Curves of the ``moe_grouped_gemm`` section ({dtype: {tokens_per_expert, efficiency}})."""
    curves = {}
    for dtype, curve in (section or {}).items():
        if not isinstance(curve, dict) or "tokens_per_expert" not in curve:
            continue  # ``source`` and other notes
        curves[str(dtype)] = LogGrid(
            ("tokens_per_expert",),
            (tuple(float(v) for v in curve["tokens_per_expert"]),),
            np.asarray(curve["efficiency"], dtype=np.float64),
        )
    return curves


def moe_section(curves: dict[str, LogGrid], source: str) -> dict[str, Any]:
    """The ``moe_grouped_gemm`` YAML section of ``curves``."""
    out: dict[str, Any] = {}
    for dtype, grid in curves.items():
        d = grid.to_dict()
        out[dtype] = {
            "tokens_per_expert": d["axes"]["tokens_per_expert"],
            "efficiency": d["efficiency"],
        }
    out["source"] = source
    return out
