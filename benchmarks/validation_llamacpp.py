"""Validation sections of llama.cpp: our own llama-bench runs on the lent H100 (random
weights in Llama-2-7B shapes, several GGUF formats, batch 1-64), and the published
llama-bench scoreboard (published_benchmarks.md §8A, Llama-2-7B Q4_0, batch 1).

The llama.cpp profile's four GGUF kernel parameters are fitted on four of our own H100
rows (``FIT``); every other row, the whole published scoreboard included, is held out.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from validation_rows import CALIBRATION, FIT, HELD_OUT, LLAMA2_7B, Missing, Row, params_for

from simulator.costmodel import CostConfig, CostModel, Precision, StepShape
from simulator.costmodel.profiles import EngineProfile, load_profile
from simulator.specs.catalog import load_gpu

MEASURED = CALIBRATION / "measurements"
#: Our runs, by catalog GPU: (label, file prefix under MEASURED).
OWN_GPUS = {"h100-sxm": ("H100", "h100-sxm-llamacpp"), "h200": ("H200", "h200-llamacpp")}
OWN_BENCH_REPEAT = MEASURED / "h100-sxm-llamacpp-bench-run1.jsonl"
#: Formats run through llama-batched-bench, by the file suffix.
BATCHED_FILES = {"q4_0": "q4_0", "q4_k_pure": "q4_k"}
OWN_SECTION = "G. llama.cpp on our H100: llama-bench, Llama-2-7B shapes, random weights"
H200_SECTION = "G1. llama.cpp on our H200: the H100 fit carried over"
#: Our own llama.cpp sections and their titles in the summary.
OWN_SECTIONS = {
    OWN_SECTION: "G. llama.cpp on our H100",
    H200_SECTION: "G1. llama.cpp on our H200, H100 fit",
}
PUBLISHED_SECTION = "G2. llama.cpp scoreboard (§8A), Llama-2-7B Q4_0, llama-bench"
PUBLISHED_NOTE = "§8A transcribed via a secondary digest (verify)"
UBATCH_TOKENS = 512  # llama-bench and llama-batched-bench n_ubatch default
BATCHED_PROMPT, BATCHED_GEN = 512, 128

#: llama-bench's type names (model_type's last word) -> catalog dtypes (pure files).
FORMATS = {
    "Q4_0": "q4_0",
    "Q8_0": "q8_0",
    "Q4_K": "q4_k_pure",
    "Q5_K": "q5_k_pure",
    "Q6_K": "q6_k",
    "F16": "fp16",
}

#: §8A rows the simulator can express: (device, catalog GPU, pp512 tok/s, tg128 tok/s).
PUBLISHED = (
    ("RTX 5090", "rtx-5090", 14970, 300.4),
    ("RTX 4090", "rtx-4090", 14771, 189.0),
    ("H100 80GB HBM3", "h100-sxm", 11263, 280.7),
    ("A100 80GB HBM2e", "a100-sxm-80gb", 5286, 200.9),
    ("RTX 3090", "rtx-3090", 5175, 158.2),
    ("M2 Ultra (76 cores)", "m2-ultra", 1238, 94.3),
    ("M4 Max (40 cores)", "m4-max", 886, 83.1),
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One llama.cpp measurement: what ran, what it measured, how to price it."""

    config: str
    metric: str
    measured_tok_s: float
    gpu: str
    dtype: str
    kind: str  # "prefill", "decode" or "batched"
    tokens: int  # prompt tokens, or sequences decoding together
    depth: int = 0  # context before the measured tokens


