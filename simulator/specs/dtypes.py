"""Numeric formats and their storage size.

Weights, activations and the KV cache each have a dtype; its size in bytes per
element sets memory use and the bytes a step must move. Block-quantised weight formats
(AWQ/GPTQ int4, NVFP4/MXFP4, GGUF k-quants) store scales next to the packed values;
their size here is the average over a block, scales included.
"""

from __future__ import annotations

#: AWQ/GPTQ int4: 4-bit values plus, per group of ``g`` weights, an fp16 scale and a 4-bit
#: zero point (AutoAWQ / GPTQ packing); group 128 is the common default.
INT4_GROUP_SIZES = (32, 64, 128)


def _int4_bytes(group: int) -> float:
    return 0.5 + (2.0 + 0.5) / group


#: GGUF bits per weight, whole-model averages (the k-quant "_M" mixes keep some tensors at a
#: higher type). Sources: llama.cpp ``tools/quantize/README.md`` (ggml-org/llama.cpp, commit
#: 311c2c9f): Llama-2-7B Q4_K_M 4.84, Q5_K_M 5.68, Q6_K 6.56 bpw; Llama-3.1-8B Q4_K_M 4.89,
#: Q5_K_M 5.70, Q6_K 6.56, Q8_0 8.50 bpw. Block layouts in ggml (``ggml-common.h``): Q8_0 =
#: 32 int8 + fp16 scale = 34 B / 32 = 8.5 bpw; Q4_0 = 18 B / 32 = 4.5; Q6_K = 210 B / 256 =
#: 6.5625; Q4_K = 144 B / 256 = 4.5 and Q5_K = 176 B / 256 = 5.5 (``q4_k_pure``,
#: ``q5_k_pure``: every tensor in that type, as ``llama-quantize --pure`` writes; plain
#: ``q4_k``/``q5_k`` mean the usual _M mixes).
GGUF_BITS_PER_WEIGHT: dict[str, float] = {
    "q4_0": 4.5,
    "q4_k_pure": 4.5,
    "q5_k_pure": 5.5,
    "q4_k_m": 4.85,
    "q5_k_m": 5.69,
    "q6_k": 6.5625,
    "q8_0": 8.5,
}

#: Bytes per element of each storage format. int4/fp4 pack two values per byte.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    # Block-scaled FP8 (DeepSeek-V3's checkpoint format): an fp32 scale per 128x128 block.
    "fp8_block": 1.0 + 4.0 / (128 * 128),
    "int8": 1.0,
    # int4 = AWQ/GPTQ with group size 128 (~4.16 bits per weight).
    "int4": _int4_bytes(128),
    **{f"int4-g{g}": _int4_bytes(g) for g in INT4_GROUP_SIZES if g != 128},
    # NVFP4: e2m1 values plus an fp8 scale per 16 (4.5 bpw); OCP MXFP4: an e8m0 scale per 32
    # (4.25 bpw), gpt-oss's MoE format.
    "fp4": 0.5 + 1.0 / 16,
    "mxfp4": 0.5 + 1.0 / 32,
    **{name: bits / 8 for name, bits in GGUF_BITS_PER_WEIGHT.items()},
}

#: Aliases accepted in scenarios and on the command line.
DTYPE_ALIASES: dict[str, str] = {
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "e4m3": "fp8",
    "fp8-block": "fp8_block",
    "awq": "int4",
    "gptq": "int4",
    "w4a16": "int4",
    "int4-g128": "int4",
    "nvfp4": "fp4",
    "q4_k": "q4_k_m",
    "q5_k": "q5_k_m",
}

#: Formats a KV cache may use (block-quantised weight formats are not KV formats).
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8")

#: Tensor-core format that a weight format computes in where the GPU has it natively.
NATIVE_COMPUTE: dict[str, str] = {
    "fp8": "fp8",
    "fp8_block": "fp8",
    "int8": "int8",
    "fp4": "fp4",
    "mxfp4": "fp4",
}


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name, raising ``ValueError`` listing the known ones."""
    key = DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPE_BYTES:
        known = ", ".join(sorted(DTYPE_BYTES))
        raise ValueError(f"unknown dtype {name!r}; known: {known}")
    return key


def dtype_bytes(name: str) -> float:
    """Bytes per element of ``name`` (e.g. 2.0 for bf16; 0.606 for GGUF q4_k_m)."""
    return DTYPE_BYTES[canonical_dtype(name)]


def is_gguf(name: str) -> bool:
    """Whether ``name`` is a GGUF block format (llama.cpp)."""
    return canonical_dtype(name) in GGUF_BITS_PER_WEIGHT
