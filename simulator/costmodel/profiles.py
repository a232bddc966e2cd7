"""Engine profiles: what belongs to the serving runtime rather than to the GPU.

A GPU calibration (``hardware_specs/calibration/<gpu>.yaml``) describes the GPU as run by
PyTorch reference code captured in CUDA graphs: cuBLAS GEMMs, SDPA flash attention,
unfused elementwise kernels, NCCL all-reduce launched outside graphs. An engine profile
replaces the fields that depend on the runtime instead:

* ``cuda_graphs``: whether decode steps replay as CUDA graphs;
* ``step_overhead_s``: fixed time per step outside the GPU kernels (graph launch, input
  preparation, scheduling and sampling that the engine does not overlap with the GPU);
* ``fused_elementwise``: norms, residual adds, rotary and SiLU×up fused into few kernels
  that read and write each row once (``elementwise_traffic_factor`` = 1);
* ``attention_prefill_efficiency``: the engine's prefill attention kernel (FlashAttention-3
  class on Hopper) instead of PyTorch SDPA;
* ``allreduce_latency_s``: graphed custom all-reduce instead of NCCL launched per call;
* ``*_scale``: kernel quality relative to the calibrated GPU (1 = the same kernels);
* default engine settings: limits (``max_num_seqs``, ``max_num_batched_tokens``,
  ``kv_block_size``) and the scheduler (``batching``).

``ideal`` is the pure roofline: every efficiency 1, every latency and overhead 0.

Use: ``params = load_profile(name).apply(params)`` and ``cuda_graphs = profile.cuda_graphs``.
Every number names its source in ``sources``; ``docs/validation.md`` marks the published
rows a profile was fitted on as ``fit``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from simulator.costmodel.params import CostParams
from simulator.errors import UnknownNameError, UserError

#: CostParams fields that make the pure roofline.
_IDEAL_EFFICIENCIES = (
    "gemm_efficiency",
    "gemm_efficiency_8bit",
    "memory_bw_efficiency",
    "attention_prefill_efficiency",
    "attention_decode_bw_efficiency",
    "allreduce_bw_efficiency",
    "alltoall_bw_efficiency",
    "p2p_bw_efficiency",
    "offload_bw_efficiency",
    "host_memory_bw_efficiency",
    "host_gemm_efficiency",
)
_IDEAL_ZEROS = (
    "gemm_pad_tokens",
    "kernel_latency_s",
    "attention_kernel_latency_s",
    "attention_decode_pad_tokens",
    "step_overhead_s",
    "eager_launch_overhead_s",
    "allreduce_latency_s",
    "alltoall_latency_s",
    "p2p_latency_s",
    "dequant_overhead",
)

#: Limits a profile may set, with the scenario ``engine`` field each one fills.
LIMIT_FIELDS = (
    "max_num_seqs",
    "max_num_batched_tokens",
    "kv_block_size",
    "gpu_memory_utilization",
    "batching",
)


@dataclass(frozen=True)
class EngineProfile:
    """Runtime properties of one serving engine (see the module docstring)."""

    name: str
    description: str
    cuda_graphs: bool = True
    #: Replaces ``CostParams.step_overhead_s`` (s); None keeps the calibrated value.
    step_overhead_s: float | None = None
    #: Fused elementwise kernels: ``elementwise_traffic_factor`` becomes 1.
    fused_elementwise: bool = False
    #: Replaces ``attention_prefill_efficiency``; None keeps the calibrated SDPA value.
    attention_prefill_efficiency: float | None = None
    #: Replaces ``allreduce_latency_s`` (s); None keeps the calibrated NCCL value.
    allreduce_latency_s: float | None = None
    #: Multipliers on the calibrated GEMM efficiencies and bandwidth efficiency.
    gemm_efficiency_scale: float = 1.0
    memory_bw_efficiency_scale: float = 1.0
    #: Multiplier on the calibrated per-kernel latency (more or slower small kernels).
    kernel_latency_scale: float = 1.0
    #: Ceilings of the engine's own GGUF kernels (CostParams fields of the same names):
    #: FLOP and bytes per SM per clock cycle; None leaves them off.
    gguf_gemm_flop_per_sm_cycle: float | None = None
    gguf_gemm_pad_tokens: float | None = None
    gguf_gemv_flop_per_sm_cycle: float | None = None
    gguf_gemv_bytes_per_sm_cycle: float | None = None
    #: Pure roofline: all efficiencies 1, all latencies and overheads 0.
    roofline: bool = False
    #: Default engine settings (scenario ``engine`` fields of ``LIMIT_FIELDS``): numbers,
    #: and the name of the batching policy the engine's scheduler follows.
    limits: dict[str, float | str] = field(default_factory=dict)
    #: Where every number above comes from.
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        for name in ("gemm_efficiency_scale", "memory_bw_efficiency_scale", "kernel_latency_scale"):
            value = getattr(self, name)
            if not 0 < value <= 2:
                problems.append(f"profile {self.name}: {name} {value!r} must be in (0, 2]")
        for name in (
            "step_overhead_s",
            "allreduce_latency_s",
            "gguf_gemm_flop_per_sm_cycle",
            "gguf_gemm_pad_tokens",
            "gguf_gemv_flop_per_sm_cycle",
            "gguf_gemv_bytes_per_sm_cycle",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"profile {self.name}: {name} {value!r} must be >= 0")
        eff = self.attention_prefill_efficiency
        if eff is not None and not 0 < eff <= 1:
            problems.append(
                f"profile {self.name}: attention_prefill_efficiency {eff!r} not in (0, 1]"
            )
        unknown = sorted(set(self.limits) - set(LIMIT_FIELDS))
        if unknown:
            problems.append(
                f"profile {self.name}: unknown limit(s) {', '.join(unknown)}; "
                f"known: {', '.join(LIMIT_FIELDS)}"
            )
        if not self.sources:
            problems.append(f"profile {self.name}: no sources given")
        if problems:
            raise UserError(problems)

    def apply(self, params: CostParams) -> CostParams:
        """``params`` (a GPU calibration or the defaults) with this runtime's fields."""
        known = {f.name for f in dataclasses.fields(params)}
        changes: dict[str, Any] = {"cuda_graphs": self.cuda_graphs}
        if self.roofline:
            changes |= {n: 1.0 for n in _IDEAL_EFFICIENCIES}
            changes |= {n: 0.0 for n in _IDEAL_ZEROS}
            changes["elementwise_traffic_factor"] = 1.0
            changes["expert_load_imbalance"] = 1.0
        else:
            if self.step_overhead_s is not None:
                changes["step_overhead_s"] = self.step_overhead_s
            if self.fused_elementwise:
                changes["elementwise_traffic_factor"] = 1.0
            if self.attention_prefill_efficiency is not None:
                changes["attention_prefill_efficiency"] = self.attention_prefill_efficiency
            for name in (
                "allreduce_latency_s",
                "gguf_gemm_flop_per_sm_cycle",
                "gguf_gemm_pad_tokens",
                "gguf_gemv_flop_per_sm_cycle",
                "gguf_gemv_bytes_per_sm_cycle",
            ):
                if getattr(self, name) is not None:
                    changes[name] = getattr(self, name)
            for name in ("gemm_efficiency", "gemm_efficiency_8bit"):
                changes[name] = min(1.0, getattr(params, name) * self.gemm_efficiency_scale)
            changes["memory_bw_efficiency"] = min(
                1.0, params.memory_bw_efficiency * self.memory_bw_efficiency_scale
            )
            changes["kernel_latency_s"] = params.kernel_latency_s * self.kernel_latency_scale
        return dataclasses.replace(params, **{k: v for k, v in changes.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the profiles -----------------------------------------------------------------------------
#: FlashAttention-3 class prefill kernels on Hopper: reference sheet C3/C4 (FA3 paper,
#: arXiv 2407.08608: up to 75% of peak; suggested 0.60-0.75), lower end taken.
FA3_PREFILL_EFFICIENCY = 0.60
#: Graphed small all-reduce: reference sheet B4 (NCCL ring, 2 GPUs ~10 µs, nccl-tests#123;
#: NVLSTree with CUDA graphs ~6 µs, nccl#1259); the 2-GPU ring figure is used.
GRAPHED_ALLREDUCE_LATENCY_S = 10e-6
#: Per-step time outside kernels of an engine whose scheduler overlaps the GPU: graph
#: launch, input copy and synchronisation, the CostParams default (params.py: 20 µs).
OVERLAPPED_STEP_OVERHEAD_S = 20e-6
#: Kernel quality of a serving engine relative to the calibrated GPU, FITTED on published
#: serving rows (``python benchmarks/validation.py --fit`` repeats the fit; FIT_ROWS there
#: lists the rows, marked `fit` in docs/validation.md; every other published row is held
#: out). One lumped factor on the GEMM efficiencies per engine: it also absorbs what the
#: cost model does not separate (scheduling gaps, attention back end, activation
#: quantisation kernels), so it is a serving-level factor, not a GEMM measurement.
#:
#: TensorRT-LLM: fitted on the two MLPerf v4.0 H100 Offline rows (published_benchmarks.md
#: §2A: 8x H100 TP2x4 21,806 tok/s and 2x H100 TP2x1 5,539 tok/s). A sourced alternative,
#: TensorRT-LLM GEMMs at the best measured H100 FP8 matmul rate (reference sheet C1, MAMF
#: 70.9% of peak, i.e. 1.07x the calibrated 66.4%), over-predicted those rows by 39-41%.
TRTLLM_FITTED_GEMM_EFFICIENCY_SCALE = 0.620
#: vLLM 0.7.3: fitted on the MLPerf v5.0 Open row "vLLM 0.7.3, Llama-2-70B FP8, Offline"
#: (published_benchmarks.md §2D, Krai, 8x H200 as TP1 replicas behind an OpenAI-compatible
#: server, 16,229 tok/s). vLLM 0.6.4 served 1.34x more with FlashInfer attention than
#: without (§2D), so much of the factor is the attention back end and the V0 runtime.
VLLM_FITTED_GEMM_EFFICIENCY_SCALE = 0.471

#: llama.cpp's own GGUF kernels, FITTED on four rows of our llama-bench runs on the lent
#: H100 (hardware_specs/calibration/measurements/h100-sxm-llamacpp-*, llama.cpp build 149,
#: Llama-2-7B shapes in Q4_0: pp512, tg128, and 8 and 16 sequences decoding together;
#: ``python benchmarks/validation.py --fit`` repeats the fit). Per SM and clock cycle, so
#: they carry over between NVIDIA GPUs by ``GpuSpec.sm_cycles_per_s``: the §8A scoreboard's
#: prefill rates divided by SMs × clock agree within ±15% from the RTX 3090 to the H100,
#: while their tensor peaks differ 7x. Every other row, that scoreboard included, is held out.
LLAMACPP_FITTED_GGUF_GEMM_FLOP_PER_SM_CYCLE = 726.0
LLAMACPP_FITTED_GGUF_GEMM_PAD_TOKENS = 70.7
LLAMACPP_FITTED_GGUF_GEMV_FLOP_PER_SM_CYCLE = 88.4
LLAMACPP_FITTED_GGUF_GEMV_BYTES_PER_SM_CYCLE = 9.80

_FUSED_SOURCES = (
    "fused_elementwise: engines fuse residual add into RMSNorm and SiLU×up into one kernel "
    "(vLLM fused_add_rms_norm / silu_and_mul, SGLang sgl-kernel, TensorRT-LLM plugins); "
    "measured reference-code factor 2.7-3.6 (hardware_specs/calibration/h100-sxm.yaml, "
    "h200.yaml) replaced by 1",
    "attention_prefill_efficiency 0.60: reference sheet C3/C4, FlashAttention-3 on H100",
    "allreduce_latency_s 10 µs: reference sheet B4, graphed NCCL / custom all-reduce",
)

PROFILES: dict[str, EngineProfile] = {
    "vllm": EngineProfile(
        name="vllm",
        description="vLLM: CUDA graphs, fused kernels, FlashAttention-3 on Hopper; kernel quality "
        "fitted to vLLM 0.7.3",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=True,
        attention_prefill_efficiency=FA3_PREFILL_EFFICIENCY,
        allreduce_latency_s=GRAPHED_ALLREDUCE_LATENCY_S,
        gemm_efficiency_scale=VLLM_FITTED_GEMM_EFFICIENCY_SCALE,
        limits={
            "max_num_seqs": 256,
            "kv_block_size": 16,
            "gpu_memory_utilization": 0.9,
            "batching": "continuous",
        },
        sources=(
            *_FUSED_SOURCES,
            "gemm_efficiency_scale 0.471: FITTED on the published row 'vLLM 0.7.3, "
            "Llama-2-70B FP8, Offline' (published_benchmarks.md §2D, MLPerf v5.0 Open, Krai, "
            "8x H200; marked fit in docs/validation.md); held out: vLLM 0.6.4, 0.6.4 + "
            "FlashInfer and 0.7.3 Server. A lumped serving-level factor of vLLM 0.6/0.7 (V0 "
            "engine, default attention back end, dynamic FP8 activation quantisation); newer "
            "vLLM releases are not measured here",
            "step_overhead_s 20 µs: scheduling overlapped with the GPU (vLLM blog 2024-09-05, "
            "'vLLM v0.6.0: 2.7x throughput', multi-step scheduling and asynchronous output "
            "processing); the CostParams default graph-launch overhead",
            "batching continuous: the V0 scheduler of vLLM 0.6/0.7 prefills admitted prompts "
            "in steps of their own (chunked prefill is on by default only for contexts over "
            "32K)",
            "limits: vLLM engine-argument defaults max_num_seqs 256, block_size 16, "
            "gpu_memory_utilization 0.9",
        ),
    ),
    "sglang": EngineProfile(
        name="sglang",
        description="SGLang: CUDA graphs, fused kernels, FlashInfer/FA3, overlap scheduler",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=True,
        attention_prefill_efficiency=FA3_PREFILL_EFFICIENCY,
        allreduce_latency_s=GRAPHED_ALLREDUCE_LATENCY_S,
        limits={"kv_block_size": 1, "batching": "continuous"},
        sources=(
            *_FUSED_SOURCES,
            "step_overhead_s 20 µs: SGLang's overlap scheduler runs CPU scheduling of step n+1 "
            "during GPU step n; the CostParams default graph-launch overhead",
            "kernels: no source separates SGLang's kernel quality from the calibrated GPU's "
            "(scales 1); fitted on nothing: its published rows are held out",
            "limits: SGLang page_size default 1 (token-level radix-tree KV cache)",
            "batching continuous: SGLang runs prefill batches apart from decode batches "
            "unless --enable-mixed-chunk is set",
        ),
    ),
    "trtllm": EngineProfile(
        name="trtllm",
        description="TensorRT-LLM: C++ runtime, CUDA graphs, fused plugins, in-flight batching",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=True,
        attention_prefill_efficiency=FA3_PREFILL_EFFICIENCY,
        allreduce_latency_s=GRAPHED_ALLREDUCE_LATENCY_S,
        gemm_efficiency_scale=TRTLLM_FITTED_GEMM_EFFICIENCY_SCALE,
        limits={
            "max_num_seqs": 2048,
            "max_num_batched_tokens": 8192,
            "kv_block_size": 32,
            "batching": "chunked",
        },
        sources=(
            *_FUSED_SOURCES,
            "gemm_efficiency_scale 0.620: FITTED on the published rows 'v4.0 8x H100 TP2x4, "
            "batch 896, Offline' and 'v4.0 2x H100 TP2x1, Offline' (published_benchmarks.md "
            "§2A, MLPerf v4.0 Closed, NVIDIA; marked fit in docs/validation.md); held out: "
            "v4.0 H200, all v4.1 rows, Server rows and NIM (§2D). A lumped serving-level "
            "factor of TensorRT-LLM as of MLPerf v4.0, March 2024 (on the same 8 H100, v4.1 "
            "served 12% more and v5.0 44% more: later releases run faster than this profile)",
            "step_overhead_s 20 µs: C++ batch manager, the CostParams default graph-launch "
            "overhead",
            "batching chunked: in-flight batching processes context-phase sequences together "
            "with generation-phase ones in one step of at most max_num_tokens tokens "
            "(TensorRT-LLM docs, 'Paged Attention, IFB, and Request Scheduling'); the chunked "
            "policy also cuts the last prompt to fill the budget, as TensorRT-LLM does with "
            "chunked context enabled",
            "limits: TensorRT-LLM build defaults max_batch_size 2048, max_num_tokens 8192, "
            "tokens_per_block 32",
        ),
    ),
    "llama.cpp": EngineProfile(
        name="llama.cpp",
        description="llama.cpp (ggml CUDA backend): CUDA graphs for decode, its own quantized "
        "matrix-vector kernels, one sequence by default",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=False,
        gguf_gemm_flop_per_sm_cycle=LLAMACPP_FITTED_GGUF_GEMM_FLOP_PER_SM_CYCLE,
        gguf_gemm_pad_tokens=LLAMACPP_FITTED_GGUF_GEMM_PAD_TOKENS,
        gguf_gemv_flop_per_sm_cycle=LLAMACPP_FITTED_GGUF_GEMV_FLOP_PER_SM_CYCLE,
        gguf_gemv_bytes_per_sm_cycle=LLAMACPP_FITTED_GGUF_GEMV_BYTES_PER_SM_CYCLE,
        limits={"max_num_seqs": 1, "max_num_batched_tokens": 512},
        sources=(
            "gguf_gemm_flop_per_sm_cycle 726, gguf_gemm_pad_tokens 70.7, "
            "gguf_gemv_flop_per_sm_cycle 88.4, gguf_gemv_bytes_per_sm_cycle 9.80: FITTED on "
            "our llama-bench runs on the lent H100 (Q4_0 pp512, tg128, 8 and 16 sequences; "
            "marked fit in docs/validation.md); our other rows and the published scoreboard "
            "(published_benchmarks.md §8A) are held out. GGUF GEMMs run in int8 (MMVQ up to 8 "
            "tokens, MMQ above: activations quantised to q8_1), capped by SMs × clock",
            "gguf_gemv_max_tokens 8: MMVQ_MAX_BATCH_SIZE in ggml-cuda's mmvq.cuh",
            "other kernels: ggml's elementwise ops and per-kernel latency keep the calibrated "
            "PyTorch-reference values (unfused, one kernel per op)",
            "limits: llama-server --parallel 1 and llama-bench/llama-cli n_ubatch 512 defaults "
            "(published_benchmarks.md §8B states n_ubatch 2048 where set explicitly)",
        ),
    ),
    "hf-transformers": EngineProfile(
        name="hf-transformers",
        description="Hugging Face transformers generate(), eager PyTorch: no CUDA graphs, "
        "unfused kernels, NCCL all-reduce per call",
        cuda_graphs=False,
        limits={"max_num_seqs": 1},
        sources=(
            "cuda_graphs false: eager PyTorch; the eager launch cost per kernel is the "
            "calibrated eager_launch_overhead_s, fitted on the eager_ms rows of the GPU "
            "measurements (H100: 1B decode 9.6 ms eager vs 1.8 ms graphed)",
            "kernels: the calibration itself (PyTorch reference code: SDPA, unfused norms, "
            "rotary and SiLU×up)",
            "limits: one generate() call per request (no continuous batching)",
        ),
    ),
    "ideal": EngineProfile(
        name="ideal",
        description="Pure roofline: datasheet peaks, no latency or overhead (a lower bound)",
        roofline=True,
        sources=("definition: max(FLOPs / peak FLOP/s, bytes / peak bandwidth) per op",),
    ),
}


def list_profiles() -> list[str]:
    """Names of the engine profiles."""
    return sorted(PROFILES)


def load_profile(name: str) -> EngineProfile:
    """The profile called ``name``; an unknown name raises ``UnknownNameError`` listing them."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownNameError("engine profile", name, list_profiles()) from None
