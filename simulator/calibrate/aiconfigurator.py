"""``servesim calibrate --from-aiconfigurator``: an engine calibration from AIConfigurator's
measured kernel tables (``aiconfigurator_tables.py`` reads them).

For one system (GPU), engine and engine version this fits, from the measured latencies:

* ``gemm.<dtype>``: GEMM FLOP efficiency on a grid over (tokens, n, k), nodes at powers
  of two (tokens 1-32768, n and k 128-16384 and 65536). The per-tensor ``fp8`` rows time
  the engine's FP8 linear layer as called with a bf16 input, so they include the runtime
  quantisation of the activation: a scale (amax) kernel and a cast kernel. With the
  checkpoint's static activation scale there is no scale kernel: ``fp8_static`` is each
  fp8 row less the scale kernel, and ``fp8_input`` less the cast kernel too (the kernel
  before the GEMM emits FP8), both as measured at the row's (m, k) in the same collection
  (``quantize/<engine>/<version>``: compute-scale and scale-matrix tables; AIConfigurator
  prices ``GEMMQuantMode.fp8_static`` as the latter for every GEMM);
* ``attention_prefill.<kv dtype>``: causal attention FLOP efficiency over (tokens per
  sequence, sequences × heads, head dim);
* ``attention_decode.<kv dtype>``: KV-read bandwidth efficiency over (KV tokens per
  sequence × head dim / 128, sequences, KV heads, query heads per KV head);
* ``moe_grouped_gemm.<dtype>``: fused-MoE FLOP efficiency by tokens per expert, and
  ``moe_grouped_gemm_grid.<dtype>`` the same by tokens per expert, expert weights per GPU
  and local experts (expert size and count change it by up to 2x at equal tokens);
* ``allreduce``: latency of the engine's custom all-reduce by message bytes and GPUs
  (its small-message latency and large-message bus bandwidth in the metadata);
* ``nccl``: latency of NCCL's all-gather, reduce-scatter, all-reduce and all-to-all by
  message bytes (the whole result of a gather) and GPUs, half precision, from the system's
  NCCL table (the version its system spec names), inside one node.

Split: every table is fitted on three quarters of its shapes and judged on the rest: a
row is held out when the CRC-32 of its shape key is divisible by 4 (key: ``n×k`` for a
GEMM; batch, length, heads, KV heads and head dim for attention; hidden, intermediate,
top-k, experts, TP and EP for MoE; GPUs and bytes for all-reduce). Efficiencies are of
the catalog GPU's datasheet peaks, the same numbers the cost model divides by. Where one
format was measured with several kernels, each GEMM shape and each MoE layout keeps the
kernel measured most on it (engines dispatch by shape and layout), and each attention table
the one with the most measured rows (its others are alternative backends on the same
shapes); MoE rows use the power-law routing (exponent 1.01) that
AIConfigurator itself assumes for serving, so their time includes real routing
imbalance, and layouts of at most 8 GPUs (tensor × expert parallel inside one node).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from simulator.calibrate.aiconfigurator_tables import Table
from simulator.costmodel.costs import gemm_dtype
from simulator.costmodel.gemm import FP8_INPUT as FP8_INPUT_GRID
from simulator.costmodel.gemm import STATIC_FP8 as FP8_STATIC_GRID
from simulator.costmodel.layers import compute_dtype
from simulator.costmodel.loggrid import LogGrid, fit_log_grid
from simulator.specs.gpu import GpuSpec

#: Table dtype names -> servesim weight formats.
GEMM_DTYPES = {
    "bfloat16": "bf16",
    "fp8": "fp8",
    # derived from the fp8 rows (``static_fp8_rows``), not table dtypes of their own
    FP8_STATIC_GRID: FP8_STATIC_GRID,
    FP8_INPUT_GRID: FP8_INPUT_GRID,
    "fp8_block": "fp8_block",
    "nvfp4": "fp4",
    "int4_wo": "int4",
}
#: Per-tensor FP8 with static activation scales: the linear layer casting its bf16 input
#: (``fp8_static``), or fed FP8 by the kernel before it (``fp8_input``).
STATIC_FP8 = (FP8_STATIC_GRID, FP8_INPUT_GRID)
MOE_DTYPES = {
    **{raw: dtype for raw, dtype in GEMM_DTYPES.items() if raw not in STATIC_FP8},
    "w4a16_mxfp4": "mxfp4",
    "w4a8_mxfp4_mxfp8": "mxfp4",
}
KV_DTYPES = {"bfloat16": "bf16", "fp8": "fp8"}
#: Grid nodes.
POW2_TOKENS = tuple(2.0**i for i in range(16))
POW2_DIMS = (*(2.0**i for i in range(7, 15)), 65536.0)
PREFILL_AXES = (
    tuple(2.0**i for i in range(15)),
    tuple(2.0**i for i in range(16)),
    (64.0, 128.0, 256.0),
)
DECODE_AXES = (
    tuple(2.0**i for i in range(0, 19, 2)),
    tuple(2.0**i for i in range(0, 12, 2)),
    tuple(2.0**i for i in range(7)),
    (1.0, 2.0, 16.0),
)
MOE_TOKENS = tuple(2.0**i for i in range(-6, 14))
#: The grid's coarser tokens axis (factor 4: as accurate on held-out shapes, a quarter of
#: the nodes).
MOE_GRID_TOKENS = tuple(2.0**i for i in range(-6, 14, 2))
#: Token routing of the MoE rows: a power law with exponent 1.01, AIConfigurator's own
#: default for estimating serving (sdk/config.py ``workload_distribution = "power_law"``,
#: sdk/models/deepseek.py ``_power_law_alpha = 1.01``), so the measured time carries the
#: imbalance of real routing, the busiest expert and rank included.
ROUTING = "power_law_1.01"
#: MoE layouts fitted: tensor × expert parallel within one 8-GPU node (wide expert
#: parallelism over nodes runs other kernels and all-to-all libraries).
MOE_MAX_GPUS = 8
#: Expert weights per GPU (elements of gate, up and down) and local experts per GPU.
MOE_WEIGHTS = tuple(2.0**i for i in range(18, 30, 2))
MOE_EXPERTS = tuple(2.0**i for i in range(10))
#: All-reduce message bytes and GPU counts.
ALLREDUCE_AXES = (tuple(2.0**i for i in range(8, 32, 2)), (2.0, 4.0, 8.0))
#: NCCL collectives kept, and their message bytes (2^9 to 2^31) and GPU counts.
NCCL_OPS = ("all_gather", "reduce_scatter", "all_reduce", "alltoall")
NCCL_AXES = (tuple(2.0**i for i in range(9, 32, 2)), (2.0, 4.0, 8.0))
#: Kernel sources that implement another layer than the one priced (plain up/down MLPs,
#: latency-only variants).
SKIPPED_SOURCES = ("nongated", "min_latency")


def held_out(keys: Sequence[str]) -> np.ndarray:
    """The deterministic split: True where CRC-32 of the key is divisible by 4."""
    return np.array([zlib.crc32(k.encode()) % 4 == 0 for k in keys], dtype=bool)


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return ["/".join(str(v) for v in row) for row in frame[list(columns)].itertuples(index=False)]


def error_stats(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """n, median, 90th percentile and worst |predicted / measured - 1| (%)."""
    err = np.abs(np.asarray(predicted) / np.asarray(measured) - 1.0) * 100.0
    if len(err) == 0:
        return {"n": 0}
    return {
        "n": len(err),
        "median_abs_pct": round(float(np.median(err)), 2),
        "p90_abs_pct": round(float(np.percentile(err, 90)), 2),
        "max_abs_pct": round(float(err.max()), 2),
    }


def _most_rows(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of the combination of ``columns`` values with the most measurements."""
    if frame.empty:
        return frame
    best = frame.groupby(list(columns)).size().idxmax()
    best = best if isinstance(best, tuple) else (best,)
    mask = np.ones(len(frame), dtype=bool)
    for column, value in zip(columns, best, strict=True):
        mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def _fit(
    names: Sequence[str],
    axes: Sequence[Sequence[float]],
    frame: pd.DataFrame,
    coords: Callable[[pd.DataFrame], list[np.ndarray]],
    keys: Sequence[str],
) -> tuple[LogGrid, dict]:
    """Fit ``frame.eff`` on the kept rows; errors of time on kept and held-out rows."""
    out = held_out(_keys(frame, keys))
    kept, test = frame[~out], frame[out]
    grid = fit_log_grid(names, axes, coords(kept), kept["eff"].to_numpy())
    report = {
        "fitted": error_stats(kept["eff"], grid.many(*coords(kept))),
        "held_out": error_stats(test["eff"], grid.many(*coords(test))),
    }
    return grid, report