def predict(case: Case, profile: EngineProfile) -> tuple[float, str]:
    """Predicted tok/s of ``case`` under ``profile``, and the parameter label."""
    params, where = params_for(case.gpu, profile)
    cm = CostModel(
        CostConfig(
            LLAMA2_7B, load_gpu(case.gpu), params=params, precision=Precision(weights=case.dtype)
        )
    )
    if case.kind == "prefill":
        # llama-bench feeds the prompt in n_ubatch chunks, each attending to the ones before.
        seconds = sum(
            cm.step_time_s(
                StepShape.uniform(
                    prefill_count=1,
                    prefill_new=min(UBATCH_TOKENS, case.tokens - start),
                    prefill_cached=start,
                )
            )
            for start in range(0, case.tokens, UBATCH_TOKENS)
        )
        return case.tokens / seconds, where
    # Decodes of 128 tokens: the mean context is the depth plus 64.
    shape = StepShape.uniform(decode_count=case.tokens, decode_context=case.depth + 64)
    return case.tokens / cm.step_time_s(shape), where


def _bench_cases(path: Path, gpu: str) -> list[Case]:
    label = OWN_GPUS[gpu][0]
    cases = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        # model_type reads "llama 7B (guessed) Q4_K - Medium": the first known type name
        name = next(word for word in r["model_type"].split() if word in FORMATS)
        dtype = FORMATS[name]
        if r["n_prompt"]:
            config, metric = (
                f"{label} {name} pp{r['n_prompt']}",
                f"prefill tok/s (pp{r['n_prompt']})",
            )
            cases.append(Case(config, metric, r["avg_ts"], gpu, dtype, "prefill", r["n_prompt"]))
        else:
            depth = r["n_depth"]
            config = f"{label} {name} tg{r['n_gen']}" + (f" at depth {depth}" if depth else "")
            metric = "decode tok/s (tg128)" if not depth else "decode tok/s (tg128, deep)"
            cases.append(Case(config, metric, r["avg_ts"], gpu, dtype, "decode", 1, depth))
    return cases


def own_cases(gpu: str = "h100-sxm") -> list[Case]:
    """Our rows on ``gpu``: llama-bench (prefill, batch-1 decode) and llama-batched-bench."""
    label, prefix = OWN_GPUS[gpu]
    cases = _bench_cases(MEASURED / f"{prefix}-bench.jsonl", gpu)
    for dtype, suffix in BATCHED_FILES.items():
        name = next(k for k, v in FORMATS.items() if v == dtype)
        for line in (MEASURED / f"{prefix}-batched-{suffix}.jsonl").read_text().splitlines():
            r = json.loads(line)
            config = f"{label} {name} {r['pl']} sequences"
            speed, seqs = r["speed_tg"], r["pl"]
            metric = "decode tok/s (batched)"
            case = Case(config, metric, speed, gpu, dtype, "batched", seqs, BATCHED_PROMPT)
            cases.append(case)
    return cases


#: The rows the four GGUF parameters are fitted on, by the parameter each one sets.
FIT_CASES = {
    "gguf_gemm_flop_per_sm_cycle": "H100 Q4_0 pp512",
    "gguf_gemm_pad_tokens": "H100 Q4_0 16 sequences",
    "gguf_gemv_flop_per_sm_cycle": "H100 Q4_0 8 sequences",
    "gguf_gemv_bytes_per_sm_cycle": "H100 Q4_0 tg128",
}


def format_fit_configs() -> set[str]:
    """The rows each format's ``GGML_FORMAT_SPEED`` is fitted on: its pp512 (Q4_0 and F16
    have none: Q4_0 is the reference, F16 runs other kernels)."""
    return {f"H100 {name} pp512" for name in FORMATS if name not in ("Q4_0", "F16")}


def published_cases() -> list[Case]:
    cases = []
    for device, gpu, pp512, tg128 in PUBLISHED:
        config = f"{device} ({gpu}) Llama-2-7B Q4_0"
        cases.append(Case(config, "decode tok/s (tg128)", tg128, gpu, "q4_0", "decode", 1))
        cases.append(Case(config, "prefill tok/s (pp512)", pp512, gpu, "q4_0", "prefill", 512))
    return cases


