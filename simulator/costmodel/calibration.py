"""Fit ``CostParams`` to measurements in the shared JSON-lines format.

Row kinds (see ``calibration/README.md`` of the shared data): ``env`` (the device),
``ceiling``, ``gemm`` (``x[m,k] @ w[k,n]``), ``model``, ``prefill``, ``decode``, ``mixed``
(whole graphed steps, with ``eager_ms`` where measured) and ``allreduce``; and the
extensions of ``hardware_specs/calibration/README.md``: ``gemm`` rows with ``"graph": true``
(per-kernel time inside a CUDA graph, so without the standalone-call overhead) and
``"dtype": "fp8"``; ``attn_prefill`` / ``attn_decode`` (one layer's attention kernel);
``launch`` (reported, not fitted).

The fit minimises squared log-ratios (relative errors) of predicted over measured times with
``scipy.optimize.least_squares``, jointly over:

* ``gemm`` rows → ``gemm_efficiency``, ``gemm_pad_tokens``, ``memory_bw_efficiency``
  (``gemm_efficiency_8bit`` from fp8 rows), plus, for rows timed one call at a time, a
  nuisance fixed cost per standalone timed GEMM call (``gemm_call_overhead_s``: launch and
  event overhead of timing one kernel outside a graph; it does not exist inside a graph
  and is reported, not stored);
* ``attn_prefill`` / ``attn_decode`` rows → the attention parameters;
* step rows → latencies, overheads and attention efficiencies;
* ``eager_ms`` → ``eager_launch_overhead_s``;
* ``allreduce`` rows → ``allreduce_latency_s``, ``allreduce_bw_efficiency``.

Parameters that the rows cannot separate (per-kernel latency and per-step overhead are
collinear for a single model) are held near their defaults by a weak log-normal prior, so
the fit is well-posed and deterministic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from simulator.costmodel.comm import allreduce_s
from simulator.costmodel.config import CostConfig
from simulator.costmodel.measurement_rows import json_text, row_problems
from simulator.costmodel.model import CostModel
from simulator.costmodel.params import CostParams
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.files import read_text
from simulator.specs.gpu import GpuSpec
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec

STEP_KINDS = ("prefill", "decode", "mixed")
ATTENTION_KINDS = ("attn_prefill", "attn_decode")

#: Parameters fitted from each kind of row (others keep their starting values).
GEMM_PARAMS = ("gemm_efficiency", "gemm_pad_tokens", "memory_bw_efficiency")
STEP_PARAMS = (
    "kernel_latency_s",
    "attention_kernel_latency_s",
    "attention_prefill_efficiency",
    "attention_decode_bw_efficiency",
    "attention_decode_pad_tokens",
    "elementwise_traffic_factor",
    "step_overhead_s",
)
ATTENTION_PARAMS = (
    "kernel_latency_s",
    "attention_kernel_latency_s",
    "attention_prefill_efficiency",
    "attention_decode_bw_efficiency",
    "attention_decode_pad_tokens",
)
FP8_PARAMS = ("gemm_efficiency_8bit",)
EAGER_PARAMS = ("eager_launch_overhead_s",)
ALLREDUCE_PARAMS = ("allreduce_latency_s", "allreduce_bw_efficiency")

#: Upper bounds of fitted parameters (lower bounds are > 0 through the log transform).
UPPER = {
    "gemm_efficiency": 1.0,
    "gemm_efficiency_8bit": 1.0,
    "memory_bw_efficiency": 1.0,
    "attention_prefill_efficiency": 1.0,
    "attention_decode_bw_efficiency": 1.0,
    "allreduce_bw_efficiency": 1.2,  # in-switch reduction (NVLS) exceeds the link rate
    "gemm_pad_tokens": 1024.0,
    "attention_decode_pad_tokens": 4096.0,
    "elementwise_traffic_factor": 10.0,
}

#: Weight of the log-normal prior that keeps each parameter near its starting value,
#: relative to one measured row (a 10x change costs as much as a 5% error on ~1 row).
PRIOR_WEIGHT = 0.02

#: Starting value of the nuisance per-call overhead of standalone GEMM timings (s).
GEMM_CALL_OVERHEAD_START_S = 10e-6

#: Largest measurement file read (bytes).
MAX_MEASUREMENT_BYTES = 256 * 2**20


@dataclass
class RowResult:
    """Prediction for one measured row."""

    row: dict
    measured_ms: float
    predicted_ms: float
    held_out: bool
    label: str

    @property
    def error_pct(self) -> float:
        return (self.predicted_ms / self.measured_ms - 1.0) * 100.0


@dataclass
class FitResult:
    params: CostParams
    rows: list[RowResult]
    fitted_names: tuple[str, ...]
    gemm_call_overhead_s: float | None = None
    cost: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, held_out: bool | None = None) -> dict[str, dict[str, float]]:
        """Median and worst absolute % error per row kind (optionally only held-out/fitted)."""
        return summarize([r for r in self.rows if held_out is None or r.held_out == held_out])


def summarize(rows: Iterable[RowResult]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r.label.split(" ")[0], []).append(abs(r.error_pct))
        groups.setdefault("all", []).append(abs(r.error_pct))
    return {
        k: {"n": len(v), "median_abs_pct": float(np.median(v)), "max_abs_pct": float(max(v))}
        for k, v in groups.items()
    }


# --- reading -------------------------------------------------------------------------------
def load_rows(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines measurement file; every row gets ``_source`` and ``_line``. The
    fields that a fit reads of each row kind are checked (see ``ROW_FIELDS``)."""
    path = Path(path)
    text = read_text(path, "--from: measurement file", max_bytes=MAX_MEASUREMENT_BYTES)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "kind" not in row:
            raise UserError(f"{path}:{number}: expected an object with a 'kind' field")
        where = f"--from {path} line {number}"
        if not isinstance(row["kind"], str) or not row["kind"]:
            raise UserError(
                f"{where}: 'kind' must be a row kind such as gemm, decode or env (text); "
                f"got {json_text(row['kind'])}"
            )
        problems = row_problems(row)
        if problems:
            raise UserError([f"{where}: {p}" for p in problems])
        row["_source"], row["_line"] = str(path), number
        rows.append(row)
    return rows