# --- GEMM -------------------------------------------------------------------------------------
def peak_for(dtype: str, gpu: GpuSpec) -> float:
    """The peak FLOP/s the cost model divides a ``dtype`` GEMM by on ``gpu``."""
    return gpu.flops_for(gemm_dtype(dtype, compute_dtype(dtype, "bf16"), gpu))


def kernel_per_shape(rows: pd.DataFrame) -> pd.DataFrame:
    """GEMM rows, each shape (m, n, k) from the kernel with the most measured rows among
    those timed on it: an engine dispatches a format's GEMM by shape (vLLM's block-scaled
    FP8: FlashInfer for few tokens, DeepGEMM above, CUTLASS where DeepGEMM does not apply),
    so its tables hold several kernels that each cover part of the shapes."""
    if rows.empty:
        return rows
    total = rows.kernel_source.map(rows.kernel_source.value_counts())
    ranked = rows.assign(_total=total).sort_values("_total", ascending=False, kind="stable")
    best = ranked.drop_duplicates(["m", "n", "k"])[["m", "n", "k", "kernel_source"]]
    return rows.merge(best, on=["m", "n", "k", "kernel_source"])


def static_fp8_rows(
    fp8: pd.DataFrame, compute_scale: Table, scale_matrix: Table, cast: bool
) -> pd.DataFrame:
    """Per-tensor FP8 GEMM rows without runtime scale computation: each row's latency less
    the scale (amax) kernel measured at its (m, k) in the same collection, and less the cast
    kernel too where ``cast`` is False (the activation arrives in FP8). Rows whose (m, k)
    either table lacks, or whose remainder is under a fifth of the measured time (noise),
    are dropped."""
    parts = []
    for table, name in ((compute_scale, "scale_ms"), (scale_matrix, "cast_ms")):
        q = table.frame[table.frame.quant_dtype == "fp8"]
        q = q.groupby(["m", "k"], as_index=False).latency.median()
        parts.append(q.rename(columns={"latency": name}))
    rows = fp8.merge(parts[0], on=["m", "k"]).merge(parts[1], on=["m", "k"])
    saved = rows.scale_ms + (0.0 if cast else rows.cast_ms)
    rows = rows.assign(latency=rows.latency - saved)
    return rows[rows.latency > 0.2 * (rows.latency + saved)]


