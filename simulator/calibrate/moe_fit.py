"""Fit the grouped expert GEMM curve (``simulator/costmodel/moe.py``) to measured rows.

Rows (``servesim calibrate --measure``, documented in ``hardware_specs/calibration/README.md``):

* ``grouped_gemm``: ``tokens_per_expert`` rows on each of ``experts`` experts (all of the
  model's, fewer where that would pass 65536 rows) → the efficiency curve;
* ``grouped_gemm_active``: one row on each of a few experts (a decode of a few tokens) →
  with the former, the fixed time of one grouped GEMM call (``latency_s``);
* ``moe_routing``: dispatch and combine of one MoE layer without GEMMs → ``routing``.

Whole MoE steps and MoE blocks (``moe_decode``, ``moe_prefill``, ``moe_layer``) are never
fitted: they judge the result (``benchmarks/validation_moe.py``).

The fit has no free constant: at each measured tokens-per-expert the efficiency is the
geometric mean over the expert shapes; ``latency_s`` is the value on a 0.1 µs grid that
minimises the squared log-errors of all grouped GEMM rows (the first minimum); routing is a
non-negative least-squares fit on relative errors. The same rows give the same file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simulator.costmodel.moe import (
    EfficiencyCurve,
    GroupedGemmCurve,
    RoutingCost,
    expert_gemm_s,
)
from simulator.errors import UserError
from simulator.specs.dtypes import canonical_dtype
from simulator.specs.gpu import GpuSpec

GROUPED_GEMM_KIND = "grouped_gemm"
ACTIVE_KIND = "grouped_gemm_active"
ROUTING_KIND = "moe_routing"
#: Row kinds this module fits (others are ignored).
FITTED_KINDS = (GROUPED_GEMM_KIND, ACTIVE_KIND, ROUTING_KIND)
#: Candidate fixed times of a grouped GEMM call (s): 0 to 50 µs in steps of 0.1 µs.
LATENCY_GRID_S = np.round(np.arange(0.0, 50e-6, 0.1e-6), 10)


def _flops(row: Mapping[str, Any]) -> float:
    return 2.0 * row["rows"] * row["k"] * row["n"]


def _peak(row: Mapping[str, Any], gpu: GpuSpec) -> float:
    return gpu.flops_for(row.get("dtype", "bf16"))


def row_efficiency(row: Mapping[str, Any], gpu: GpuSpec, latency_s: float = 0.0) -> float:
    """Achieved fraction of ``gpu``'s dense peak of a grouped GEMM row, its time less
    ``latency_s``."""
    return _flops(row) / ((row["ms"] * 1e-3 - latency_s) * _peak(row, gpu))


def _curves(full: Sequence[Mapping[str, Any]], gpu: GpuSpec, latency_s: float) -> dict:
    by_dtype: dict[str, dict[float, list[float]]] = {}
    for row in full:
        points = by_dtype.setdefault(canonical_dtype(row.get("dtype", "bf16")), {})
        m = float(row["tokens_per_expert"])
        points.setdefault(m, []).append(row_efficiency(row, gpu, latency_s))
    curves = {}
    for dtype, points in sorted(by_dtype.items()):
        xs = sorted(points)
        ys = [round(float(np.exp(np.mean(np.log(points[x])))), 6) for x in xs]
        curves[dtype] = EfficiencyCurve(tuple(xs), tuple(ys))
    return curves


def fit_latency(
    full: Sequence[Mapping[str, Any]], active: Sequence[Mapping[str, Any]], gpu: GpuSpec
) -> float:
    """Fixed time of one grouped GEMM call (s) that best explains all grouped GEMM rows:
    for each candidate, the curve of the ``full`` rows less that time, scored on the squared
    log-errors of every row (the first minimum of the grid)."""
    if not active:
        return 0.0
    rows = [*full, *active]
    time_s = np.array([r["ms"] * 1e-3 for r in rows])
    work = np.array([_flops(r) / _peak(r, gpu) for r in rows])  # seconds at full peak
    x = np.log([r["rows"] / r["experts"] for r in rows])
    keys = [(canonical_dtype(r.get("dtype", "bf16")), float(r["tokens_per_expert"])) for r in full]
    points = sorted(set(keys))
    group = np.array([points.index(k) for k in keys])
    dtypes = sorted({d for d, _ in points})
    dtype_of = [canonical_dtype(r.get("dtype", "bf16")) for r in rows]
    n_full = len(full)
    best, best_cost = 0.0, np.inf
    for latency in LATENCY_GRID_S:
        if latency >= 0.5 * time_s[:n_full].min():
            break
        log_eff = np.log(work[:n_full] / (time_s[:n_full] - latency))
        counts = np.bincount(group, minlength=len(points))
        mean = np.bincount(group, weights=log_eff, minlength=len(points)) / counts
        curve_y = np.log(np.round(np.exp(mean), 6))
        predicted = np.empty(len(rows))
        for dtype in dtypes:
            idx = [g for g, (d, _) in enumerate(points) if d == dtype]
            xs = np.log([points[g][1] for g in idx])
            mine = np.array([d == dtype for d in dtype_of])
            eff = np.exp(np.interp(x[mine], xs, curve_y[idx]))
            predicted[mine] = latency + work[mine] / eff
        cost = float(np.sum(np.log(predicted / time_s) ** 2))
        if cost < best_cost:
            best, best_cost = float(latency), cost
    return best


def fit_curve(rows: Sequence[Mapping[str, Any]], gpu: GpuSpec, source: str) -> GroupedGemmCurve:
    """The curve, call latency and routing cost of the measured rows (see the module doc)."""
    full = [r for r in rows if r["kind"] == GROUPED_GEMM_KIND]
    if not full:
        raise UserError("--from: no grouped_gemm rows to fit a grouped GEMM curve on")
    active = [r for r in rows if r["kind"] == ACTIVE_KIND]
    measured = {canonical_dtype(r.get("dtype", "bf16")) for r in full}
    for row in active:
        dtype = canonical_dtype(row.get("dtype", "bf16"))
        if dtype not in measured:
            where = f"--from {row['_source']} line {row['_line']}" if "_line" in row else "--from"
            raise UserError(
                f"{where}: {ACTIVE_KIND} row has dtype {dtype!r}, but no {GROUPED_GEMM_KIND} row "
                f"does (they have {', '.join(sorted(measured))}); its call latency is fitted "
                "against their curve"
            )
    latency = fit_latency(full, active, gpu)
    return GroupedGemmCurve(_curves(full, gpu, latency), source, fit_routing(rows), latency)


def _routing_terms(row: Mapping[str, Any]) -> list[float]:
    return [1.0, float(row["rows"]) * row["hidden"], float(row["tokens"]) * row["experts"]]


def fit_routing(rows: Sequence[Mapping[str, Any]]) -> RoutingCost | None:
    """``RoutingCost`` of the ``moe_routing`` rows (None without any): non-negative least
    squares on relative errors, so short and long rows weigh alike."""
    from scipy.optimize import nnls

    timed = [r for r in rows if r["kind"] == ROUTING_KIND]
    if not timed:
        return None
    a = np.array([_routing_terms(r) for r in timed]) / np.array([[r["ms"]] for r in timed])
    scale = a.max(axis=0)  # columns of one size keep nnls well conditioned
    coef, _ = nnls(a / scale, np.ones(len(timed)))
    latency, per_element, per_logit = (coef / scale * 1e-3).tolist()
    return RoutingCost(
        float(f"{latency:.6g}"), float(f"{per_element:.6g}"), float(f"{per_logit:.6g}")
    )


def predicted_ms(curve: GroupedGemmCurve, row: Mapping[str, Any], gpu: GpuSpec) -> float:
    """The curve's time (ms) of the grouped GEMM of a ``grouped_gemm*`` row."""
    dtype = row.get("dtype", "bf16")
    time_s = expert_gemm_s(curve, dtype, _peak(row, gpu), _flops(row), row["rows"], row["experts"])
    if time_s is None:
        raise UserError(f"grouped GEMM curve has no {dtype!r} entry")
    return time_s * 1e3