def row_shape(row: Mapping[str, Any]) -> StepShape | None:
    """The step a ``prefill``/``decode``/``mixed`` row timed (None for other kinds); for
    ``attn_*`` rows the step whose attention op the kernel is."""
    kind = row["kind"]
    if kind in ("decode", "attn_decode"):
        return StepShape.uniform(decode_count=row["batch"], decode_context=row["context"])
    if kind in ("prefill", "attn_prefill"):
        return StepShape.uniform(prefill_count=row["batch"], prefill_new=row["seq"])
    if kind == "mixed":
        return StepShape.uniform(
            prefill_count=1,
            prefill_new=row["chunk"],
            prefill_cached=row["chunk_context"],
            decode_count=row["decode_batch"],
            decode_context=row["decode_context"],
        )
    return None


def row_label(row: Mapping[str, Any]) -> str:
    kind = row["kind"]
    if kind == "gemm":
        fp8 = " fp8" if row.get("dtype") == "fp8" else ""
        return f"gemm{fp8} m={row['m']} k={row['k']} n={row['n']}"
    if kind == "attn_decode":
        return f"attn_decode {row['model']} batch={row['batch']} context={row['context']}"
    if kind == "attn_prefill":
        return f"attn_prefill {row['model']} batch={row['batch']} seq={row['seq']}"
    if kind == "decode":
        return f"decode batch={row['batch']} context={row['context']}"
    if kind == "prefill":
        return f"prefill batch={row['batch']} seq={row['seq']}"
    if kind == "mixed":
        return (
            f"mixed chunk={row['chunk']}+{row['chunk_context']} "
            f"decode={row['decode_batch']}x{row['decode_context']}"
        )
    if kind == "allreduce":
        return f"allreduce bytes={row['bytes']} tp={row.get('tp', 2)}"
    return kind


def parse_holdout(expr: str) -> Callable[[Mapping[str, Any]], bool]:
    """``key=value[,key=value...]`` → predicate true for rows matching every pair."""
    pairs = []
    for part in expr.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UserError(
                f"--holdout: {expr!r} is not of the form KEY=VALUE[,KEY=VALUE] "
                "(e.g. kind=mixed or kind=decode,batch=512)"
            )
        pairs.append((key.strip(), value.strip()))

    def match(row: Mapping[str, Any]) -> bool:
        return all(str(row.get(k)) == v for k, v in pairs)

    return match


# --- fitting -------------------------------------------------------------------------------
@dataclass
class _Problem:
    rows: list[dict]
    held_out: list[bool]
    models: Mapping[str, ModelSpec]
    gpu: GpuSpec
    link: LinkSpec | None
    start: CostParams
    names: tuple[str, ...]
    fit_gemm_overhead: bool

    def params_from(self, x: np.ndarray) -> tuple[CostParams, float]:
        values = dict(zip(self.names, np.exp(x[: len(self.names)]), strict=True))
        for name, upper in UPPER.items():
            if name in values:
                values[name] = min(values[name], upper)
        overhead = float(np.exp(x[-1])) if self.fit_gemm_overhead else 0.0
        return self.start.replace(**{k: float(v) for k, v in values.items()}), overhead

    def predictions(self, params: CostParams, gemm_overhead_s: float) -> list[tuple[float, float]]:
        """(measured_ms, predicted_ms) per usable measurement, eager rows counted twice."""
        out = []
        graphed: dict[str, CostModel] = {}
        eager: dict[str, CostModel] = {}
        for row in self.rows:
            for measured, pred in _row_predictions(
                row, params, gemm_overhead_s, self, graphed, eager
            ):
                out.append((measured, pred))
        return out


