"""Validation section G: llama.cpp single-user prefill and decode (published_benchmarks.md
§8A, ``llama-bench -ngl 99``, Llama-2-7B Q4_0, batch 1), and the fit of the llama.cpp
profile's two GGUF kernel ceilings on the H100 rows of that table."""

from __future__ import annotations

import dataclasses

from validation_rows import FIT, HELD_OUT, LLAMA2_7B, Missing, Row, params_for

from simulator.costmodel import CostModel, StepShape
from simulator.costmodel.profiles import EngineProfile, load_profile
from simulator.specs.catalog import load_gpu

SECTION = "G. llama.cpp single-user (§8A), Llama-2-7B Q4_0, llama-bench"
NOTE = "§8A transcribed via a secondary digest (verify)"
SECTION_NOTE = (
    "Priced with the llama.cpp profile: GGUF GEMMs multiply in int8 (ggml's MMQ kernels "
    "quantise activations to q8_1 blocks), capped at gguf_gemm_flop_per_sm_cycle × SMs × "
    "clock; GGUF weight reads are capped at gguf_gemv_bytes_per_sm_cycle × SMs × clock. The "
    "two ceilings were fitted on the H100 rows (marked fit); every other row is held out. The "
    "ceilings need a GPU's SM count and clock, so they apply to the NVIDIA GPUs of the "
    "catalog; the Apple rows (Metal back end) are priced without them. GPUs without a "
    "calibration file use the default efficiencies and per-kernel latency, which price the "
    "consumer cards' decode 12-28% slow: llama.cpp reaches 70% of the RTX 4090's bandwidth "
    "at batch 1 (derived, §8A), more than those defaults allow."
)

#: §8A rows the simulator can express: (device, catalog GPU, pp512 tok/s, tg128 tok/s).
TABLE = (
    ("RTX 5090", "rtx-5090", 14970, 300.4),
    ("RTX 4090", "rtx-4090", 14771, 189.0),
    ("H100 80GB HBM3", "h100-sxm", 11263, 280.7),
    ("A100 80GB HBM2e", "a100-sxm-80gb", 5286, 200.9),
    ("RTX 3090", "rtx-3090", 5175, 158.2),
    ("M2 Ultra (76 cores)", "m2-ultra", 1238, 94.3),
    ("M4 Max (40 cores)", "m4-max", 886, 83.1),
)
#: The row the llama.cpp profile's GGUF ceilings are fitted on: the H100, the GPU whose
#: calibration the project measured itself (as the vLLM and TensorRT-LLM profiles are
#: fitted on H100/H200 rows). Every other row of the table is held out.
FIT_GPU = "h100-sxm"

#: tg128: 128 tokens generated from an empty prompt, so the mean context is 64.
DECODE = StepShape.uniform(decode_count=1, decode_context=64)
PREFILL_TOKENS = 512
PREFILL = StepShape.uniform(prefill_count=1, prefill_new=PREFILL_TOKENS)


def predict(gpu_name: str, profile: EngineProfile) -> tuple[float, float, str]:
    """(tg128 decode tok/s, pp512 prefill tok/s, parameter label) under ``profile``."""
    params, where = params_for(gpu_name, profile)
    cm = CostModel(LLAMA2_7B, load_gpu(gpu_name), params=params, weight_dtype="q4_0")
    return 1 / cm.step_time_s(DECODE), PREFILL_TOKENS / cm.step_time_s(PREFILL), where


def llama_cpp_section() -> tuple[list[Row], list[Missing]]:
    """llama.cpp scoreboard (§8A): one decode and one prefill row per catalog device."""
    profile = load_profile("llama.cpp")
    rows = []
    for device, gpu_name, pp512, tg128 in TABLE:
        decode, prefill, where = predict(gpu_name, profile)
        config = f"{device} ({gpu_name}) Llama-2-7B Q4_0"
        status = FIT if gpu_name == FIT_GPU else HELD_OUT
        note = f"{where}; {NOTE}"
        for metric, measured, predicted in (
            ("decode tok/s (tg128)", tg128, decode),
            ("prefill tok/s (pp512)", pp512, prefill),
        ):
            rows.append(Row(SECTION, config, metric, "tok/s", measured, predicted, status, note))
    missing = [
        Missing("G. llama.cpp (§8A/8B)", device, "GPU not in the catalog")
        for device in (
            "RTX PRO 6000 Blackwell",
            "RTX 5080",
            "RTX 3060",
            "DGX Spark (GB10)",
            "Jetson AGX Orin",
        )
    ]
    missing.append(
        Missing("G. llama.cpp (§8A)", "M1/M3 Ultra, M4 Pro, M5 Max", "chip not in the catalog")
    )
    missing.append(
        Missing(
            "G. llama.cpp (§8B)",
            "DGX Spark gpt-oss / Qwen3 MXFP4 and Q8_0 rows",
            "GB10 not in the catalog",
        )
    )
    return rows, missing


def fit_gguf_ceilings() -> tuple[float, float]:
    """(``gguf_gemm_flop_per_sm_cycle``, ``gguf_gemv_bytes_per_sm_cycle``) at which the
    ``FIT_GPU`` rows are predicted exactly (root finding, alternated until both settle;
    every other field of the llama.cpp profile as shipped)."""
    from scipy.optimize import brentq

    shipped = load_profile("llama.cpp")
    _, _, pp512, tg128 = next(row for row in TABLE if row[1] == FIT_GPU)

    def with_ceilings(flop: float, byte: float) -> EngineProfile:
        return dataclasses.replace(
            shipped, gguf_gemm_flop_per_sm_cycle=flop, gguf_gemv_bytes_per_sm_cycle=byte
        )

    def decode_gap(byte: float, flop: float) -> float:
        return predict(FIT_GPU, with_ceilings(flop, byte))[0] - tg128

    def prefill_gap(flop: float, byte: float) -> float:
        return predict(FIT_GPU, with_ceilings(flop, byte))[1] - pp512

    flop, byte = 0.0, 0.0
    for _ in range(4):
        byte = brentq(decode_gap, 0.1, 1e3, args=(flop,))
        flop = brentq(prefill_gap, 1.0, 1e5, args=(byte,))
    return flop, byte
