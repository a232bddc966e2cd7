"""Efficiency parameters of the cost model: how much of each datasheet peak real kernels reach.

Every factor is a named, documented field. ``CostParams.defaults()`` holds values taken from
the reference sheet (``reference/hardware_and_prices.md`` section C, ``published_benchmarks.md``
section 9) and from documented engine behaviour; ``servesim calibrate`` fits them to
measurements and writes a YAML file that ``CostParams.from_file`` reads back.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import UserError
from simulator.specs.files import read_yaml

#: Format tag written into calibration files; bumped when fields change meaning.
CALIBRATION_FORMAT = "servesim-calibration/1"


#: Fields that are switches (true or false) rather than numbers.
SWITCHES = ("cuda_graphs", "fp8_static_activation_scales")


@dataclass(frozen=True)
class CostParams:
    """Efficiency factors, latencies and overheads that turn FLOPs and bytes into seconds."""

    gemm_efficiency: float = 0.70
    """Fraction of the datasheet dense bf16/fp16 peak FLOP/s that large GEMMs reach (unitless).
    Default 0.70: model-shaped GEMMs on H100 (Vidur operator profiles, published_benchmarks.md
    §9A: QKV at 4096 tokens ~695 TFLOP/s of 989); square MAMF shapes reach 0.80 (sheet C1/C4)."""

    gemm_efficiency_8bit: float = 0.62
    """Same for fp8/int8 GEMMs (unitless). Default 0.62 = 0.70 × (0.709 / 0.803), the MAMF
    fp8-to-bf16 ratio measured on H100 (sheet C1)."""

    gemm_pad_tokens: float = 32.0
    """Shape dependence of GEMM compute (tokens): a GEMM of m rows costs as much compute time
    as one of ``m + gemm_pad_tokens`` rows at full efficiency, so efficiency at m rows is
    ``gemm_efficiency * m / (m + gemm_pad_tokens)``. Models tile padding and the ramp of
    small GEMMs. Default 32: a quarter of a 128-row tensor-core tile."""

    memory_bw_efficiency: float = 0.77
    """Fraction of datasheet HBM bandwidth reached by weight-streaming GEMMs and elementwise
    kernels (unitless). Default 0.77: Vidur batch-1 linear layers on H100 (~2.6 of 3.35 TB/s,
    published_benchmarks.md §9A), the regime that dominates decode; pure copies reach 0.85-0.90
    (sheet C2/C4)."""

    kernel_latency_s: float = 4.0e-6
    """Fixed GPU time per kernel inside a CUDA graph (seconds): launch, ramp-up and tail.
    Default 4 µs: Vidur H100 profiles spend 17-20 µs per layer on their five small non-GEMM
    ops (norms, rotary, SiLU×up, residual add) at one token (published_benchmarks.md §9A)."""

    attention_kernel_latency_s: float = 10.0e-6
    """Extra fixed time of one attention call beyond ``kernel_latency_s`` (seconds): layout
    transposes, split-KV reduction and setup of the fused attention kernel. Default 10 µs:
    two to three extra small kernels at ``kernel_latency_s`` plus the flash kernel's setup."""

    attention_prefill_efficiency: float = 0.35
    """Fraction of peak FLOP/s reached by prefill (causal) attention (unitless). Default 0.35:
    FlashAttention-2 on H100 (sheet C3, FA3 paper), the kernel behind PyTorch SDPA; engines
    running FlashAttention-3 reach 0.60-0.75 (sheet C4) and should set that."""

    attention_decode_bw_efficiency: float = 0.90
    """Fraction of HBM bandwidth reached by decode attention reading the KV cache (unitless).
    Default 0.90: sheet C4 "Decode: ~0.85-0.95 of HBM bandwidth"."""

    attention_decode_pad_tokens: float = 64.0
    """Fixed cost of each decoding sequence in attention, in KV tokens' worth of reading
    (tokens): the kernel reads the KV cache in tiles, so the last tile of every sequence is
    partly wasted, and each sequence loads its query and writes its output. Default 64: half
    of a 128-token KV tile (FlashAttention split-KV / FlashInfer block sizes of 64-256)."""

    elementwise_traffic_factor: float = 1.0
    """Memory traffic of norms, rotary, residual adds, activation and KV writes relative to
    fused kernels that read and write each row once (unitless). Default 1.0: serving engines
    fuse these (vLLM/TensorRT-LLM custom kernels); PyTorch reference code upcasts to fp32
    and makes several passes, which a calibration captures as a factor above 1."""

    residual_add_kernels: float = 1.0
    """Kernels launched per residual add (unitless): 1 in PyTorch reference code; 0 where the
    engine adds the residual inside the following RMSNorm kernel (the add's traffic stays,
    its ``kernel_latency_s`` goes). Engine profiles set it."""

    rope_kv_write_kernels: float = 1.0
    """Kernels launched by rotary and by the KV-cache write, each (unitless): 1 in PyTorch
    reference code; 0 where the engine's attention kernel applies rotary and writes the KV
    cache itself. Engine profiles set it."""

    fp8_static_activation_scales: bool = False
    """Per-tensor FP8 GEMMs quantise their activation with the checkpoint's static scale, so
    no kernel computes a scale: the GEMM after a norm casts its input itself (an engine
    calibration's ``fp8_static`` grid), the GEMMs after attention and after SiLU × up get
    FP8 from those kernels (``fp8_input``). False: each GEMM computes its activation's
    scale and casts it, as the ``fp8`` grid measures. Engine profiles set it;
    ``engine.fp8_activation_scales`` overrides."""

    step_overhead_s: float = 20.0e-6
    """Fixed time per forward step outside the kernels (seconds): graph launch, input copy
    and synchronisation. Default 20 µs. Engine scheduling overhead belongs to the engine
    profile and is added by the engine, not here."""

    cuda_graphs: bool = True
    """Whether the engine replays steps as CUDA graphs. Without them the host launches every
    kernel from Python and a step lasts at least ``eager_launch_overhead_s`` per kernel."""

    eager_launch_overhead_s: float = 65.0e-6
    """Host time per counted kernel when launched op by op without a CUDA graph (seconds);
    it covers Python module dispatch and the unfused small ops behind each counted kernel.
    Default 65 µs: DESIGN.md reports eager decode of an 8B model at ~25 ms per step (graphed
    ~7.5 ms), i.e. host-bound; this model counts 387 kernels in that step (25 ms / 387)."""

    allreduce_latency_s: float = 10.0e-6
    """Fixed time of one all-reduce (seconds). Default 10 µs: NCCL ring all-reduce of a small
    message between 2 GPUs (sheet B4, nccl-tests#123); graphed NVLS reaches ~6 µs."""

    allreduce_bw_efficiency: float = 0.82
    """NCCL bus bandwidth of large all-reduces as a fraction of the link's per-direction
    bandwidth (unitless). Default 0.82: 8× H100/H200 without NVLS (sheet B5/C4)."""

    alltoall_latency_s: float = 20.0e-6
    """Fixed time of one MoE all-to-all, dispatch or combine (seconds): kernel launch and the
    exchange of per-expert token counts. Default 20 µs (estimate): DeepEP's low-latency
    kernels take 77 µs (dispatch) and 114 µs (combine) at EP8 for 128 tokens × 7168 × top-8,
    almost all of it bandwidth (github.com/deepseek-ai/DeepEP README, H800)."""

    alltoall_bw_efficiency: float = 0.86
    """Achieved fraction of the link's per-direction bandwidth in MoE dispatch/combine
    (unitless). Default 0.86: DeepEP normal kernels reach 43 GB/s over 50 GB/s CX7 RDMA at
    EP16 (153 of ~160 GB/s NVLink intranode at EP8: 0.96) (DeepEP README, H800)."""

    expert_load_imbalance: float = 1.0
    """Tokens of the busiest expert-parallel rank over the mean (>= 1, unitless); the step
    waits for that rank, so expert GEMM compute and all-to-all bytes scale by it. Default
    1.0: balanced, which expert-parallel load balancers with redundant experts approach;
    SGLang measured 1.49x (prefill) and 2.54x (decode) speed-ups from EPLB on DeepSeek-V3
    (published_benchmarks.md §7A), so unbalanced deployments sit around 1.5-2.5."""

    p2p_latency_s: float = 10.0e-6
    """Fixed time of one activation hand-off between pipeline stages (seconds): NCCL
    send/recv launch. Default 10 µs, taken equal to ``allreduce_latency_s`` (estimate)."""

    p2p_bw_efficiency: float = 0.80
    """Achieved fraction of link bandwidth by stage-to-stage send/recv (unitless). Default
    0.80 (estimate, between NCCL's all-reduce busbw fraction 0.82 and DeepEP's 0.86)."""

    dequant_overhead: float = 0.10
    """Extra GEMM compute time when weights are stored narrower than the GEMM computes
    (W4A16 int4, GGUF k-quants, fp8 on a GPU without fp8 tensor cores): the kernel unpacks
    and rescales every weight tile (fraction of the compute time, unitless). Default 0.10
    (estimate): Marlin-style kernels stay close to the bf16 GEMM rate at large batch."""

    gguf_gemm_flop_per_sm_cycle: float = 0.0
    """Ceiling on the compute rate of GEMMs over GGUF-quantised weights with more than
    ``gguf_gemv_max_tokens`` rows (FLOP per SM per clock cycle; the GPU's
    ``sm_cycles_per_s`` turns it into FLOP/s). ggml's quantised matrix-multiply kernels
    (MMQ) unpack every weight block on the CUDA cores before the int8
    tensor-core product, so their rate follows SMs × clock rather than a tensor peak.
    0 = no ceiling (the default: the tensor-core rate applies); engine profiles set it."""

    gguf_gemm_pad_tokens: float = 0.0
    """Rows a GEMM over GGUF weights in ggml's matrix-multiply kernels (MMQ) pays for beyond
    its own (tokens): each pass unpacks whole weight tiles, so a few rows cost like many
    (compute at m rows is priced as m + pad rows at the ceiling rate). 0 = none."""

    gguf_gemv_flop_per_sm_cycle: float = 0.0
    """Ceiling on the compute rate of GEMMs over GGUF-quantised weights with at most
    ``gguf_gemv_max_tokens`` rows (FLOP per SM per clock cycle): ggml's matrix-vector
    kernels (MMVQ) take integer dot products on the CUDA cores, one pass over the weights
    per call for up to that many tokens. 0 = no ceiling (the default)."""

    gguf_gemv_max_tokens: float = 8.0
    """Most rows (tokens) a GEMM over GGUF weights sends through ggml's matrix-vector
    kernels instead of its matrix-multiply ones (``MMVQ_MAX_BATCH_SIZE`` 8 in ggml-cuda's
    mmvq.cuh)."""

    gguf_gemv_bytes_per_sm_cycle: float = 0.0
    """Ceiling on the rate at which GEMMs over GGUF-quantised weights read memory (bytes per
    SM per clock cycle): ggml's quantised matrix-vector kernels keep too few loads in
    flight to reach the bandwidth of GPUs with few SMs per TB/s (HBM parts). 0 = no
    ceiling (the default); engine profiles set it."""

    offload_bw_efficiency: float = 0.80
    """Fraction of the host link's bandwidth reached when streaming offloaded weights from
    pinned host memory each step (unitless). Default 0.80 (estimate: pinned host-to-device
    copies reach ~25 of 31.5 GB/s on PCIe 4 x16)."""

    host_memory_bw_efficiency: float = 0.70
    """Fraction of the host (CPU) memory bandwidth reached by layers run on the CPU
    (unitless). Default 0.70: STREAM typically reaches 70-80% of DDR peak (cpu-server spec
    note in hardware_specs/gpus/cpu-server.yaml)."""

    host_gemm_efficiency: float = 0.50
    """Fraction of the host's matrix peak (AMX/AVX-512, Apple GPU ALUs) reached by GEMMs of
    layers run on the CPU or an integrated GPU (unitless). Default 0.50 (estimate)."""

    # --- helpers -------------------------------------------------------------------------
    @classmethod
    def defaults(cls) -> CostParams:
        """Datasheet-derived defaults documented on each field."""
        return cls()

    def replace(self, **changes: Any) -> CostParams:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SWITCHES:
                if not isinstance(value, bool):
                    problems.append(f"{f.name}: {value!r} must be true or false")
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"{f.name}: {value!r} must be a number")
            elif not math.isfinite(value) or value < 0:
                problems.append(f"{f.name}: {value!r} must be a finite number >= 0")
            elif (
                f.name.endswith("efficiency") or f.name.endswith("efficiency_8bit")
            ) and not 0 < value <= 1.5:
                problems.append(f"{f.name}: {value!r} must be in (0, 1.5]")
            elif f.name == "expert_load_imbalance" and value < 1:
                problems.append(f"{f.name}: {value!r} must be >= 1 (busiest rank over mean)")
        if problems:
            raise UserError(problems)

    def to_dict(self) -> dict[str, float | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "parameters") -> CostParams:
        """Build from a mapping; unknown keys are an error naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(
                f"{source}: unknown cost parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        coerced: dict[str, Any] = {}
        for key, value in values.items():
            coerced[key] = bool(value) if key in SWITCHES else _number(value, source, key)
        return cls(**coerced)

    @classmethod
    def from_file(cls, path: str | Path) -> CostParams:
        """Read a calibration YAML written by ``servesim calibrate`` (or by ``to_file``)."""
        path = Path(path)
        data = read_yaml(path, "calibration file")
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise UserError(
                f"calibration file {str(path)!r}: expected a mapping with a 'params' mapping"
            )
        return cls.from_dict(data["params"], source=f"{path}: params")

    def to_file(self, path: str | Path, metadata: dict[str, Any]) -> None:
        """Write parameters and metadata (source file, GPU, date, software, fit errors)."""
        meta = {"format": CALIBRATION_FORMAT, "written_utc": _utc_now(), **metadata}
        doc = {"metadata": _plain(meta), "params": self.to_dict()}
        Path(path).write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def _number(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{source}.{key}: {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{source}.{key}: {value!r} is not a number") from None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Any) -> Any:
    """Convert numpy scalars and tuples so that yaml.safe_dump accepts them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