def _rows(cases: list[Case], section: str, fit: set[str], note: str = "") -> list[Row]:
    profile = load_profile("llama.cpp")
    rows = []
    for case in cases:
        predicted, where = predict(case, profile)
        status = FIT if case.config in fit else HELD_OUT
        text = "; ".join(x for x in (where, note) if x)
        measured = case.measured_tok_s
        rows.append(
            Row(section, case.config, case.metric, "tok/s", measured, predicted, status, text)
        )
    return rows


def repeat_spread_pct() -> tuple[float, float]:
    """Median and largest difference between the two runs of the same llama-bench rows (%)."""
    repeat = _bench_cases(OWN_BENCH_REPEAT, "h100-sxm")
    first = {(c.config, c.metric): c.measured_tok_s for c in repeat}
    diffs = [
        abs(c.measured_tok_s / first[(c.config, c.metric)] - 1) * 100
        for c in own_cases("h100-sxm")
        if (c.config, c.metric) in first
    ]
    return statistics.median(diffs), max(diffs)


def section_note() -> str:
    median, worst = repeat_spread_pct()
    return (
        "`benchmarks/llamacpp/bench_on_gpu.sh` on the lent H100 SXM (2026-11-24): llama.cpp "
        "build 149 (the llama.cpp tree of llama-cpp-python 0.3.36) built with CUDA 13.0 for "
        "sm_90; models written by `benchmarks/llamacpp/random_gguf.py` (Llama-2-7B shapes, "
        "random weights, every matrix in the one format); raw output in "
        "`hardware_specs/calibration/measurements/h100-sxm-llamacpp-*`. The same rows run "
        f"twice on two machines differ by {median:.1f} % (median), {worst:.1f} % at most. "
        "Priced with the llama.cpp profile: GGUF GEMMs multiply in int8; up to 8 tokens "
        "(ggml's MMVQ kernels) at most gguf_gemv_flop_per_sm_cycle × SMs × clock, above "
        "(MMQ) at gguf_gemm_flop_per_sm_cycle × SMs × clock with gguf_gemm_pad_tokens of "
        "tile padding; GGUF weight reads at most gguf_gemv_bytes_per_sm_cycle × SMs × clock. "
        "Those four were fitted on four Q4_0 rows, and each other format's relative kernel "
        "speed (`simulator/costmodel/ggml.py`, multiplying the three ceilings) on its pp512 "
        "row: those rows are marked fit (`--fit` repeats both); all other rows are held out. "
        "F16 runs cuBLAS and ggml's own kernels, priced here as the calibrated PyTorch GEMMs "
        "(no llama.cpp factor: its prefill is over-predicted by that much)."
    )


H200_SECTION_NOTE = (
    "The same script, build and models on the lent H200 (2026-11-25 00:22 UTC; raw output "
    "in `hardware_specs/calibration/measurements/h200-llamacpp-*`), priced with the "
    "parameters fitted on the H100: every row is held out. The H200 has the H100's SMs and "
    "clock and 43 % more memory bandwidth, so where ggml's kernels are bound by SM cycles "
    "the model predicts the H100's speed, and where they are bound by memory (attention over "
    "long contexts, F16 weights) a faster one."
)

PUBLISHED_SECTION_NOTE = (
    "The §8A scoreboard collects llama-bench runs of many builds and hosts. Priced with the "
    "llama.cpp profile fitted on our own H100 rows (section G), so every row here is held "
    "out, the H100 one included: it measured 281 tok/s decode where our build measured "
    "346. The GGUF ceilings need a GPU's SM count and clock, so they apply to the NVIDIA GPUs "
    "of the catalog; the Apple rows (Metal back end) are priced without them. GPUs without a "
    "calibration file use the default efficiencies and per-kernel latency, which price the "
    "consumer cards' decode 12-28% slow: llama.cpp reaches 70% of the RTX 4090's bandwidth "
    "at batch 1 (derived, §8A), more than those defaults allow."
)