def fit_gemm(
    table: Table, gpu: GpuSpec, quantize: tuple[Table | None, Table | None] = (None, None)
) -> tuple[dict[str, LogGrid], dict]:
    """GEMM efficiency grids per format; with the quantisation tables of the same collection
    (``quantize``: compute-scale, scale-matrix) also ``fp8_static``, per-tensor FP8 whose
    activations arrive already quantised with the checkpoint's static scale."""
    grids, report = {}, {}
    frame = table.frame[(table.frame.n >= 128) & (table.frame.k >= 128)]
    for raw, dtype in GEMM_DTYPES.items():
        derived = raw in STATIC_FP8
        rows = kernel_per_shape(frame[frame.gemm_dtype == ("fp8" if derived else raw)])
        if derived:
            if rows.empty or None in quantize:
                continue
            rows = static_fp8_rows(rows, *quantize, cast=raw == FP8_STATIC_GRID)
        if rows.empty:
            continue
        flops = 2.0 * rows.m * rows.n * rows.k
        rows = rows.assign(
            eff=flops / (rows.latency * 1e-3) / peak_for("fp8" if derived else dtype, gpu)
        )
        grid, stats = _fit(
            ("tokens", "n", "k"),
            (POW2_TOKENS, POW2_DIMS, POW2_DIMS),
            rows,
            lambda f: [f.m.to_numpy(), f.n.to_numpy(), f.k.to_numpy()],
            ("n", "k"),
        )
        grids[dtype] = grid
        report[dtype] = {
            "kernel": ", ".join(sorted(map(str, rows.kernel_source.unique()))),
            **stats,
        }
    return grids, report


# --- attention --------------------------------------------------------------------------------
def _attention_rows(frame: pd.DataFrame, kv_raw: str) -> pd.DataFrame:
    rows = frame[frame.kv_cache_dtype == kv_raw]
    if "window_size" in rows:  # full attention only (older tables hold no windowed rows)
        rows = rows[rows.window_size == 0]
    return _most_rows(rows, ["kernel_source", "attn_dtype"])


