"""Sanity checks of the cost model at both ends of the hardware range (prints tables).

1. Batch-1 decode on local hardware stays within the memory-bandwidth bound
   (tokens/s <= bandwidth / weight bytes read per token), and how close it gets; published
   llama.cpp numbers (published_benchmarks.md §8A) where they exist, for scale.
2. DeepSeek-V3 decode reads ~37B parameters' worth of weights per token at batch 1 and close
   to all experts at large batch (expected distinct experts E·(1-(1-k/E)^B) per MoE layer).
3. Parallel layouts of large models: step times by TP/PP/EP and placement.
4. Wide expert parallelism against published DeepEP and SGLang numbers.

    python benchmarks/local_hardware.py
"""

from __future__ import annotations

from simulator.costmodel import CostConfig, CostModel, CostParams, Parallelism, Precision, StepShape
from simulator.costmodel.comm import alltoall_s
from simulator.costmodel.offload import OffloadPlan
from simulator.specs.catalog import load_gpu, load_link, load_model
from simulator.specs.topology import NodeSpec, ReplicaPlacement

#: (model, device, weight dtype, published tokens/s or None, what was published)
LOCAL_CASES = (
    ("llama-3.1-8b", "rtx-4090", "q4_k_m", None, ""),
    ("llama-3.1-8b", "rtx-3090", "q4_k_m", None, ""),
    ("llama-3.1-8b", "rtx-5090", "q4_k_m", None, ""),
    ("llama-3.1-8b", "m2-ultra", "q4_k_m", None, ""),
    ("llama-3.1-8b", "m4-max", "q4_k_m", None, ""),
    ("llama-3.1-70b", "m2-ultra", "q4_k_m", None, ""),
    ("llama-3.1-8b", "cpu-server", "q4_k_m", None, ""),
    ("mistral-7b", "rtx-4090", "q4_0", 189.0, "Llama-2-7B Q4_0 tg128 (§8A)"),
    ("mistral-7b", "m2-ultra", "q4_0", 94.3, "Llama-2-7B Q4_0 tg128 (§8A)"),
    ("mistral-7b", "rtx-3090", "q4_0", 158.2, "Llama-2-7B Q4_0 tg128 (§8A)"),
)


def local_decode() -> None:
    print("1. batch-1 decode, 512 tokens of context (CUDA graphs / no host launch bound)")
    print(
        f"{'model':<15}{'device':<12}{'dtype':<8}{'GB/token':>9}{'bound tok/s':>12}"
        f"{'model tok/s':>12}{'of bound':>9}{'published':>10}  check"
    )
    for name, device, dtype, published, what in LOCAL_CASES:
        gpu = load_gpu(device)
        cm = CostModel(
            CostConfig(load_model(name), gpu, precision=Precision(weights=dtype, kv_cache="fp16"))
        )
        per_token = cm.weight_bytes_per_token(1)
        bound = gpu.memory_bw_bytes_per_s / per_token
        tok_s = 1.0 / float(cm.decode_run_s(1, 512, 1)[0])
        pub = f"{published:10.1f}" if published else f"{'-':>10}"
        ok = "ok" if tok_s <= bound else "ABOVE BOUND"
        print(
            f"{name:<15}{device:<12}{dtype:<8}{per_token / 1e9:>9.2f}{bound:>12.1f}"
            f"{tok_s:>12.1f}{tok_s / bound:>9.0%}{pub}  {ok} {what}"
        )
    m70 = load_model("llama-3.1-70b")
    gpu, host = load_gpu("rtx-4090"), load_gpu("cpu-server")
    print("\n   Llama-3.1-70B Q4_K_M on a 24 GB RTX 4090 with offload (batch 1):")
    for mode, layers in (("cpu", 36), ("cpu", 20), ("stream", 36)):
        plan = OffloadPlan(layers, mode, host, load_link("pcie4"))
        cm = CostModel(CostConfig(m70, gpu, precision=Precision(weights="q4_k_m"), offload=plan))
        tok_s = 1.0 / float(cm.decode_run_s(1, 512, 1)[0])
        print(f"     {mode:<7} {layers} layers on the GPU: {tok_s:6.2f} tokens/s")


def deepseek_experts() -> None:
    ds = load_model("deepseek-v3")
    cm = CostModel(CostConfig(ds, load_gpu("h100-sxm")))
    total = cm.weight_bytes_per_gpu() / 2
    print("\n2. DeepSeek-V3 weights read per decode step (bf16 bytes / 2 = parameters)")
    print(
        f"   total parameters in layers + LM head: {total / 1e9:.1f} B; "
        f"active per token (model spec): {ds.active_param_count() / 1e9:.1f} B"
    )
    op = next(o for o in cm.plan.gemms if o.is_expert)
    for batch in (1, 2, 8, 32, 128, 512, 4096):
        read = cm.weight_bytes_per_token(batch) / 2
        print(
            f"   batch {batch:5d}: experts touched per MoE layer {op.experts_touched(batch):6.1f}"
            f" of {op.experts}; parameters read {read / 1e9:7.1f} B ({read / total:5.1%} of all)"
        )


