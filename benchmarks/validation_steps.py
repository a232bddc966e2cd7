"""Validation sections priced step by step: our own GPU measurements (A-D), the
Vidur per-layer GEMM times, gpt-fast decode and SGLang's DeepSeek-V3 per-node rates."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from validation_rows import (
    CALIBRATION,
    FIT,
    HELD_OUT,
    LLAMA2_7B,
    ROOT,
    Row,
    params_for,
)

from simulator.costmodel import CostConfig, CostModel, CostParams, Parallelism, Precision, StepShape
from simulator.costmodel.calibration import (
    RowResult,
    fit,
    gemm_time_s,
    load_rows,
    score,
)
from simulator.costmodel.profiles import load_profile
from simulator.specs.catalog import load_gpu, load_link, load_model
from simulator.specs.model import ModelSpec

MEASUREMENTS = ROOT / "hardware_specs" / "calibration" / "measurements"

#: Sections of our own device measurements (the held-out step-time target applies here).
DEVICE_SECTIONS = {
    "A.": "8B steps, fit on 1B",
    "B.": "shared H100 file",
    "C.": "our H100, shared fit",
    "D.": "H200, H100 fit",
}


# --- device measurements ------------------------------------------------------------------------
STEP_KINDS = ("decode", "prefill", "mixed")


def _metric(r: RowResult) -> str:
    kind = r.row["kind"]
    if r.label.startswith("eager"):
        return "step time, eager"
    if kind in STEP_KINDS:
        return "step time"
    if kind == "gemm":
        return "GEMM kernel"
    if kind.startswith("attn_"):
        return "attention kernel"
    return kind


def _device_rows(results: Iterable[RowResult], section: str, gpu: str, note: str) -> list[Row]:
    out = []
    for r in results:
        model = r.row.get("model", "")
        label = r.label if not model or model in r.label else f"{model} {r.label}"
        out.append(
            Row(
                section,
                f"{gpu} {label}",
                _metric(r),
                "ms",
                r.measured_ms,
                r.predicted_ms,
                HELD_OUT if r.held_out else FIT,
                note,
            )
        )
    return out


def _models_of(rows: list[dict]) -> dict[str, ModelSpec]:
    names = {r["model"] for r in rows if r["kind"] in (*STEP_KINDS, "attn_prefill", "attn_decode")}
    return {n: load_model(n) for n in sorted(names)}


def _scored_steps(
    measured: list[dict], params: CostParams, gpu: str, section: str, note: str
) -> list[Row]:
    """The step rows of ``measured`` priced with ``params`` on ``gpu``, all held out."""
    steps = [r for r in measured if r["kind"] in STEP_KINDS]
    results = score(
        steps, params, models=_models_of(steps), gpu=load_gpu(gpu), held_out=[True] * len(steps)
    )
    return _device_rows(results, section, gpu, note)


def device_section(shared: Path) -> list[Row]:
    """Own measurements: fit on one model's steps and the kernels, check the other model;
    cross-check the two H100 files and the two GPUs."""
    rows: list[Row] = []
    own = {gpu: load_rows(MEASUREMENTS / f"{gpu}.jsonl") for gpu in ("h100-sxm", "h200")}

    def other_model(row: dict) -> bool:
        return row["kind"] in STEP_KINDS and row.get("model") == "llama-3.1-8b"

    fits = {}
    for gpu, data in own.items():
        result = fit(data, models=_models_of(data), gpu=load_gpu(gpu), holdout=other_model)
        fits[gpu] = result
        rows += _device_rows(
            result.rows,
            "A. Own GPU measurements: fitted on Llama-3.2-1B steps + kernels, "
            "Llama-3.1-8B steps held out",
            gpu,
            "",
        )
    shared_file = shared / "calibration" / "h100_sxm_microbench.jsonl"
    if shared_file.is_file():
        shared_rows = [r for r in load_rows(shared_file) if r["kind"] in STEP_KINDS]
        params = CostParams.from_file(CALIBRATION / "h100-sxm.yaml")
        held = [True] * len(shared_rows)
        models = _models_of(shared_rows)
        results = score(shared_rows, params, models=models, gpu=load_gpu("h100-sxm"), held_out=held)
        rows += _device_rows(
            results,
            "B. Shipped h100-sxm.yaml (fitted on our H100 only) on the shared H100 file",
            "h100-sxm",
            "another H100 and another PyTorch implementation of the same steps",
        )
        shared_fit = fit(
            load_rows(shared_file),
            models=_models_of(load_rows(shared_file)),
            gpu=load_gpu("h100-sxm"),
        )
        rows += _scored_steps(
            own["h100-sxm"],
            shared_fit.params,
            "h100-sxm",
            "C. Fitted on the shared H100 file, checked on our H100 steps",
            "shared fit applied to our measurements",
        )
    rows += _scored_steps(
        own["h200"],
        CostParams.from_file(CALIBRATION / "h100-sxm.yaml"),
        "h200",
        "D. H100 calibration carried to the H200 (datasheet ratios only)",
        "h100-sxm.yaml parameters on the h200 datasheet",
    )
    return rows


# --- published step-level rows ------------------------------------------------------------------
def vidur_section() -> list[Row]:
    """Vidur per-layer GEMM times (published_benchmarks.md §9A): sum of the four linear ops."""
    rows = []
    data = {
        ("h100-sxm", "llama-2-7b", 1): {
            1: 0.156,
            128: 0.180,
            256: 0.260,
            512: 0.3285,
            1024: 0.565,
            2048: 1.080,
            4096: 2.222,
        },
        ("a100-sxm-80gb", "llama-2-7b", 1): {
            1: 0.266,
            128: 0.3515,
            512: 0.953,
            1024: 1.959,
            2048: 3.8235,
            4096: 7.3985,
        },
        ("a100-sxm-80gb", "llama-3-8b", 1): {1: 0.276, 512: 0.994, 2048: 4.183, 8192: 15.6255},
        ("h100-sxm", "llama-2-70b", 4): {1: 0.159, 256: 0.215, 1024: 0.688, 4096: 2.383},
        ("h100-sxm", "llama-2-70b", 8): {1: 0.0875, 1024: 0.332, 4096: 1.166},
    }
    for (gpu_name, model_name, tp), points in data.items():
        model = LLAMA2_7B if model_name == "llama-2-7b" else None
        if model_name == "llama-3-8b":
            model = load_model("llama-3.1-8b")  # same shapes as Llama-3-8B
        if model_name == "llama-2-70b":
            model = load_model("llama-2-70b")
        gpu = load_gpu(gpu_name)
        params, where = params_for(gpu_name, None)
        h, d = model.hidden_size, model.head_dim
        qkv_n = (model.num_attention_heads + 2 * model.num_kv_heads) * d // tp
        shapes = [
            (h, qkv_n),
            (model.num_attention_heads * d // tp, h),
            (h, 2 * model.intermediate_size // tp),
            (model.intermediate_size // tp, h),
        ]
        for tokens, measured in points.items():
            predicted_s = sum(
                gemm_time_s({"m": tokens, "k": k, "n": n}, gpu, params) for k, n in shapes
            )
            rows.append(
                Row(
                    "E. Vidur operator profiles (§9A): QKV + O + gate/up + down per layer",
                    f"{gpu_name} {model_name} TP{tp} {tokens} tokens",
                    "GEMM time per layer",
                    "ms",
                    measured,
                    predicted_s * 1e3,
                    HELD_OUT,
                    where,
                )
            )
    return rows


def _decode_tok_s(model, gpu_name, params, *, tp=1, weight_dtype="bf16", context=100) -> float:
    gpu = load_gpu(gpu_name)
    link = load_link(gpu.interconnect) if tp > 1 else None
    cm = CostModel(
        CostConfig(
            model,
            gpu,
            params=params,
            parallel=Parallelism(tensor=tp, link=link),
            precision=Precision(weights=weight_dtype),
        )
    )
    return 1.0 / cm.step_time_s(StepShape.uniform(decode_count=1, decode_context=context))


def gpt_fast_section() -> list[Row]:
    """gpt-fast batch-1 decode on 8x A100-80GB (power-limited to 330 W), §9B."""
    profile = load_profile("vllm")
    params, where = params_for("a100-sxm-80gb", profile)
    cases = [
        ("llama-2-7b", "bf16", 1, 104.9),
        ("llama-2-7b", "int8", 1, 155.58),
        ("llama-2-7b", "int4-g32", 1, 196.80),
        ("llama-2-70b", "int8", 1, 19.13),
        ("llama-2-70b", "int4-g32", 1, 25.25),
        ("llama-2-7b", "bf16", 2, 168.84),
        ("llama-2-7b", "bf16", 4, 254.02),
        ("llama-2-7b", "bf16", 8, 328.43),
        ("llama-2-70b", "bf16", 2, 21.32),
        ("llama-2-70b", "bf16", 4, 38.01),
        ("llama-2-70b", "bf16", 8, 62.50),
        ("llama-2-70b", "int8", 8, 80.44),
        ("llama-2-70b", "int4-g32", 8, 90.77),
    ]
    rows = []
    for name, dtype, tp, measured in cases:
        model = LLAMA2_7B if name == "llama-2-7b" else load_model(name)
        predicted = _decode_tok_s(model, "a100-sxm-80gb", params, tp=tp, weight_dtype=dtype)
        rows.append(
            Row(
                "F. gpt-fast single-user decode (§9B), A100-80GB SXM at 330 W",
                f"{name} {dtype} TP{tp}, batch 1, ~100 tokens of context",
                "decode tok/s",
                "tok/s",
                measured,
                predicted,
                HELD_OUT,
                f"{where} (torch.compile: fused kernels, CUDA graphs); datasheet clocks, "
                "the 330 W power cap is not modelled",
            )
        )
    return rows


def deepseek_section() -> list[Row]:
    """SGLang DeepSeek-V3 on 96 H100 (§7A): per-node prefill and decode throughput, priced
    as one step of the whole expert-parallel replica (attention data-parallel per GPU)."""
    from simulator.specs.topology import NodeSpec, ReplicaPlacement

    gpu = load_gpu("h100-sxm")
    params, where = params_for("h100-sxm", load_profile("sglang"))
    model = load_model("deepseek-v3")
    node = NodeSpec(8, load_link("nvlink4"), load_link("infiniband-ndr"))

    def replica(ep: int) -> CostModel:
        placement = ReplicaPlacement(1, 1, ep, node)
        return CostModel(
            CostConfig(
                model,
                gpu,
                params=params,
                parallel=Parallelism(expert=ep, placement=placement),
                precision=Precision(weights="fp8", kv_cache="bf16"),
            )
        )

    section = "J. SGLang DeepSeek-V3, 12 nodes x 8 H100, PD disaggregation + wide EP (§7A)"
    note = f"{where}; FP8 weights, BF16 KV; two-batch overlap not modelled"
    rows = []
    decode = replica(72)
    step_s = decode.step_time_s(StepShape.uniform(decode_count=256 * 72, decode_context=2000))
    rows.append(
        Row(section, "decode, 9 nodes EP72, batch 256/GPU, 2K input", "decode tok/s per node",
            "tok/s", 22282, 8 * 256 / step_s, HELD_OUT, note)
    )  # fmt: skip
    prefill = replica(32)
    tokens_per_gpu = 8192  # the stated per-device maximum without two-batch overlap
    for isl, measured in ((1024, 57674), (2048, 54543), (4096, 50302)):
        shape = StepShape.uniform(prefill_count=32 * tokens_per_gpu // isl, prefill_new=isl)
        step_s = prefill.step_time_s(shape)
        rows.append(
            Row(section, f"prefill, 4 nodes EP32, prompt {isl}", "prefill tok/s per node",
                "tok/s", measured, 8 * tokens_per_gpu / step_s, HELD_OUT,
                f"{note}; 8,192 prompt tokens per GPU per step assumed")
        )  # fmt: skip
    return rows


DEVICE_NOTES = {
    "A. Own GPU measurements: fitted on Llama-3.2-1B steps + kernels, "
    "Llama-3.1-8B steps held out": (
        "`hardware_specs/calibration/measurements/<gpu>.jsonl` (lent H100 SXM and H200, "
        "2026-11-24). The fit sees the GEMM, attention and Llama-3.2-1B step rows; the "
        "Llama-3.1-8B steps (4x the weights, 2x the head dim) are held out."
    ),
}
