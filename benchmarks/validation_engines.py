"""Validation section of the engines' published offline throughput (``benchmarks/data``):
TensorRT-LLM perf-overview tables of a 2024 release and of current ones, and MoE per-GPU
rows, each simulated as ``benchmarks/engine_rows.py`` writes it (the ``trtllm`` profile,
fixed lengths, offline arrivals). Every row is held out."""

from __future__ import annotations

import engine_rows
import numpy as np
from validation_rows import HELD_OUT, Missing, Row

SECTION = "K. TensorRT-LLM perf overview and MoE serving (benchmarks/data)"
NOTE = (
    "Published offline output throughput (trtllm-bench, NVIDIA's perf-overview pages; MoE "
    "per-GPU pages), whole system; each row is the scenario a user would write "
    "(`benchmarks/engine_rows.py`: engine.profile trtllm, weight and KV dtype, fixed input "
    "and output lengths, every request queued at t = 0, the publisher's request count, and "
    "the max_batch_size and max_num_tokens trtllm-bench derived for the run, per "
    "attention-data-parallel rank: `benchmarks/engine_rows_limits.py`; MoE rows of the 1.0 "
    "page run attention data-parallel with expert parallelism, as its MoE command does; "
    "1.0 and later rows run without chunked context, the PyTorch flow's default, 0.14 rows "
    "with it, as trtllm-bench of the TensorRT engine flow ran), "
    "priced with the newest shipped TensorRT-LLM kernel calibration of the GPU (1.3.0rc20 "
    "on Hopper and Blackwell, 1.0.0 on A100; the A100 PCIe has none and falls back to the "
    "datasheet defaults, its NVLink bridges joining pairs of cards and PCIe the rest). The "
    "2024 release (0.14) ran older kernels than those measured: "
    "it is judged by ratios between configurations that differ in one thing, below. "
    "Held out: nothing in servesim is fitted to these rows. Fixed lengths with every "
    "request at t = 0 run in waves of as many requests as the KV cache holds, so near a "
    "wave's edge a few per cent of KV room moves a row by up to a fifth (1.0 Qwen3-235B-A22B "
    "H100 128/2048: 20,435 tok/s at kv_cache_free_gpu_mem_fraction 0.90, 23,877 at 0.92). "
    "Attention-data-parallel rows with long prompts are over-predicted on both GPUs "
    "(Qwen3-235B-A22B DEP8 5000/500: H100 +18 %, H200 +32 %; 20000/2000 H200 +50 %): each "
    "rank is held to its own token budget and takes whole prompts, as the engine does, and "
    "the steps are priced within 7 % of AIConfigurator's own estimate from the same tables "
    "(`benchmarks/aiconfigurator_steps.py`); whatever else slows such prefill steps in the "
    "engine is not modelled."
)


def engines_section(quick: bool = False) -> tuple[list[Row], list[Missing], dict]:
    """Rows of every published engine measurement, refusals, and the ratio checks."""
    rows = engine_rows.load_rows()
    if quick:
        rows = [r for r in rows if (r.isl, r.osl) in engine_rows.QUICK_PAIRS]
    result = engine_rows.evaluate(rows)
    out, missing = [], []
    for r in result["rows"]:
        config = r["id"]
        if "refused" in r:
            missing.append(Missing(SECTION, config, f"refused: {r['refused']}"))
            continue
        metric = f"output tok/s (Offline, {r['release']}, {'MoE' if r['moe'] else 'dense'})"
        predicted = r["predicted_tok_s"]
        out.append(
            Row(SECTION, config, metric, "tok/s", r["published_tok_s"], predicted, HELD_OUT,
                r.get("note", ""))
        )  # fmt: skip
    return out, missing, result


def ratio_lines(result: dict) -> list[str]:
    """The 2024 release's ratio checks as a markdown table."""
    lines = [
        "",
        "Ratios between 2024-release (0.14) configurations that differ in one thing: predicted "
        "ratio / published ratio - 1.",
        "",
        "| pair kind | n | median abs error | p90 abs error | median signed error |",
        "|---|---|---|---|---|",
    ]
    for kind, s in result["ratio_groups"].items():
        if s.get("rows"):
            lines.append(
                f"| {kind} | {s['rows']} | {s['median_abs_pct']:.1f} % | "
                f"{s['p90_abs_pct']:.1f} % | {s['median_signed_pct']:+.1f} % |"
            )
    lines += [
        "",
        "| release and kind | n | median abs error | p90 abs error | median signed error |",
        "|---|---|---|---|---|",
    ]
    for group, s in result["groups"].items():
        lines.append(
            f"| {group} | {s['rows']} | {s['median_abs_pct']:.1f} % | "
            f"{s['p90_abs_pct']:.1f} % | {s['median_signed_pct']:+.1f} % |"
        )
    return lines


