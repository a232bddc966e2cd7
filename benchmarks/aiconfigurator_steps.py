"""servesim's step prices against AIConfigurator's own assembly of the same kernel tables.

An engine calibration (``servesim calibrate --from-aiconfigurator``) turns NVIDIA
AIConfigurator's measured kernel tables into efficiencies and curves; the cost model then
assembles a step from them. AIConfigurator's SDK assembles the same tables into its own
estimate of a step (``EngineHandle.run_static_per_op``: the context phase of ``batch``
prompts of ``isl`` tokens per attention-data-parallel rank; ``predict_decode_latency``: one
generation step of ``batch`` sequences at ``isl`` tokens of context). Agreement checks the
import and the assembly (ops counted, shapes, collectives), not the engine: both rest on
the same measurements, so neither is judged against a serving row here.

Each case prices one step both ways and prints the two times and their difference.
Needs the ``engines`` extra (``pip install 'servesim[engines]'``); a minute or so.

    python benchmarks/aiconfigurator_steps.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.cli.main import main as servesim  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One step: the model (servesim catalog name and AIConfigurator's model id), the GPU
    (catalog name and AIConfigurator system), the layout and the step."""

    model: str
    aic_model: str
    gpu: str
    system: str
    engine: str
    version: str
    tp: int
    dp: int  # attention-data-parallel ranks (expert parallel over them)
    kind: str  # "prefill" or "decode"
    batch: int  # per rank
    tokens: int  # prompt tokens (prefill) or context tokens (decode)
    dtype: str = "fp8"  # weights and KV cache: per-tensor "fp8", or "bf16"

    @property
    def label(self) -> str:
        layout = f"DEP{self.dp}" if self.dp > 1 else f"TP{self.tp}"
        return (
            f"{self.model} {self.gpu} {self.engine} {self.version} {layout} {self.dtype} "
            f"{self.kind} {self.batch}x{self.tokens}"
        )


LLAMA_8B = ("llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B")
LLAMA_70B = ("llama-3.1-70b", "meta-llama/Meta-Llama-3.1-70B")
QWEN3_235B = ("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B")
QWEN3_30B = ("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B")
HOPPER = (("h100-sxm", "h100_sxm"), ("h200", "h200_sxm"))


def cases() -> list[Case]:
    out = []
    for gpu, system in HOPPER:
        trt = (gpu, system, "trtllm", "1.3.0rc20")
        for model, tp in ((LLAMA_8B, 1), (LLAMA_70B, 4), (LLAMA_70B, 8), (QWEN3_30B, 1)):
            out.append(Case(*model, *trt, tp, 1, "prefill", 4, 2048))
            out.append(Case(*model, *trt, tp, 1, "decode", 64, 2048))
        out.append(Case(*QWEN3_235B, *trt, 1, 8, "prefill", 1, 5000))
        out.append(Case(*QWEN3_235B, *trt, 1, 8, "prefill", 1, 2048))
        out.append(Case(*QWEN3_235B, *trt, 1, 8, "decode", 128, 4096))
    # the other engines and the A100, Llama-3.1-8B in bf16
    for engine in (("h100-sxm", "h100_sxm", "vllm", "0.24.0"),
                   ("h100-sxm", "h100_sxm", "sglang", "0.5.14"),
                   ("a100-sxm-80gb", "a100_sxm", "vllm", "0.14.0"),
                   ("a100-sxm-80gb", "a100_sxm", "trtllm", "1.0.0")):  # fmt: skip
        out.append(Case(*LLAMA_8B, *engine, 1, 1, "prefill", 4, 2048, "bf16"))
        out.append(Case(*LLAMA_8B, *engine, 1, 1, "decode", 64, 2048, "bf16"))
    return out


def aiconfigurator_ms(case: Case) -> float:
    """AIConfigurator's estimate of the step (ms): per-tensor FP8 weights and KV cache, or
    the model's own bf16."""
    from aiconfigurator_core.sdk.engine import EngineHandle

    fp8 = {"gemm_quant_mode", "moe_quant_mode", "kvcache_quant_mode", "fmha_quant_mode"}
    quant = dict.fromkeys(fp8, "fp8") if case.dtype == "fp8" else {}
    if quant and case.engine == "trtllm":
        # ModelOpt per-tensor checkpoints: static activation scales, as the profile prices
        quant["gemm_quant_mode"] = "fp8_static"
    handle = EngineHandle.compile(
        case.aic_model,
        case.system,
        case.engine,
        backend_version=case.version,
        tp_size=case.tp,
        attention_dp_size=case.dp,
        moe_tp_size=case.tp,
        moe_ep_size=case.dp,
        **quant,
    )
    if case.kind == "decode":
        return handle.predict_decode_latency(case.batch, case.tokens, 2)
    context, _ = handle.run_static_per_op(batch_size=case.batch, isl=case.tokens, osl=2)
    return sum(ms for _, ms, *_ in context)


def servesim_ms(case: Case) -> float:
    """servesim's price of the same step (ms) under the engine's profile and calibration."""
    ranks = case.dp * case.batch
    step = [f"--{case.kind}", f"{ranks}x{case.tokens}"]
    args = ["step", "--model", case.model, "--gpu", case.gpu, "--tp", str(case.tp)]
    args += ["--ep", str(case.dp), *step, "--weight-dtype", case.dtype, "--kv-dtype", case.dtype]
    args += ["--profile", case.engine, "--version", case.version, "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = servesim(args)
    if code:
        raise SystemExit(f"servesim step failed for {case.label}")
    return json.loads(out.getvalue())["step_ms"]


def main() -> int:
    try:
        import aiconfigurator_core  # noqa: F401
    except ImportError:
        print("needs aiconfigurator-core: pip install 'servesim[engines]'", file=sys.stderr)
        return 2
    diffs = []
    print(f"{'step':<76} {'AIC ms':>9} {'servesim':>9} {'diff':>7}")
    for case in cases():
        theirs, ours = aiconfigurator_ms(case), servesim_ms(case)
        diffs.append(abs(ours / theirs - 1) * 100)
        print(f"{case.label:<76} {theirs:9.2f} {ours:9.2f} {(ours / theirs - 1) * 100:+6.1f}%")
    diffs.sort()
    median, worst = diffs[len(diffs) // 2], diffs[-1]
    print(f"{len(diffs)} steps: median |diff| {median:.1f} %, worst {worst:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
