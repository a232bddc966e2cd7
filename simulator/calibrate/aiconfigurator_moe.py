"""Measured fused-MoE curves from AIConfigurator's ``moe_perf`` table (the ``moe_measured``
section of an engine calibration; format: ``costmodel/fused_moe.py``).

For every expert shape and layout the table measured (tensor × expert parallel within one
8-GPU node), under each routing AIConfigurator assumes for serving (``ROUTINGS``), the
layer's time by tokens is kept as measured, the way AIConfigurator itself reads the table.
The kernel is the one the importer's grid uses for that format (the most measured one).
Split: a point is held out when the CRC-32 of its curve and token count is divisible by 4;
held-out points are left out of the file (``null``) and the curve through the others is
judged on them (interpolation between token counts, and beyond the ends).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.calibrate.aiconfigurator import (
    MOE_DTYPES,
    error_stats,
    held_out,
    moe_dtype_rows,
    moe_layout_kernels,
)
from simulator.calibrate.aiconfigurator_tables import Table
from simulator.costmodel.fused_moe import ROUTING_DEFAULT, ROUTING_MLA, FusedMoeCurve, MoeLayout

#: Routings kept: AIConfigurator's DeepSeek-family and other-MoE power-law exponents.
ROUTINGS = (ROUTING_MLA, ROUTING_DEFAULT)
#: Significant digits of the stored microseconds.
DIGITS = 3


def _kernel_rows(frame: pd.DataFrame, dtype: str) -> pd.DataFrame:
    """Rows of ``dtype`` (every routing) within one node, each layout from the kernel
    measured most on it (``moe_layout_kernels``)."""
    return moe_layout_kernels(moe_dtype_rows(frame, dtype))


def _key(row) -> str:
    layout = MoeLayout(
        int(row.hidden_size),
        int(row.inter_size),
        int(row.topk),
        int(row.num_experts),
        int(row.moe_tp_size),
        int(row.moe_ep_size),
    )
    return layout.key


def _round(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def _curves(rows: pd.DataFrame) -> tuple[dict, list[float], list[float]]:
    """The section body of one (format, routing) and the held-out (measured, predicted)."""
    tokens = sorted({int(t) for t in rows.num_tokens})
    index = {t: i for i, t in enumerate(tokens)}
    curves: dict[str, list[float | None]] = {}
    measured: list[float] = []
    predicted: list[float] = []
    keys = [_key(r) for r in rows.itertuples(index=False)]
    rows = rows.assign(key=keys)
    for key, group in rows.groupby("key", sort=True):
        values: list[float | None] = [None] * len(tokens)
        out = held_out([f"{key}/{t}" for t in group.num_tokens])
        kept = group[~out]
        for t, ms in zip(kept.num_tokens, kept.latency, strict=True):
            values[index[int(t)]] = _round(float(ms) * 1e3)
        if kept.num_tokens.nunique() < 2:
            continue
        curves[str(key)] = values
        seconds = [v * 1e-6 if v is not None else None for v in values]
        curve = FusedMoeCurve.from_points([float(t) for t in tokens], seconds)
        for t, ms in zip(group[out].num_tokens, group[out].latency, strict=True):
            measured.append(float(ms) * 1e-3)
            predicted.append(curve.seconds(float(t)))
    return {"tokens": tokens, "curves_us": curves}, measured, predicted


def fit_moe_measured(table: Table) -> tuple[dict, dict]:
    """The ``moe_measured`` section (without its source line) and its errors per format."""
    section: dict = {}
    report: dict = {}
    for dtype in dict.fromkeys(MOE_DTYPES.values()):
        rows = _kernel_rows(table.frame, dtype)
        routings = [r for r in ROUTINGS if r in set(rows.distribution)] if len(rows) else []
        for routing in routings:
            body, measured, predicted = _curves(rows[rows.distribution == routing])
            if not body["curves_us"]:
                continue
            section.setdefault(dtype, {})[routing] = body
            kernel = f"{rows.kernel_source.iloc[0]} ({rows.moe_dtype.iloc[0]})"
            stats = error_stats(np.asarray(measured), np.asarray(predicted))
            report.setdefault(dtype, {"kernel": kernel})[routing] = {
                "curves": len(body["curves_us"]),
                "held_out_points": stats,
            }
    return section, report
