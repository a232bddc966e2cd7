"""Numeric formats and their storage size.

Weights, activations and the KV cache each have a dtype; its size in bytes per
element sets memory use and the bytes a step must move.
"""

from __future__ import annotations

#: Bytes per element of each storage format. int4/fp4 pack two values per byte.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
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
}


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name, raising ``ValueError`` listing the known ones."""
    key = DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPE_BYTES:
        known = ", ".join(sorted(DTYPE_BYTES))
        raise ValueError(f"unknown dtype {name!r}; known: {known}")
    return key


def dtype_bytes(name: str) -> float:
    """Bytes per element of ``name`` (e.g. 2.0 for bf16)."""
    return DTYPE_BYTES[canonical_dtype(name)]