KERNELS_SECTION = "L. Engine kernel calibrations: held-out error per table"
#: Table sections of an engine calibration's ``metadata.errors``, as the section lists them.
KERNEL_TABLES = (
    ("gemm", "GEMM"),
    ("attention_prefill", "prefill attention"),
    ("attention_decode", "decode attention"),
    ("moe_measured", "fused MoE, measured shapes"),
    ("moe_grouped_gemm", "fused MoE grid, other shapes"),
    ("allreduce", "custom all-reduce"),
    ("nccl", "NCCL"),
)


def _cell(stats: dict) -> str:
    return f"{stats['median_abs_pct']:.1f} ({stats['p90_abs_pct']:.0f})" if stats.get("n") else ""


def _entries(section: str, errors: dict) -> list[str]:
    """``format: median (p90)`` of every table of one section (held-out rows or points)."""
    entry = errors.get(section)
    if not entry:
        return []
    if "held_out" in entry:
        return [_cell(entry["held_out"])]
    cells = []
    for name, stats in entry.items():
        if "held_out" in stats:
            cells.append(f"{name} {_cell(stats['held_out'])}")
            continue
        for routing, part in stats.items():  # measured MoE curves: per routing
            if isinstance(part, dict) and "held_out_points" in part:
                alpha = routing.rsplit("_", 1)[-1]
                cells.append(f"{name} a{alpha} {_cell(part['held_out_points'])}")
    return cells


def kernel_table_lines(engines_dir) -> list[str]:
    """The held-out error of every table of every shipped engine calibration (from each
    file's ``metadata.errors``), one line per file."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    head = " | ".join(title for _, title in KERNEL_TABLES)
    lines = [
        "",
        f"## {KERNELS_SECTION}",
        "",
        "Each engine calibration (`hardware_specs/calibration/engines`, written by `servesim "
        "calibrate --from-aiconfigurator` from AIConfigurator's measured tables) is fitted on "
        "three quarters of each table's shapes and judged on the rest; measured fused-MoE "
        "curves keep three quarters of each curve's token points and are judged on the others "
        "(aN: the power-law routing exponent). Median |error| of kernel time in %, p90 in "
        "brackets.",
        "",
        f"| engine | GPU | version | {head} |",
        "|---|---|---|" + "---|" * len(KERNEL_TABLES),
    ]
    for path in sorted(engines_dir.glob("*/*/*.yaml")):
        engine, gpu, version = path.parts[-3], path.parts[-2], path.stem
        meta = yaml.load(path.read_text(), Loader=loader)["metadata"]
        cells = [", ".join(_entries(section, meta["errors"])) for section, _ in KERNEL_TABLES]
        lines.append(f"| {engine} | {gpu} | {version} | " + " | ".join(cells) + " |")
    return lines


#: Fewest published rows that make a serving band.
MIN_BAND_ROWS = 5


def serving_bands(result: dict) -> list[dict]:
    """Held-out error of the published offline throughput of the releases the newest kernel
    calibrations price (every release after the 2024 one), per GPU and per dense or MoE
    model: the error band of an answer priced with TensorRT-LLM's kernel calibration."""
    errors: dict[tuple[str, str], list[float]] = {}
    releases: dict[tuple[str, str], set[str]] = {}
    for r in result["rows"]:
        if "refused" in r or r["source"] == engine_rows.RATIO_SOURCE:
            continue
        key = (r["gpu"], "moe" if r["moe"] else "dense")
        errors.setdefault(key, []).append(abs(r["error_pct"]))
        releases.setdefault(key, set()).add(r["release"])
    bands = []
    for (gpu, models), values in sorted(errors.items()):
        if len(values) < MIN_BAND_ROWS:
            continue
        seen = ", ".join(sorted(releases[(gpu, models)]))
        label = "MoE" if models == "moe" else "dense"
        bands.append(
            {
                "gpu": gpu,
                "engine": "trtllm",
                "models": models,
                "rows": len(values),
                "median_pct": round(float(np.median(values)), 2),
                "worst_pct": round(float(np.percentile(values, 90)), 2),
                "worst_is": "p90",
                "metric": f"output tok/s of published offline runs ({label} models, "
                f"TensorRT-LLM {seen})",
                "source": "docs/validation.md section K",
            }
        )
    return bands
