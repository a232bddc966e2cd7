"""Speed of ggml's quantised CUDA kernels (llama.cpp) per GGUF format, relative to Q4_0.

The llama.cpp profile's SM-cycle ceilings (``CostParams.gguf_*``) are fitted on Q4_0. Other
formats unpack their blocks with more work per weight (the k-quants' two-level scales, Q6_K's
split high bits), so their matrix-vector (MMVQ) and matrix-multiply (MMQ) kernels run
slower per SM-cycle and read weights more slowly. Each factor here multiplies the three
ceilings for that format.

FITTED: each on the pp512 row of its format in our llama-bench runs on the lent H100
(``hardware_specs/calibration/measurements/h100-sxm-llamacpp-bench.jsonl``, llama.cpp build
149, files in one pure format; ``python benchmarks/validation.py --fit`` repeats it); that
format's other rows (pp128, pp2048, tg128, batched decode) are held out. The _M mixes take
the factor of their main format (Q4_K_M: mostly Q4_K with some Q6_K), an approximation.
Formats not listed run at the Q4_0 rate.
"""

from __future__ import annotations

GGML_FORMAT_SPEED: dict[str, float] = {
    "q4_0": 1.0,
    "q8_0": 0.939,
    "q4_k_pure": 0.842,
    "q5_k_pure": 0.820,
    "q6_k": 0.714,
}
#: Mixes priced with the factor of their main format.
GGML_FORMAT_FAMILY: dict[str, str] = {"q4_k_m": "q4_k_pure", "q5_k_m": "q5_k_pure"}


def ggml_format_speed(dtype: str) -> float:
    """Relative speed of ggml's kernels on GGUF ``dtype`` (Q4_0 = 1; unlisted formats 1)."""
    return GGML_FORMAT_SPEED.get(GGML_FORMAT_FAMILY.get(dtype, dtype), 1.0)
