"""Engine profiles: what belongs to the serving runtime rather than to its kernels.

Kernel speed is measured, not a property of a profile: an engine's own kernel calibration
for the GPU and version (``kernel_engine`` names which, see ``pricing.py``), else the GPU's
PyTorch-reference calibration, else the datasheet. A profile holds only what the runtime
decides:

* ``cuda_graphs``: whether decode steps replay as CUDA graphs;
* ``step_overhead_s``: fixed time per step outside the GPU kernels (graph launch, input
  preparation, scheduling and sampling that the engine does not overlap with the GPU);
* ``fused_elementwise``: norms, residual adds, rotary and SiLU×up fused into few kernels
  that read and write each row once (``elementwise_traffic_factor`` = 1), the residual add
  inside the RMSNorm kernel (``residual_add_kernels`` = 0);
* ``fused_rope_kv_write``: the attention kernel applies rotary and writes the KV cache
  itself (``rope_kv_write_kernels`` = 0);
* ``fp8_static_activations``: per-tensor FP8 checkpoints run with their static activation
  scales, the producing kernel emitting FP8 (``fp8_static_activation_scales``);
* memory accounting: how the engine sizes its KV cache (``memory_accounting``), and
  whether it refuses to start when one ``max_model_len`` sequence does not fit;
* default engine settings: limits (``max_num_seqs``, ``max_num_batched_tokens``,
  ``kv_block_size``) and the scheduler (``batching``);
* ggml's own GGUF kernel ceilings for llama.cpp (fitted on our llama-bench runs).

``ideal`` is the pure roofline: every efficiency 1, every latency and overhead 0.

Use: ``params = load_profile(name).apply(params)``. Every number names its source in
``sources``.
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
    "kv_admission",
)


#: How an engine sizes its KV cache, with the scenario ``engine`` field that sets the
#: fraction: ``gpu_fraction`` (vLLM): the fraction of the whole GPU that holds weights,
#: activations and the KV cache; ``free_fraction`` (TensorRT-LLM): the fraction of the
#: memory left after weights and activations that the KV cache takes; ``static_fraction``
#: (SGLang): the fraction of the GPU that holds weights and the KV pool, activations living
#: in the rest.
MEMORY_KNOBS = {
    "gpu_fraction": "gpu_memory_utilization",
    "free_fraction": "kv_cache_free_gpu_mem_fraction",
    "static_fraction": "mem_fraction_static",
}


@dataclass(frozen=True)
class EngineProfile:
    """Runtime properties of one serving engine (see the module docstring)."""

    name: str
    description: str
    cuda_graphs: bool = True
    #: Replaces ``CostParams.step_overhead_s`` (s); None keeps the calibrated value.
    step_overhead_s: float | None = None
    #: Fused elementwise kernels: ``elementwise_traffic_factor`` becomes 1 and the residual
    #: add runs inside RMSNorm (``residual_add_kernels`` 0).
    fused_elementwise: bool = False
    #: Rotary and the KV-cache write inside the attention kernel (``rope_kv_write_kernels`` 0).
    fused_rope_kv_write: bool = False
    #: Per-tensor FP8 GEMMs fed FP8 activations under the checkpoint's static scale
    #: (``CostParams.fp8_static_activation_scales``).
    fp8_static_activations: bool = False
    #: Engine whose kernel calibrations price this runtime (``hardware_specs/calibration/
    #: engines/<kernel_engine>/``); None: the PyTorch-reference calibration.
    kernel_engine: str | None = None
    #: One of ``MEMORY_KNOBS``, and the engine's default for that fraction.
    memory_accounting: str = "gpu_fraction"
    memory_fraction: float = 0.9
    #: Defaults that depend on the tensor-parallel size ({tp: fraction}, the largest
    #: ``tp`` not above the replica's applies); empty: ``memory_fraction``.
    memory_fraction_by_tp: dict[int, float] = field(default_factory=dict)
    #: The engine refuses to start when one sequence of ``max_model_len`` tokens does not
    #: fit in its KV cache (vLLM); others start and reject such requests.
    requires_max_model_len_fit: bool = False
    #: Most tokens one call of the engine's fused MoE layer takes: a larger step runs in
    #: chunks one after another, so the layer's buffers hold at most this many tokens
    #: (``memory.fused_moe_workspace_bytes``); None: the whole step at once.
    moe_chunk_tokens: int | None = None
    #: Ceilings of the engine's own GGUF kernels (CostParams fields of the same names):
    #: FLOP and bytes per SM per clock cycle; None leaves them off.
    gguf_gemm_flop_per_sm_cycle: float | None = None
    gguf_gemm_pad_tokens: float | None = None
    gguf_gemv_flop_per_sm_cycle: float | None = None
    gguf_gemv_bytes_per_sm_cycle: float | None = None
    #: Pure roofline: all efficiencies 1, all latencies and overheads 0.
    roofline: bool = False
    #: GPU vendors the engine runs on (the catalog's ``vendor``); empty: any device.
    vendors: tuple[str, ...] = ()
    #: Default engine settings (scenario ``engine`` fields of ``LIMIT_FIELDS``): numbers,
    #: and the name of the batching policy the engine's scheduler follows.
    limits: dict[str, float | str | dict[str, object]] = field(default_factory=dict)
    #: Where every number above comes from.
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "step_overhead_s",
            "gguf_gemm_flop_per_sm_cycle",
            "gguf_gemm_pad_tokens",
            "gguf_gemv_flop_per_sm_cycle",
            "gguf_gemv_bytes_per_sm_cycle",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"profile {self.name}: {name} {value!r} must be >= 0")
        if self.memory_accounting not in MEMORY_KNOBS:
            problems.append(
                f"profile {self.name}: memory_accounting {self.memory_accounting!r}; "
                f"known: {', '.join(MEMORY_KNOBS)}"
            )
        if self.moe_chunk_tokens is not None and self.moe_chunk_tokens < 1:
            problems.append(f"profile {self.name}: moe_chunk_tokens must be >= 1")
        if not 0 < self.memory_fraction <= 1:
            problems.append(f"profile {self.name}: memory_fraction must be in (0, 1]")
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

    def default_memory_fraction(self, tensor_parallel: int = 1) -> float:
        """The engine's default memory fraction for a replica of ``tensor_parallel`` GPUs."""
        sizes = [tp for tp in sorted(self.memory_fraction_by_tp) if tp <= tensor_parallel]
        return self.memory_fraction_by_tp[sizes[-1]] if sizes else self.memory_fraction

    @property
    def memory_knob(self) -> str:
        """The scenario ``engine`` field that sets this engine's memory fraction."""
        return MEMORY_KNOBS[self.memory_accounting]

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
                changes["residual_add_kernels"] = 0.0
            if self.fused_rope_kv_write:
                changes["rope_kv_write_kernels"] = 0.0
            if self.fp8_static_activations:
                changes["fp8_static_activation_scales"] = True
            for name in (
                "gguf_gemm_flop_per_sm_cycle",
                "gguf_gemm_pad_tokens",
                "gguf_gemv_flop_per_sm_cycle",
                "gguf_gemv_bytes_per_sm_cycle",
            ):
                if getattr(self, name) is not None:
                    changes[name] = getattr(self, name)
        return dataclasses.replace(params, **{k: v for k, v in changes.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the profiles -----------------------------------------------------------------------------
#: Per-step time outside kernels of an engine whose scheduler overlaps the GPU: graph
#: launch, input copy and synchronisation, the CostParams default (params.py: 20 µs).
OVERLAPPED_STEP_OVERHEAD_S = 20e-6

#: llama.cpp's own GGUF kernels, FITTED on four rows of our llama-bench runs on the lent
#: H100 (hardware_specs/calibration/measurements/h100-sxm-llamacpp-*, llama.cpp build 149,
#: Llama-2-7B shapes in Q4_0: pp512, tg128, and 8 and 16 sequences decoding together;
#: ``python benchmarks/validation.py --fit`` repeats the fit). Per SM and clock cycle, so
#: they carry over between NVIDIA GPUs by ``GpuSpec.sm_cycles_per_s``. Every other row of
#: our runs, and every published row, is held out.
LLAMACPP_FITTED_GGUF_GEMM_FLOP_PER_SM_CYCLE = 726.0
LLAMACPP_FITTED_GGUF_GEMM_PAD_TOKENS = 70.7
LLAMACPP_FITTED_GGUF_GEMV_FLOP_PER_SM_CYCLE = 88.4
LLAMACPP_FITTED_GGUF_GEMV_BYTES_PER_SM_CYCLE = 9.80

_FUSED_SOURCE = (
    "fused_elementwise: engines fuse residual add into RMSNorm and SiLU×up into one kernel "
    "(vLLM fused_add_rms_norm / silu_and_mul, SGLang sgl-kernel, TensorRT-LLM plugins); "
    "measured reference-code factor 2.7-3.6 (hardware_specs/calibration/h100-sxm.yaml, "
    "h200.yaml) replaced by 1, and the residual add launches no kernel of its own "
    "(residual_add_kernels 0)"
)
_KERNELS_SOURCE = (
    "kernels: the engine's calibration for the GPU and version (GEMMs, attention, fused "
    "MoE, custom all-reduce measured with that engine: hardware_specs/calibration/engines/"
    "{engine}/, from NVIDIA AIConfigurator's tables); where none ships for a GPU, the "
    "PyTorch-reference calibration, then the datasheet defaults"
)
_FP8_SOURCE = (
    "FP8 checkpoints: every linear layer but the LM head is quantised, attention "
    "projections included ({who}); Meta's row-wise FP8 releases keep attention in bf16 "
    "(Llama 3 paper §6.2): set engine.attention_dtype: bf16 for those"
)

PROFILES: dict[str, EngineProfile] = {
    "vllm": EngineProfile(
        name="vllm",
        description="vLLM (V1 engine): CUDA graphs, fused kernels, chunked prefill; kernels "
        "measured with vLLM",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=True,
        kernel_engine="vllm",
        memory_accounting="gpu_fraction",
        memory_fraction=0.9,
        requires_max_model_len_fit=True,
        moe_chunk_tokens=16384,
        limits={
            "max_num_seqs": 256,
            "max_num_batched_tokens": 8192,
            "kv_block_size": 16,
            "gpu_memory_utilization": 0.9,
            "batching": "chunked",
        },
        sources=(
            _FUSED_SOURCE,
            _KERNELS_SOURCE.format(engine="vllm"),
            "step_overhead_s 20 µs: scheduling overlapped with the GPU (vLLM blog 2024-09-05, "
            "'vLLM v0.6.0: 2.7x throughput', multi-step scheduling and asynchronous output "
            "processing); the CostParams default graph-launch overhead",
            "memory: gpu_memory_utilization (default 0.9) is the fraction of the whole GPU "
            "that weights, peak activations and the KV cache share (vLLM engine arguments)",
            "moe_chunk_tokens 16384: the fused MoE layer runs a step of more tokens in "
            "chunks of VLLM_FUSED_MOE_CHUNK_SIZE (vllm/envs.py, 16 * 1024; 32768 in earlier "
            "releases)",
            "max_model_len: vLLM refuses to start when one sequence of max_model_len tokens "
            "does not fit its KV cache ('The model's max seq len ... is larger than the "
            "maximum number of tokens that can be stored in KV cache ... Try increasing "
            "gpu_memory_utilization or decreasing max_model_len', vllm/v1/core/"
            "kv_cache_utils.py)",
            _FP8_SOURCE.format(
                who="vLLM FP8 documentation: 'all Linear modules (except for "
                "the final lm_head)'; llm-compressor and ModelOpt checkpoints alike"
            ),
            "batching chunked: the V1 engine always chunks prefills into the token budget "
            "together with decodes (vllm/engine/arg_utils.py _set_default_args_v1)",
            "limits: max_num_seqs 256 and max_num_batched_tokens 8192 (vLLM V1 defaults: "
            "8192 / 1024 for the OpenAI server on GPUs of 70 GiB or more other than A100, "
            "2048 / 256 elsewhere, EngineArgs.get_batch_defaults), block_size 16",
        ),
    ),
    "sglang": EngineProfile(
        name="sglang",
        description="SGLang: CUDA graphs, fused kernels, overlap scheduler; kernels measured "
        "with SGLang",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=True,
        kernel_engine="sglang",
        memory_accounting="static_fraction",
        memory_fraction=0.88,
        memory_fraction_by_tp={1: 0.88, 2: 0.87, 4: 0.85, 8: 0.81, 16: 0.79},
        limits={"kv_block_size": 1, "batching": "continuous"},
        sources=(
            _FUSED_SOURCE,
            _KERNELS_SOURCE.format(engine="sglang"),
            "step_overhead_s 20 µs: SGLang's overlap scheduler runs CPU scheduling of step n+1 "
            "during GPU step n; the CostParams default graph-launch overhead",
            "memory: mem_fraction_static of the GPU holds weights and the KV pool, activations "
            "and CUDA graphs use the rest; default 0.88 at TP1, 0.87 TP2, 0.85 TP4, 0.81 TP8, "
            "0.79 TP16 (sglang python/sglang/srt/server_args.py, ServerArgs.__post_init__)",
            _FP8_SOURCE.format(
                who="SGLang loads the same FP8 checkpoints as vLLM (ModelOpt, "
                "llm-compressor) and quantises all linear layers with --quantization fp8"
            ),
            "limits: SGLang page_size default 1 (token-level radix-tree KV cache)",
            "batching continuous: SGLang runs prefill batches apart from decode batches "
            "unless --enable-mixed-chunk is set",
        ),
    ),
    "trtllm": EngineProfile(
        name="trtllm",
        description="TensorRT-LLM: C++ runtime, CUDA graphs, fused plugins, in-flight batching; "
        "kernels measured with TensorRT-LLM",
        cuda_graphs=True,
        step_overhead_s=OVERLAPPED_STEP_OVERHEAD_S,
        fused_elementwise=True,
        fused_rope_kv_write=True,
        fp8_static_activations=True,
        kernel_engine="trtllm",
        vendors=("nvidia",),
        memory_accounting="free_fraction",
        memory_fraction=0.9,
        limits={
            "max_num_seqs": 2048,
            "max_num_batched_tokens": 8192,
            "kv_block_size": 32,
            "batching": {"policy": "chunked", "split_prompts": False},
            "kv_admission": "whole_sequence",
        },
        sources=(
            _FUSED_SOURCE,
            _KERNELS_SOURCE.format(engine="trtllm"),
            "vendors nvidia: TensorRT-LLM builds on TensorRT and CUDA, NVIDIA GPUs only",
            "step_overhead_s 20 µs: C++ batch manager, the CostParams default graph-launch "
            "overhead",
            "fused_rope_kv_write: TensorRT-LLM's attention op takes the fused QKV, applies "
            "rotary and updates the KV cache itself (tensorrt_llm/_torch/attention_backend/"
            "trtllm.py: TrtllmAttention.support_fused_rope() and support_fused_qkv() True, "
            "update_kv_cache in the attention call), so rope_kv_write_kernels is 0",
            "fp8_static_activations: ModelOpt FP8 checkpoints carry a calibrated static "
            "input_scale for every linear layer; TensorRT-LLM's FP8 linear uses it "
            "(FP8QDQLinearMethod: static_quantize_e4m3_per_tensor, skipped when the input is "
            "already float8_e4m3fn), and the producers emit FP8 themselves: SwiGLU with "
            "quant_scale=down_proj.input_scale (_torch/modules/gated_mlp.py), the attention op "
            "with out_scale for o_proj, the all-reduce fused with residual, RMSNorm and FP8 "
            "quantisation (AllReduceFusionOp.RESIDUAL_RMS_NORM_QUANT_FP8); NVIDIA "
            "AIConfigurator prices such checkpoints as GEMMQuantMode.fp8_static, the fp8 GEMM "
            "less its compute-scale and scale-matrix kernels (sdk/models/helpers.py: per-"
            "tensor FP8 without a dynamic activation scheme is static)",
            "memory: the KV cache takes kv_cache_free_gpu_mem_fraction (default 0.9) of the "
            "memory left free after the weights and the activation buffers of max_num_tokens "
            "(TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction; 'Memory Usage of "
            "TensorRT-LLM' in its documentation); a sequence longer than the cache is "
            "rejected, the engine still runs",
            _FP8_SOURCE.format(
                who="ModelOpt, the quantiser of TensorRT-LLM checkpoints, "
                "disables '*lm_head*' and quantises every other linear layer"
            ),
            "moe workspace: the fused MoE layer takes the whole step, every attention-data-"
            "parallel rank's tokens at once (moe_max_num_tokens defaults to max_num_tokens x "
            "the data-parallel size, tensorrt_llm/_torch/model_config.py), with buffers for "
            "every token-expert pair (CutlassMoeFCRunner::getWorkspaceDeviceBufferSizes)",
            "batching chunked, split_prompts false: in-flight batching processes context-phase "
            "sequences together with generation-phase ones in one step of at most "
            "max_num_tokens tokens (TensorRT-LLM docs, 'Paged Attention, IFB, and Request "
            "Scheduling'); chunked context is off by default (LLM API enable_chunked_prefill "
            "False, tensorrt_llm/llmapi/llm_args.py; trtllm-bench's PyTorch flow keeps it off "
            "and raises max_num_tokens to max_isl + max_batch_size, bench/benchmark/utils/"
            "general.py get_settings), so a context request joins a step only whole, and under "
            "attention data parallelism on a rank with room for it under its own max_num_tokens. "
            "batching: chunked turns chunked context on (trtllm-bench of the TensorRT engine "
            "flow, release 0.x, ran with it on: bench/run/dataclasses.py "
            "ExecutorSettingsConfig.chunking True)",
            "limits: TensorRT-LLM build defaults max_batch_size 2048, max_num_tokens 8192, "
            "tokens_per_block 32",
            "kv_admission whole_sequence: the capacity scheduler's default policy "
            "GUARANTEED_NO_EVICT schedules a request only when the KV cache can hold it to "
            "its maximum length (TensorRT-LLM SchedulerConfig.capacity_scheduler_policy; "
            "trtllm-bench throughput --scheduler_policy default guaranteed_no_evict)",
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
            "gguf_gemv_flop_per_sm_cycle 88.4, gguf_gemv_bytes_per_sm_cycle 9.80: kernel "
            "ceilings FITTED on our own llama-bench runs on the lent H100 (Q4_0 pp512, tg128, "
            "8 and 16 sequences; marked fit in docs/validation.md); our other rows and the "
            "published scoreboard (published_benchmarks.md §8A) are held out. GGUF GEMMs run in "
            "int8 (MMVQ up to 8 tokens, MMQ above: activations quantised to q8_1), capped by "
            "SMs × clock",
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