def routing_predicted_ms(routing: RoutingCost, row: Mapping[str, Any]) -> float:
    """The routing cost (ms) of one ``moe_routing`` row."""
    return 1e3 * routing.time_s(row["rows"], row["hidden"], row["tokens"], row["experts"])


def fit_errors(curve: GroupedGemmCurve, rows: Sequence[Mapping[str, Any]], gpu) -> dict:
    """Median and worst |error| (%) of the fit on its own rows, per row kind."""
    errors: dict[str, list[float]] = {}
    for row in rows:
        if row["kind"] in (GROUPED_GEMM_KIND, ACTIVE_KIND):
            pred = predicted_ms(curve, row, gpu)
        elif row["kind"] == ROUTING_KIND and curve.routing is not None:
            pred = routing_predicted_ms(curve.routing, row)
        else:
            continue
        errors.setdefault(row["kind"], []).append(abs(pred / row["ms"] - 1.0) * 100.0)
    return {
        kind: {"n": len(v), "median_abs_pct": float(np.median(v)), "max_abs_pct": float(max(v))}
        for kind, v in errors.items()
    }


#: Fields of ``env`` rows that say where and with what the rows were measured.
ENV_KEYS = ("gpu", "sms", "driver", "torch", "cuda", "measured_utc", "grouped_mm", "python")


def describe_source(rows: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> str:
    """The ``source`` text of a fitted curve: files, row counts, device and software."""
    counts = {k: sum(r["kind"] == k for r in rows) for k in FITTED_KINDS}
    models = sorted({r["model"] for r in rows if r["kind"] == GROUPED_GEMM_KIND})
    envs = [r for r in rows if r["kind"] == "env"]
    devices = "; ".join(
        ", ".join(f"{k} {e[k]}" for k in ENV_KEYS if e.get(k) is not None) for e in envs
    )
    return (
        f"servesim calibrate --from {', '.join(sources)}: "
        f"{counts[GROUPED_GEMM_KIND]} grouped_gemm rows (bf16 expert shapes of "
        f"{', '.join(models)}; 1-4096 tokens per expert), {counts[ACTIVE_KIND]} "
        f"grouped_gemm_active rows, {counts[ROUTING_KIND]} moe_routing rows, timed as CUDA "
        f"graph replays; measured with {devices or 'unknown device'}"
    )


def curve_document(
    rows: Sequence[Mapping[str, Any]], sources: Sequence[str], gpu: GpuSpec, note: str = ""
) -> dict:
    """The YAML document of the curve fitted to ``rows``: metadata and the section."""
    import datetime as dt

    from simulator.costmodel.moe import SECTION

    curve = fit_curve(rows, gpu, describe_source(rows, sources))
    envs = [{k: e[k] for k in ENV_KEYS if k in e} for e in rows if e["kind"] == "env"]
    metadata = {
        "format": "servesim-moe-grouped-gemm/1",
        "written_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "note": note,
        "sources": list(sources),
        "gpu": gpu.name,
        "peak_flops_bf16": gpu.flops_for("bf16"),
        "measured_with": envs,
        "error_fitted_rows": fit_errors(curve, rows, gpu),
    }
    return {"metadata": metadata, SECTION: curve.to_section()}