def llama_cpp_sections() -> tuple[list[Row], list[Missing], dict[str, str]]:
    """Rows of both llama.cpp sections, what cannot be expressed, and the section notes."""
    rows = _rows(own_cases(), OWN_SECTION, set(FIT_CASES.values()) | format_fit_configs())
    rows += _rows(own_cases("h200"), H200_SECTION, set())
    rows += _rows(published_cases(), PUBLISHED_SECTION, set(), PUBLISHED_NOTE)
    missing = [
        Missing("G2. llama.cpp (§8A/8B)", device, "GPU not in the catalog")
        for device in (
            "RTX PRO 6000 Blackwell",
            "RTX 5080",
            "RTX 3060",
            "DGX Spark (GB10)",
            "Jetson AGX Orin",
        )
    ]
    missing.append(
        Missing("G2. llama.cpp (§8A)", "M1/M3 Ultra, M4 Pro, M5 Max", "chip not in the catalog")
    )
    missing.append(
        Missing(
            "G2. llama.cpp (§8B)",
            "DGX Spark gpt-oss / Qwen3 MXFP4 and Q8_0 rows",
            "GB10 not in the catalog",
        )
    )
    notes = {
        OWN_SECTION: section_note(),
        H200_SECTION: H200_SECTION_NOTE,
        PUBLISHED_SECTION: PUBLISHED_SECTION_NOTE,
    }
    return rows, missing, notes


def fit_gguf_parameters() -> dict[str, float]:
    """The four GGUF parameters at which the ``FIT_CASES`` rows are predicted exactly: each
    found by root finding on its own row, the four alternated until they settle (every other
    field of the llama.cpp profile as shipped)."""
    from scipy.optimize import brentq

    shipped = load_profile("llama.cpp")
    cases = {c.config: c for c in own_cases()}
    values = {
        "gguf_gemm_flop_per_sm_cycle": 600.0,
        "gguf_gemm_pad_tokens": 0.0,
        "gguf_gemv_flop_per_sm_cycle": 100.0,
        "gguf_gemv_bytes_per_sm_cycle": 8.0,
    }
    brackets = {
        "gguf_gemm_flop_per_sm_cycle": (10.0, 1e5),
        "gguf_gemm_pad_tokens": (0.0, 1e4),
        "gguf_gemv_flop_per_sm_cycle": (1.0, 1e5),
        "gguf_gemv_bytes_per_sm_cycle": (0.1, 1e3),
    }

    def gap(name: str) -> Callable[[float], float]:
        case = cases[FIT_CASES[name]]

        def error(value: float) -> float:
            profile = dataclasses.replace(shipped, **(values | {name: value}))
            return predict(case, profile)[0] - case.measured_tok_s

        return error

    for _ in range(12):
        for name in ("gguf_gemv_bytes_per_sm_cycle", "gguf_gemv_flop_per_sm_cycle",
                     "gguf_gemm_flop_per_sm_cycle", "gguf_gemm_pad_tokens"):  # fmt: skip
            low, high = brackets[name]
            values[name] = brentq(gap(name), low, high, xtol=1e-9)
    return values


def fit_format_speeds() -> dict[str, float]:
    """``GGML_FORMAT_SPEED`` of every quantised format but Q4_0 at which its pp512 row of our
    H100 runs is predicted exactly (root finding; the profile as shipped)."""
    from scipy.optimize import brentq

    from simulator.costmodel import ggml

    profile = load_profile("llama.cpp")
    fitted = {}
    for case in own_cases():
        if case.config not in format_fit_configs():
            continue
        shipped = ggml.GGML_FORMAT_SPEED[case.dtype]

        def gap(speed: float, case: Case = case) -> float:
            ggml.GGML_FORMAT_SPEED[case.dtype] = speed
            return predict(case, profile)[0] - case.measured_tok_s

        try:
            fitted[case.dtype] = brentq(gap, 0.05, 5.0, xtol=1e-9)
        finally:
            ggml.GGML_FORMAT_SPEED[case.dtype] = shipped
    return fitted
