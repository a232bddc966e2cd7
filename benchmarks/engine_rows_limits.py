"""The batch limits trtllm-bench chose for a published row: ``max_batch_size`` and
``max_num_tokens`` per rank.

NVIDIA's perf-overview runs pass neither limit, so ``trtllm-bench`` derives them from the
dataset, the model and the GPUs (``tensorrt_llm/bench/build/build.py``
``get_benchmark_engine_settings`` and ``tensorrt_llm/bench/build/tuning.py``
``calc_engine_setting`` / ``finetune_setting``):

* for the quantisations it tunes (none, FP8, block-scaled FP8, NVFP4) it estimates how many
  requests of ``isl + osl`` tokens the KV cache holds, with the model's bytes per parameter,
  ``max(tp, kv heads)`` KV heads of ``head_dim`` (HF ``head_dim``, else hidden / heads) on
  every layer, all GPUs' memory (NVML total, GiB) and a KV fraction of the free memory,
  then rounds up: batch ``min(requests, 4096) / pp`` to 64, 32, 128 or 256 steps, tokens
  ``min(batch x (1 + isl / osl), 32768)`` to 2048, 256, 512 or 1024 steps;
* other quantisations (gpt-oss's MXFP4) take the build defaults, 2048 and 8192;
* the PyTorch flow (release 1.0 on) raises ``max_num_tokens`` to hold a whole prompt beside
  a full batch (``max_isl + max_batch_size``: ``bench/benchmark/utils/general.py``
  ``get_settings``) and passes ``--kv_cache_free_gpu_mem_fraction`` (default 0.90) to the
  estimate; the 2024 engine build estimated with 0.95.

With attention data parallelism each rank schedules its own requests under these limits
(each rank has its own KV cache and scheduler), so a replica of ``ep`` such ranks takes
``ep`` times them. GPU memory is the catalog's (CUDA's total, within 1 % of NVML's).
"""

from __future__ import annotations

import math
from typing import Any

from simulator.specs.catalog import load_gpu, load_model, specs_dir
from simulator.specs.files import read_json

GIB = 1024**3
#: Build defaults of the quantisations trtllm-bench does not tune (BuildConfig).
DEFAULT_LIMITS = (2048, 8192)
#: Bytes per parameter of the quantisations it tunes, by the scenario's weight dtype.
TUNED_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "fp4": 0.5}
#: Most requests and tokens the estimate allows.
MAX_REQUESTS, MAX_TOKENS = 4096, 32768


def _round_batch(raw: float) -> int:
    if raw < 256:
        return max(64, 32 * math.ceil(raw / 32))
    if raw < 1024:
        return 128 * math.ceil(raw / 128)
    return 256 * math.ceil(raw / 256)


def _round_tokens(raw: float) -> int:
    if raw < 4096:
        return max(2048, 256 * math.ceil(raw / 256))
    if raw < 8192:
        return 512 * math.ceil(raw / 512)
    return 1024 * math.ceil(raw / 1024)


def tuned_limits(
    hf_config: dict[str, Any],
    params: float,
    gpu_memory_bytes: float,
    gpus: int,
    isl: int,
    osl: int,
    weight_bytes: float,
    kv_bytes: float,
    kv_fraction: float,
) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) of ``calc_engine_setting`` (pp 1, tp ``gpus``)."""
    heads = hf_config["num_attention_heads"]
    head_dim = hf_config.get("head_dim") or hf_config["hidden_size"] // heads
    kv_heads = max(gpus, hf_config.get("num_key_value_heads") or heads)
    per_token = 2 * hf_config["num_hidden_layers"] * kv_heads * head_dim * kv_bytes / GIB
    free = gpu_memory_bytes / GIB * gpus - params * weight_bytes / GIB
    requests = free * kv_fraction / (per_token * (isl + osl))
    batch = min(requests, MAX_REQUESTS)
    tokens = min(batch * (1 + isl / osl), MAX_TOKENS)
    return _round_batch(batch), _round_tokens(tokens)


def bench_limits(row) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) of one rank in ``row``'s run (module docstring)."""
    pytorch_flow = row.release != "0.14.0"
    weight = "fp8_block" if row.model.startswith("deepseek") else row.weight_dtype
    if weight in TUNED_BYTES:
        hf = read_json(specs_dir() / "models" / f"{row.model}.json", "model config")
        batch, tokens = tuned_limits(
            hf,
            load_model(row.model).param_count(),
            load_gpu(row.gpu).memory_bytes,
            row.tp * row.ep,
            row.isl,
            row.osl,
            TUNED_BYTES[weight],
            1.0 if row.kv_dtype == "fp8" else 2.0,
            0.90 if pytorch_flow else 0.95,
        )
    else:
        batch, tokens = DEFAULT_LIMITS
    if pytorch_flow:
        tokens = max(tokens, row.isl + batch)
    return batch, tokens