def fit_prefill(table: Table, gpu: GpuSpec) -> tuple[dict[str, LogGrid], dict]:
    grids, report = {}, {}
    peak = gpu.flops_for("bf16")
    for raw, kv in KV_DTYPES.items():
        rows = _attention_rows(table.frame, raw)
        if rows.empty:
            continue
        pairs = rows.isl * (rows.isl + 1) / 2.0
        flops = rows.batch_size * rows.num_heads * 4.0 * rows.head_dim * pairs
        rows = rows.assign(eff=flops / (rows.latency * 1e-3) / peak)
        grid, stats = _fit(
            ("tokens_per_seq", "seqs_x_heads", "head_dim"),
            PREFILL_AXES,
            rows,
            lambda f: [
                f.isl.to_numpy(),
                (f.batch_size * f.num_heads).to_numpy(),
                f.head_dim.to_numpy(),
            ],
            ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"),
        )
        grids[kv] = grid
        report[kv] = {"kernel": str(rows.kernel_source.iloc[0]), **stats}
    return grids, report


def fit_decode(table: Table, gpu: GpuSpec) -> tuple[dict[str, LogGrid], dict]:
    grids, report = {}, {}
    frame = table.frame[table.frame.num_heads <= 16 * table.frame.num_key_value_heads]
    for raw, kv in KV_DTYPES.items():
        rows = _attention_rows(frame, raw)
        if rows.empty:
            continue
        kv_tokens = rows.step + rows.isl
        nbytes = rows.batch_size * kv_tokens * 2.0 * rows.num_key_value_heads * rows.head_dim
        nbytes = nbytes * (2.0 if kv == "bf16" else 1.0)
        rows = rows.assign(
            eff=nbytes / (rows.latency * 1e-3) / gpu.memory_bw_bytes_per_s,
            kv_x=kv_tokens * rows.head_dim / 128.0,
            group=rows.num_heads / rows.num_key_value_heads,
        )
        grid, stats = _fit(
            ("kv_tokens_per_seq", "seqs", "kv_heads", "group"),
            DECODE_AXES,
            rows,
            lambda f: [
                f.kv_x.to_numpy(),
                f.batch_size.to_numpy(),
                f.num_key_value_heads.to_numpy(),
                f.group.to_numpy(),
            ],
            ("batch_size", "step", "num_heads", "num_key_value_heads", "head_dim"),
        )
        grids[kv] = grid
        report[kv] = {"kernel": str(rows.kernel_source.iloc[0]), **stats}
    return grids, report


# --- MoE --------------------------------------------------------------------------------------
def moe_dtype_rows(frame: pd.DataFrame, dtype: str) -> pd.DataFrame:
    """MoE rows of ``dtype`` within one node, from the kernels the import keeps."""
    raws = [raw for raw, d in MOE_DTYPES.items() if d == dtype]
    within_node = frame.moe_tp_size * frame.moe_ep_size <= MOE_MAX_GPUS
    rows = frame[frame.moe_dtype.isin(raws) & within_node]
    return rows[~rows.kernel_source.str.contains("|".join(SKIPPED_SOURCES))]


#: What makes one MoE layout: expert shape, top-k, experts, tensor × expert parallel.
MOE_LAYOUT = ("hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size")


def moe_layout_kernels(rows: pd.DataFrame) -> pd.DataFrame:
    """For each layout, the rows of the kernel (and table dtype) measured most on it: an
    engine picks its MoE backend by layout (vLLM: Triton under tensor parallelism,
    FlashInfer-CUTLASS under expert parallelism), so one kernel per dtype would drop the
    layouts only the other was measured on."""
    if rows.empty:
        return rows
    counts = rows.groupby([*MOE_LAYOUT, "kernel_source", "moe_dtype"]).size()
    best = counts.reset_index(name="n").sort_values(
        [*MOE_LAYOUT, "n", "kernel_source", "moe_dtype"], ascending=[True] * 6 + [False, True, True]
    )
    best = best.drop_duplicates(list(MOE_LAYOUT))[[*MOE_LAYOUT, "kernel_source", "moe_dtype"]]
    return rows.merge(best, on=[*MOE_LAYOUT, "kernel_source", "moe_dtype"])


def _moe_rows(frame: pd.DataFrame, dtype: str) -> pd.DataFrame:
    rows = moe_dtype_rows(frame, dtype)
    if rows.empty:
        return rows
    dists = set(rows.distribution)
    mild = ROUTING if ROUTING in dists else "balanced" if "balanced" in dists else min(dists)
    return moe_layout_kernels(rows[rows.distribution == mild])


