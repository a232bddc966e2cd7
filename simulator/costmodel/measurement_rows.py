"""What each kind of measured row (``servesim calibrate --measure`` JSON lines) must hold
for a fit to read it: required and optional fields with their types and ranges."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldRule:
    """What one field of a measured row must hold: ``allowed`` (as messages say it) and
    ``valid(value)``."""

    allowed: str
    valid: Callable[[Any], bool]
    #: Smallest number that is a measurement (a valid value below it is refused too).
    least: float | None = None


#: Largest whole number a row field may hold (beyond it floats lose integers).
MAX_WHOLE = 2**53


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _is_whole(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer() and abs(value) <= MAX_WHOLE


def _is_dtype(value: Any) -> bool:
    from simulator.specs.dtypes import canonical_dtype

    if not isinstance(value, str):
        return False
    try:
        canonical_dtype(value)
    except ValueError:
        return False
    return True


#: Shortest time a row may report (ms): a nanosecond; shorter is no kernel timing.
MIN_MS = 1e-6

MILLISECONDS = FieldRule("milliseconds, a number > 0", lambda v: _is_number(v) and v > 0, MIN_MS)
EAGER_MILLISECONDS = FieldRule(
    "null (not timed eagerly) or milliseconds, a number > 0",
    lambda v: v is None or (_is_number(v) and v > 0),
    MIN_MS,
)
COUNT = FieldRule("a whole number >= 1", lambda v: _is_whole(v) and v >= 1)
COUNT_OR_ZERO = FieldRule("a whole number >= 0", lambda v: _is_whole(v) and v >= 0)
MODEL_NAME = FieldRule("a catalog model name", lambda v: isinstance(v, str) and bool(v.strip()))
TEXT = FieldRule("text", lambda v: isinstance(v, str))
FLAG = FieldRule("true or false", lambda v: isinstance(v, bool))
GEMM_DTYPE = FieldRule("'bf16' or 'fp8'", lambda v: isinstance(v, str) and v in ("bf16", "fp8"))
DTYPE = FieldRule("a dtype name such as 'bf16'", _is_dtype)
GPU_COUNT = FieldRule("a whole number of GPUs >= 2", lambda v: _is_whole(v) and v >= 2)

_GROUPED_GEMM = {"experts": COUNT, "rows": COUNT, "k": COUNT, "n": COUNT, "ms": MILLISECONDS}

#: Row kinds that a fit reads: (required fields, optional fields) with their rules. Other
#: kinds (``ceiling``, ``model``, ``launch``, whole MoE steps, ...) are kept unchecked.
ROW_FIELDS: dict[str, tuple[dict[str, FieldRule], dict[str, FieldRule]]] = {
    "env": ({}, {"gpu": TEXT}),
    "gemm": (
        {"m": COUNT, "k": COUNT, "n": COUNT, "ms": MILLISECONDS},
        {"dtype": GEMM_DTYPE, "graph": FLAG},
    ),
    "attn_prefill": (
        {"model": MODEL_NAME, "batch": COUNT, "seq": COUNT, "ms": MILLISECONDS},
        {},
    ),
    "attn_decode": (
        {"model": MODEL_NAME, "batch": COUNT, "context": COUNT_OR_ZERO, "ms": MILLISECONDS},
        {},
    ),
    "prefill": (
        {"model": MODEL_NAME, "batch": COUNT, "seq": COUNT, "ms": MILLISECONDS},
        {"eager_ms": EAGER_MILLISECONDS},
    ),
    "decode": (
        {"model": MODEL_NAME, "batch": COUNT, "context": COUNT_OR_ZERO, "ms": MILLISECONDS},
        {"eager_ms": EAGER_MILLISECONDS},
    ),
    "mixed": (
        {
            "model": MODEL_NAME,
            "chunk": COUNT,
            "chunk_context": COUNT_OR_ZERO,
            "decode_batch": COUNT_OR_ZERO,
            "decode_context": COUNT_OR_ZERO,
            "ms": MILLISECONDS,
        },
        {"eager_ms": EAGER_MILLISECONDS},
    ),
    "allreduce": ({"bytes": COUNT, "ms": MILLISECONDS}, {"tp": GPU_COUNT}),
    "grouped_gemm": (
        {"model": MODEL_NAME, "tokens_per_expert": COUNT, **_GROUPED_GEMM},
        {"dtype": DTYPE},
    ),
    "grouped_gemm_active": (dict(_GROUPED_GEMM), {"dtype": DTYPE}),
    "moe_routing": (
        {
            "tokens": COUNT,
            "rows": COUNT,
            "hidden": COUNT,
            "experts": COUNT,
            "ms": MILLISECONDS,
        },
        {},
    ),
}


def json_text(value: Any) -> str:
    """``value`` as it reads in the file (shortened)."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def row_problems(row: Mapping[str, Any]) -> list[str]:
    """What is wrong with a measured row (nothing for kinds no fit reads)."""
    kind = row["kind"]
    if kind not in ROW_FIELDS:
        return []
    required, optional = ROW_FIELDS[kind]
    keys = ", ".join(k for k in row if not k.startswith("_")) or "none"
    missing = [f"{name!r} ({rule.allowed})" for name, rule in required.items() if name not in row]
    problems = []
    if missing:
        needs = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
        problems.append(f"{kind} row needs {needs}; got keys {keys}")
    for name, rule in (*required.items(), *optional.items()):
        if name not in row:
            continue
        value = row[name]
        if not rule.valid(value):
            problems.append(f"{kind} row: {name!r} must be {rule.allowed}; got {json_text(value)}")
        elif rule.least is not None and value is not None and value < rule.least:
            problems.append(
                f"{kind} row: {name!r} is {json_text(value)}, under {rule.least:g} ms (a "
                "nanosecond), which no kernel or step takes"
            )
    return problems
