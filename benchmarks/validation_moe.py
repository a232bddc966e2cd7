"""Validation section M: graphed MoE steps priced with the grouped expert GEMM curve.

The curve (``hardware_specs/calibration/<gpu>-moe.yaml``) is fitted on kernel rows only:
grouped GEMMs, grouped GEMMs with a few active experts, and the routing of one layer. The
MoE steps and MoE blocks of the same measurement files are never fitted: they are judged
here with the GPU's reference calibration (``<gpu>.yaml``), once with the curve and once
without it (expert GEMMs at dense-GEMM efficiency, as before the curve existed).

Measured on an H100 SXM and an H200. Steps are Qwen3-30B-A3B-shaped (24 of 48 layers, 128
experts of 768, top-8) and Mixtral-8x7B-shaped (8 of 32 layers, 8 experts of 14336, top-2),
bf16, CUDA graphs, uniform routing, LM head included; the cost model prices the same layers
and LM head.

    python benchmarks/validation_moe.py        # prints the section's summary
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable

from validation_rows import CALIBRATION, FIT, HELD_OUT, Row

from simulator.calibrate.moe_fit import (
    ACTIVE_KIND,
    GROUPED_GEMM_KIND,
    ROUTING_KIND,
    predicted_ms,
    routing_predicted_ms,
)
from simulator.costmodel import CostConfig, CostModel, CostParams, StepShape
from simulator.costmodel.calibration import load_rows, row_shape
from simulator.costmodel.moe import GroupedGemmCurve, load_curve
from simulator.specs.catalog import load_gpu, load_model

MEASUREMENTS = CALIBRATION / "measurements"
#: Measurement files per GPU: the first was fitted (its kernel rows), the others are
#: repeats held out whole (H100: the same lease two minutes later, two fresh leases; H200:
#: the same lease two minutes later).
MOE_FILES = {
    "h100-sxm": (
        "h100-sxm-moe.jsonl",
        "h100-sxm-moe-run2.jsonl",
        "h100-sxm-moe-run3.jsonl",
        "h100-sxm-moe-run4.jsonl",
    ),
    "h200": ("h200-moe.jsonl", "h200-moe-run2.jsonl"),
}
STEP_KINDS = ("moe_decode", "moe_prefill")
SECTION = "M. MoE steps: reference calibration + grouped expert GEMM curve (kernels fitted)"
SECTION_DENSE = "M0. The same MoE steps with expert GEMMs at dense-GEMM efficiency (no curve)"
#: Metric suffix of the rows priced without the curve (kept apart in the summaries).
DENSE = ", dense experts"
#: Model shapes of the measured steps.
MODELS = ("qwen3-30b-a3b", "mixtral-8x7b")
#: Acceptance bounds of the MoE step checks: median |error| (%) per (GPU, model shape).
TARGETS_PCT = {
    ("h100-sxm", "qwen3-30b-a3b"): 20.0,
    ("h100-sxm", "mixtral-8x7b"): 10.0,
    ("h200", "qwen3-30b-a3b"): 20.0,
}
#: The sections as own device measurements in the summary (keyed by their first two
#: characters, as ``validation_steps.DEVICE_SECTIONS``).
DEVICE_SECTIONS = {"M.": "MoE steps, grouped GEMM curve", "M0": "MoE steps, dense experts"}
NOTES = {
    SECTION: "curve, call latency and routing fitted per GPU on the kernel rows of "
    "h100-sxm-moe.jsonl and h200-moe.jsonl only (marked fit); every step and MoE block held "
    "out; the -runN files are repeats",
    SECTION_DENSE: "before the curve: the reference calibration alone",
}


#: Ops of the cost model that make up the MoE block timed by ``moe_layer`` rows.
BLOCK_OPS = ("router", "experts_gate_up", "experts_down", "activation")


def _label(row: dict) -> str:
    if row["kind"] == "moe_decode":
        return f"decode {row['batch']}x{row['context']}"
    if row["kind"] == "moe_layer":
        return f"MoE block, {row['tokens']} tokens"
    return f"prefill {row['batch']}x{row['seq']}"


def _cost_model(row: dict, gpu: str, params, curve, lm_head: bool) -> CostModel:
    return CostModel(
        CostConfig(
            load_model(row["model"]),
            load_gpu(gpu),
            params=params,
            moe_grouped_gemm=curve,
            layers=row["layers"],
            lm_head=lm_head,
        )
    )


def step_ms(row: dict, gpu: str, params: CostParams, curve: GroupedGemmCurve | None) -> float:
    """Predicted time (ms) of a ``moe_decode``/``moe_prefill`` row: its layers + LM head."""
    model = _cost_model(row, gpu, params, curve, row.get("lm_head", True))
    return model.step_time_s(row_shape({**row, "kind": row["kind"].removeprefix("moe_")})) * 1e3


def block_ms(row: dict, gpu: str, params: CostParams, curve: GroupedGemmCurve | None) -> float:
    """Predicted time (ms) of one layer's MoE block of a ``moe_layer`` row: router, expert
    GEMMs (with the routing when the curve prices it) and activation."""
    model = _cost_model(row, gpu, params, curve, False)
    shape = StepShape.uniform(prefill_count=1, prefill_new=row["tokens"])
    ops = model.price(shape).ops
    return sum(op.time_s for op in ops if op.name in BLOCK_OPS) / row["layers"] * 1e3


def _kernel_rows(rows: Iterable[dict], gpu: str, curve: GroupedGemmCurve, name: str) -> list[Row]:
    spec = load_gpu(gpu)
    out = []
    for r in rows:
        if r["kind"] in (GROUPED_GEMM_KIND, ACTIVE_KIND):
            pred, metric = predicted_ms(curve, r, spec), "grouped GEMM kernel"
            config = f"{r['model']} {r['op']} {r['experts']}x{r['tokens_per_expert']} rows"
        elif r["kind"] == ROUTING_KIND and curve.routing is not None:
            pred, metric = routing_predicted_ms(curve.routing, r), "MoE routing kernels"
            config = f"{r['model']} routing {r['tokens']} tokens"
        else:
            continue
        out.append(Row(SECTION, f"{gpu} {name} {config}", metric, "ms", r["ms"], pred, FIT))
    return out


def moe_section() -> list[Row]:
    """Rows of sections M (with the curve) and M0 (without), for every shipped MoE file."""
    rows: list[Row] = []
    for gpu, files in MOE_FILES.items():
        params = CostParams.from_file(CALIBRATION / f"{gpu}.yaml")
        curve = load_curve(CALIBRATION / f"{gpu}-moe.yaml")
        if curve is None:
            continue
        for i, name in enumerate(files):
            data = load_rows(MEASUREMENTS / name)
            if i == 0:
                rows += _kernel_rows(data, gpu, curve, name)
            for r in data:
                if r["kind"] not in (*STEP_KINDS, "moe_layer"):
                    continue
                config = f"{gpu} {name} {r['model']} ({r['layers']} layers) {_label(r)}"
                for section, c, suffix in ((SECTION, curve, ""), (SECTION_DENSE, None, DENSE)):
                    if r["kind"] == "moe_layer":
                        pred, metric = block_ms(r, gpu, params, c), "MoE block time"
                    else:
                        pred, metric = step_ms(r, gpu, params, c), "MoE step time"
                    row = Row(section, config, metric + suffix, "ms", r["ms"], pred, HELD_OUT)
                    rows.append(row)
    return rows


def errors(rows: list[Row], metric: str = "MoE step time") -> dict[tuple, list[float]]:
    """|error| (%) of held-out rows of ``metric`` per (section, GPU, model, measurement file)."""
    out: dict[tuple, list[float]] = {}
    for r in rows:
        if r.metric.removesuffix(DENSE) == metric:
            model = next(m for m in MODELS if m in r.config)
            gpu, file = r.config.split()[:2]
            out.setdefault((r.section, gpu, model, file), []).append(abs(r.error_pct))
    return out


def acceptance(rows: list[Row]) -> dict[tuple[str, str, str], float]:
    """Median |error| (%) of the MoE steps of each GPU's fitted file per (section, GPU, model)."""
    return {
        (section, gpu, model): statistics.median(v)
        for (section, gpu, model, file), v in errors(rows).items()
        if "-run" not in file
    }


def main() -> int:
    rows = moe_section()
    for metric in ("MoE step time", "MoE block time"):
        for (section, gpu, model, file), v in sorted(errors(rows, metric).items()):
            bound = TARGETS_PCT.get((gpu, model))
            target = f"(target {bound} %)" if metric == "MoE step time" and bound else ""
            print(
                f"{section[:3]:<4}{metric:<15} {file:<25}{model:<15} n={len(v):<3} "
                f"median {statistics.median(v):5.1f} %  worst {max(v):5.1f} %  {target}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