def fit_moe(table: Table, gpu: GpuSpec) -> tuple[dict[str, LogGrid], dict[str, LogGrid], dict]:
    """Per dtype: the efficiency curve by tokens per expert (the ``moe_grouped_gemm``
    section) and the grid by tokens per expert, expert weights per GPU and local experts
    (``moe_grouped_gemm_grid``), which separates expert sizes and counts."""
    curves, grids, report = {}, {}, {}
    keys = ("hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size")
    for dtype in dict.fromkeys(MOE_DTYPES.values()):
        rows = _moe_rows(table.frame, dtype)
        if rows.empty:
            continue
        local_rows = rows.num_tokens * rows.topk / rows.moe_ep_size
        weights = 3.0 * rows.hidden_size * rows.inter_size / rows.moe_tp_size
        rows = rows.assign(
            eff=2.0 * local_rows * weights / (rows.latency * 1e-3) / peak_for(dtype, gpu),
            tpe=rows.num_tokens * rows.topk / rows.num_experts,
            weights=weights,
            local=rows.num_experts / rows.moe_ep_size,
        )
        curves[dtype], by_tokens = _fit(
            ("tokens_per_expert",), (MOE_TOKENS,), rows, lambda f: [f.tpe.to_numpy()], keys
        )
        grids[dtype], stats = _fit(
            ("tokens_per_expert", "expert_weights", "local_experts"),
            (MOE_GRID_TOKENS, MOE_WEIGHTS, MOE_EXPERTS),
            rows,
            lambda f: [f.tpe.to_numpy(), f.weights.to_numpy(), f.local.to_numpy()],
            keys,
        )
        kernel = (
            f"{rows.kernel_source.iloc[0]} ({rows.moe_dtype.iloc[0]}, {rows.distribution.iloc[0]})"
        )
        report[dtype] = {"kernel": kernel, **stats, "by_tokens_per_expert_only": by_tokens}
    return curves, grids, report


# --- all-reduce -------------------------------------------------------------------------------
def fit_allreduce(table: Table) -> tuple[LogGrid, dict]:
    """Latency (s) of the engine's custom all-reduce by message bytes and GPUs (graphed
    kernels where both were measured)."""
    frame = table.frame
    graph = frame[frame.kernel_source.str.contains("graph", case=False)]
    rows = _most_rows(graph if not graph.empty else frame, ["kernel_source"])
    bytes_per = rows.allreduce_dtype.map({"bfloat16": 2.0, "float16": 2.0}).fillna(2.0)
    rows = rows.assign(nbytes=rows.message_size * bytes_per, eff=rows.latency * 1e-3)
    grid, stats = _fit(
        ("bytes", "gpus"),
        ALLREDUCE_AXES,
        rows,
        lambda f: [f.nbytes.to_numpy(), f.num_gpus.to_numpy()],
        ("num_gpus", "message_size"),
    )
    headline = {}
    for n in (2, 4, 8):
        small, large = grid(1024.0, n), grid(2.0**28, n)
        headline[f"tp{n}"] = {
            "latency_1kib_us": round(small * 1e6, 2),
            "busbw_256mib_gb_s": round(2.0 * (n - 1) / n * 2.0**28 / large / 1e9, 1),
        }
    return grid, {"kernel": str(rows.kernel_source.iloc[0]), **stats, "summary": headline}


def fit_nccl(table: Table) -> tuple[dict[str, LogGrid], dict]:
    """Latency (s) of each NCCL collective by message bytes and GPUs, half precision (the
    table's ``message_size`` counts elements), inside one node."""
    frame = table.frame[(table.frame.nccl_dtype == "half") & (table.frame.num_gpus <= 8)]
    grids, report = {}, {}
    for op in NCCL_OPS:
        rows = frame[frame.op_name == op]
        if rows.empty:
            continue
        # repeated sizes are averaged (the table holds two runs of some)
        rows = rows.groupby(["num_gpus", "message_size"], as_index=False).latency.mean()
        rows = rows.assign(nbytes=rows.message_size * 2.0, eff=rows.latency * 1e-3)
        grids[op], report[op] = _fit(
            ("bytes", "gpus"),
            NCCL_AXES,
            rows,
            lambda f: [f.nbytes.to_numpy(), f.num_gpus.to_numpy()],
            ("num_gpus", "message_size"),
        )
    return grids, report