def _cost_model(name: str, problem: _Problem, params: CostParams, cache: dict) -> CostModel:
    if name not in cache:
        if name not in problem.models:
            raise UserError(f"calibration rows name model {name!r}, which was not given")
        cache[name] = CostModel(CostConfig(problem.models[name], problem.gpu, params=params))
    return cache[name]


def _row_predictions(
    row: Mapping[str, Any],
    params: CostParams,
    gemm_overhead_s: float,
    problem: _Problem,
    graphed: dict,
    eager: dict,
) -> list[tuple[float, float]]:
    kind = row["kind"]
    if kind == "gemm":
        overhead_s = 0.0 if row.get("graph") else gemm_overhead_s
        return [(row["ms"], 1e3 * (gemm_time_s(row, problem.gpu, params) + overhead_s))]
    if kind in ATTENTION_KINDS:
        model = _cost_model(row["model"], problem, params, graphed)
        return [(row["ms"], 1e3 * attention_layer_s(model, row))]
    if kind in STEP_KINDS:
        shape = row_shape(row)
        model = _cost_model(row["model"], problem, params, graphed)
        out = [(row["ms"], 1e3 * model.step_time_s(shape))]
        if row.get("eager_ms"):
            eager_params = params.replace(cuda_graphs=False)
            em = _cost_model(row["model"], problem, eager_params, eager)
            out.append((row["eager_ms"], 1e3 * em.step_time_s(shape)))
        return out
    if kind == "allreduce" and problem.link is not None:
        n = int(row.get("tp", 2))
        return [(row["ms"], 1e3 * allreduce_s(row["bytes"], n, problem.link, params))]
    return []


def gemm_time_s(row: Mapping[str, Any], gpu: GpuSpec, params: CostParams) -> float:
    """Predicted time of one ``x[m,k] @ w[k,n]`` inside a graph (s): bf16, or fp8 operands
    with a bf16 output when the row says ``"dtype": "fp8"``."""
    m, k, n = row["m"], row["k"], row["n"]
    if row.get("dtype") == "fp8":
        peak = gpu.flops_for("fp8") * params.gemm_efficiency_8bit
        nbytes = 1.0 * (k * n + m * k) + 2.0 * m * n
    else:
        peak = gpu.flops_for("bf16") * params.gemm_efficiency
        nbytes = 2.0 * (k * n + m * k + m * n)
    compute_s = 2.0 * k * n * (m + params.gemm_pad_tokens) / peak
    memory_s = nbytes / (gpu.memory_bw_bytes_per_s * params.memory_bw_efficiency)
    return max(compute_s, memory_s) + params.kernel_latency_s


def attention_layer_s(model: CostModel, row: Mapping[str, Any]) -> float:
    """Predicted time (s) of one layer's attention kernel of an ``attn_*`` row."""
    name = "attention_decode" if row["kind"] == "attn_decode" else "attention_prefill"
    cost = model.price(row_shape(row))
    op_s = sum(op.time_s for op in cost.ops if op.name == name)
    return op_s / model.plan.num_layers


def fitted_names(fit_rows: Sequence[dict], kinds: set[str], has_link: bool) -> list[str]:
    """The parameters that the fitted rows inform (see the module docstring)."""
    names: list[str] = []
    gemm_rows = [r for r in fit_rows if r["kind"] == "gemm"]
    if any(r.get("dtype", "bf16") == "bf16" for r in gemm_rows):
        names += GEMM_PARAMS
    if any(r.get("dtype") == "fp8" for r in gemm_rows):
        names += FP8_PARAMS
    if kinds & set(STEP_KINDS):
        names += STEP_PARAMS
        if any(r.get("eager_ms") for r in fit_rows):
            names += EAGER_PARAMS
    if kinds & set(ATTENTION_KINDS):
        names += [n for n in ATTENTION_PARAMS if n not in names]
    if "allreduce" in kinds and has_link:
        names += ALLREDUCE_PARAMS
    return names