def parallel_layouts() -> None:
    print("\n3. step times of parallel layouts (decode 64 x 4096 / prefill 4 x 4096), ms")
    nvlink, ib = load_link("nvlink4"), load_link("infiniband-ndr")
    h100 = load_gpu("h100-sxm")
    decode = StepShape.uniform(decode_count=64, decode_context=4096)
    prefill = StepShape.uniform(prefill_count=4, prefill_new=4096)
    cases = [
        ("llama-3.1-70b", "bf16", 4, 1, 1, 8),
        ("llama-3.1-70b", "bf16", 8, 1, 1, 8),
        ("llama-3.1-70b", "bf16", 2, 2, 1, 8),
        ("llama-3.1-70b", "bf16", 16, 1, 1, 8),
        ("llama-3.1-405b", "fp8", 8, 1, 1, 8),
        ("llama-3.1-405b", "bf16", 8, 2, 1, 8),
        ("deepseek-v3", "fp8", 8, 2, 1, 8),
        ("deepseek-v3", "fp8", 2, 1, 8, 8),
        ("deepseek-v3", "fp8", 1, 1, 16, 8),
    ]
    print(f"   {'model':<15}{'dtype':<6}{'layout':<14}{'nodes':>6}{'decode':>10}{'prefill':>10}")
    for name, dtype, tp, pp, ep, per_node in cases:
        node = NodeSpec(per_node, nvlink, ib)
        placement = ReplicaPlacement(tp, pp, ep, node)
        cm = CostModel(
            CostConfig(
                load_model(name),
                h100,
                parallel=Parallelism(tensor=tp, pipeline=pp, expert=ep, placement=placement),
                precision=Precision(weights=dtype),
            )
        )
        layout = f"TP{tp}" + (f" PP{pp}" if pp > 1 else "") + (f" EP{ep}" if ep > 1 else "")
        print(
            f"   {name:<15}{dtype:<6}{layout:<14}{placement.nodes:>6}"
            f"{cm.step_time_s(decode) * 1e3:>10.2f}{cm.step_time_s(prefill) * 1e3:>10.1f}"
        )


def wide_expert_parallel() -> None:
    """Datasheet defaults against published wide-EP numbers (nothing fitted to them)."""
    print("\n4. DeepSeek-V3 wide expert parallelism vs published (H800/H100, InfiniBand NDR)")
    ds, h100 = load_model("deepseek-v3"), load_gpu("h100-sxm")
    nvlink, ib = load_link("nvlink4"), load_link("infiniband-ndr")
    node = NodeSpec(8, nvlink, ib)
    params = CostParams.defaults()
    # DeepEP README low-latency kernels: 128 tokens x 7168 hidden x top-8, FP8 dispatch and
    # BF16 combine, EP64 over CX7 400 Gb/s: dispatch 173 µs, combine 314 µs.
    rows = 128 * 8 * 7168
    dispatch = alltoall_s(rows * 1.0, 64, ib, params)
    combine = alltoall_s(rows * 2.0, 64, ib, params)
    print(
        f"   DeepEP EP64, 128 tokens: dispatch predicted {dispatch * 1e6:5.0f} µs (published 173),"
        f" combine {combine * 1e6:5.0f} µs (published 314)"
    )
    # SGLang large-scale EP blog (published_benchmarks.md §7A): decode on 9 nodes (72 H100),
    # EP72, 256 sequences per GPU, 2K input: 22,282 output tok/s per node (2,785 per GPU),
    # with two-batch overlap of communication and compute, which this model does not have.
    ep = 72
    cm = CostModel(
        CostConfig(
            ds,
            h100,
            parallel=Parallelism(expert=ep, placement=ReplicaPlacement(1, 1, ep, node)),
            precision=Precision(weights="fp8", attention="fp8"),
        )
    )
    batch = 256 * ep
    step_s = cm.step_time_s(StepShape.uniform(decode_count=batch, decode_context=2000))
    per_gpu = batch / step_s / ep
    print(
        f"   SGLang EP72 decode, 256 seq/GPU at 2K: predicted {per_gpu:6.0f} tok/s/GPU, "
        f"published 2,785 ({per_gpu / 2785 - 1:+.0%}; no compute/communication overlap modelled)"
    )


def main() -> None:
    local_decode()
    deepseek_experts()
    parallel_layouts()
    wide_expert_parallel()


if __name__ == "__main__":
    main()