def fit(
    rows: Sequence[dict],
    *,
    models: Mapping[str, ModelSpec],
    gpu: GpuSpec,
    link: LinkSpec | None = None,
    start: CostParams | None = None,
    holdout: Callable[[Mapping[str, Any]], bool] | None = None,
) -> FitResult:
    """Fit the parameters that ``rows`` inform; rows where ``holdout`` is true are only scored."""
    start = start or CostParams.defaults()
    held = [bool(holdout(r)) if holdout else False for r in rows]
    kinds = {r["kind"] for r, h in zip(rows, held, strict=True) if not h}
    fit_rows = [r for r, h in zip(rows, held, strict=True) if not h]
    names = fitted_names(fit_rows, kinds, link is not None)
    gemm_rows = [r for r in fit_rows if r["kind"] == "gemm"]
    standalone_gemms = any(not r.get("graph") for r in gemm_rows)
    problem = _Problem(
        fit_rows,
        [False] * len(fit_rows),
        models,
        gpu,
        link,
        start,
        tuple(names),
        fit_gemm_overhead=standalone_gemms,
    )
    x0 = [math.log(getattr(start, n)) for n in names]
    if problem.fit_gemm_overhead:
        x0.append(math.log(GEMM_CALL_OVERHEAD_START_S))
    x0_arr = np.array(x0, dtype=float)
    prior_center = x0_arr[: len(names)].copy()

    def residuals(x: np.ndarray) -> np.ndarray:
        params, overhead = problem.params_from(x)
        pairs = problem.predictions(params, overhead)
        res = [math.log(pred / meas) for meas, pred in pairs]
        res += list(PRIOR_WEIGHT * (x[: len(names)] - prior_center))
        return np.array(res)

    if names:
        upper = [math.log(UPPER.get(n, 1.0)) if n in UPPER else np.inf for n in names]
        if problem.fit_gemm_overhead:
            upper.append(np.inf)
        lower = [-np.inf] * len(upper)
        x0_arr = np.minimum(x0_arr, np.array(upper) - 1e-9)
        solution = least_squares(
            residuals,
            x0_arr,
            bounds=(lower, upper),
            method="trf",
            x_scale=1.0,
            xtol=1e-10,
            ftol=1e-10,
            max_nfev=2000,
        )
        params, overhead = problem.params_from(solution.x)
        cost = float(solution.cost)
    else:
        params, overhead, cost = start, 0.0, 0.0
    results = score(
        rows, params, models=models, gpu=gpu, link=link, held_out=held, gemm_overhead_s=overhead
    )
    return FitResult(
        params=params,
        rows=results,
        fitted_names=tuple(names),
        gemm_call_overhead_s=overhead if problem.fit_gemm_overhead else None,
        cost=cost,
    )


def score(
    rows: Sequence[dict],
    params: CostParams,
    *,
    models: Mapping[str, ModelSpec],
    gpu: GpuSpec,
    link: LinkSpec | None = None,
    held_out: Sequence[bool] | None = None,
    gemm_overhead_s: float = 0.0,
) -> list[RowResult]:
    """Predictions of ``params`` for every timed row (eager measurements as their own rows)."""
    held_out = held_out or [False] * len(rows)
    problem = _Problem(list(rows), list(held_out), models, gpu, link, params, (), False)
    graphed: dict = {}
    eager: dict = {}
    out = []
    for row, held in zip(rows, held_out, strict=True):
        pairs = _row_predictions(row, params, gemm_overhead_s, problem, graphed, eager)
        for i, (measured, pred) in enumerate(pairs):
            label = row_label(row)
            if i == 1:
                label = "eager " + label
            out.append(RowResult(dict(row), measured, pred, held, label))
    return out


#: Device names reported by ``torch.cuda.get_device_name`` → catalog GPU names. The H100
#: SXM part reports itself as "H100 80GB HBM3"; the PCIe part as "H100 PCIe".
DEVICE_NAME_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h100", "pcie"), "h100-pcie"),
    (("h100", "hbm3"), "h100-sxm"),
    (("h100", "sxm"), "h100-sxm"),
    (("h200",), "h200"),
    (("a100", "pcie", "80"), "a100-pcie-80gb"),
    (("a100", "80"), "a100-sxm-80gb"),
    (("a100", "40"), "a100-sxm-40gb"),
    (("l40s",), "l40s"),
    (("a10g",), "a10g"),
    (("l4",), "l4"),
    (("b200",), "b200"),
    (("mi300x",), "mi300x"),
)


def catalog_gpu_name(device_name: str) -> str | None:
    """Catalog name of a device as PyTorch reports it, or None when unknown."""
    lowered = device_name.lower()
    for needles, name in DEVICE_NAME_PATTERNS:
        if all(n in lowered for n in needles):
            return name
    return None
