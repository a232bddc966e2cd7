"""Drive a measurement run: the env row, then each benchmark in order of importance.

Rows are written to the JSON-lines file as soon as they are measured (a run cut short
keeps what it measured). A time budget skips the rest of a section once spent, so a run
ends inside the limit it was given; skipped work is counted in the summary.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TextIO

from simulator.calibrate.plan import (
    DEFAULT_GEMM_MODELS,
    DEFAULT_STEP_MODELS,
    QUICK_GEMM_MODELS,
    SMOKE_MODEL,
    MeasurePlan,
    make_plan,
)
from simulator.errors import UserError
from simulator.specs.model import ModelSpec


class Writer:
    """Append rows to a JSON-lines file (rank 0 only) and keep them for the summary."""

    def __init__(self, path: Path | None, log: TextIO) -> None:
        self.rows: list[dict] = []
        self.log = log
        self.handle = path.open("w") if path else None

    def write(self, rows: Iterable[dict]) -> int:
        n = 0
        for row in rows:
            self.rows.append(row)
            if self.handle:
                self.handle.write(json.dumps(row) + "\n")
                self.handle.flush()
            n += 1
        return n

    def close(self) -> None:
        if self.handle:
            self.handle.close()


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def env_row(device, size: str, gqa: bool, world: int) -> dict:
    """The device and software: GPU name, memory, SMs, driver, PyTorch, CUDA."""
    import torch

    from simulator.calibrate.timing import is_cuda

    row = {"kind": "env"}
    if is_cuda(device):
        props = torch.cuda.get_device_properties(device)
        row |= {"gpu": props.name, "mem": props.total_memory, "sms": props.multi_processor_count}
    else:
        row |= {"gpu": "cpu", "cpu": platform.processor() or platform.machine()}
    row |= {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "driver": _driver_version() if is_cuda(device) else None,
        "gqa_native": gqa,
        "measured_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "size": size,
        "servesim": _version("servesim"),
        "python": platform.python_version(),
    }
    if world > 1:
        row["tp"] = world
    return row


def _version(name: str) -> str:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _models(names: Iterable[str], size: str) -> list[ModelSpec]:
    if size == "smoke":
        return [SMOKE_MODEL]
    from simulator.specs.catalog import load_model

    return [load_model(n) for n in names]


class _Session:
    """What every section needs: device, plan, writer, clock and budget."""

    def __init__(self, device, dtype, the_plan: MeasurePlan, writer: Writer, budget_s: float):
        self.device, self.dtype, self.plan, self.writer = device, dtype, the_plan, writer
        self.budget_s = budget_s
        self.t_start = time.perf_counter()
        self.skipped: list[str] = []
        self.failed: list[str] = []
        self.quiet = False

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t_start

    def out_of_time(self) -> bool:
        return self.elapsed_s() > self.budget_s

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed_s():6.1f} s] {text}", file=self.writer.log, flush=True)

    def section(self, name: str, rows: Iterable[dict]) -> None:
        """Write the rows of one benchmark; skip it (or its rest) once the budget is spent."""
        n = 0
        if self.out_of_time():
            self.skipped.append(name)
            self.say(f"{name}: skipped (time budget)")
            return
        try:
            for row in rows:
                n += self.writer.write([row])
                if self.out_of_time():
                    self.skipped.append(name)
                    break
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
            # A kernel this PyTorch or GPU lacks must not lose the other sections.
            self.failed.append(name)
            self.say(f"{name}: stopped by {type(exc).__name__}: {exc}")
        self.say(f"{name}: {n} rows")


def measure(
    output: Path,
    *,
    size: str = "full",
    gemm_models: tuple[str, ...] | None = None,
    step_models: tuple[str, ...] | None = None,
    device_name: str | None = None,
    budget_s: float | None = None,
    only: str | None = None,
    log: TextIO = sys.stdout,
) -> list[dict]:
    """Run every benchmark of ``size`` and write the rows to ``output``; returns the rows.

    ``only="moe"``: only the MoE benchmarks (grouped expert GEMMs, MoE steps). Under
    ``torchrun`` with several processes only the all-reduce is measured."""
    try:
        import torch
    except ModuleNotFoundError:
        raise UserError(
            "--measure needs PyTorch: pip install 'servesim[torch]' (a CUDA build for GPUs)"
        ) from None
    from simulator.calibrate import collective, kernels
    from simulator.calibrate.moe_kernels import describe, detect_grouped_mm

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device_name is None:
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device: no CUDA device is visible to PyTorch")
    if device_name == "cpu" and size != "smoke":
        raise UserError(
            "--measure: no CUDA device; a CPU runs only the --smoke sizes (a test of the script)"
        )
    if world > 1 and device_name.startswith("cuda"):
        device_name = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    elif device_name == "cuda":
        device_name = f"cuda:{torch.cuda.current_device()}"
    device = torch.device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    the_plan = make_plan(size, tuple(step_models or DEFAULT_STEP_MODELS))
    if budget_s is None:
        budget_s = default_budget_s(size, only)
    dtype = torch.bfloat16
    torch.manual_seed(0)
    writer = Writer(output if rank == 0 else None, log)
    session = _Session(device, dtype, the_plan, writer, budget_s)
    session.quiet = rank != 0
    gqa = kernels.gqa_native(device, dtype)
    gmm = detect_grouped_mm(device, dtype) if world == 1 else None
    writer.write([env_row(device, size, gqa, world) | (describe(gmm) if gmm else {})])
    try:
        if world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            rows = collective.allreduce_rows(
                the_plan.allreduce_bytes,
                device,
                warmup=5,
                iters=max(the_plan.iters, 10),
                graphed=True,
            )
            session.section("allreduce", rows)
            dist.destroy_process_group()
        else:
            _one_gpu(session, gqa, gmm, gemm_models, only)
    finally:
        writer.close()
    if rank == 0:
        text = summary(writer.rows, session.elapsed_s(), session.skipped)
        if session.failed:
            text += "\nfailed sections (see log): " + ", ".join(session.failed)
        print(text, file=log, flush=True)
    return writer.rows


def _one_gpu(s: _Session, gqa: bool, gmm, gemm_models, only: str | None) -> None:
    """The dense benchmarks (unless ``only="moe"``), then the MoE ones."""
    from simulator.calibrate.moe_run import measure_moe

    size = s.plan.size
    if only != "moe":
        names = gemm_models or (DEFAULT_GEMM_MODELS if size == "full" else QUICK_GEMM_MODELS)
        _single_device(s, gqa, _models(names, size))
    measure_moe(s, gmm, gqa, ceilings=only == "moe")


def default_budget_s(size: str, only: str | None) -> float:
    """Seconds after which a run starts no new shape: the dense part, then the MoE part."""
    from simulator.calibrate.moe_run import MOE_BUDGET_S

    dense_s = 0.0 if only == "moe" else {"full": 480.0, "quick": 100.0}.get(size, 60.0)
    return dense_s + MOE_BUDGET_S[size]


def _single_device(s: _Session, gqa: bool, models: list[ModelSpec]) -> None:
    """Every benchmark of one GPU, most important first (the budget may cut the tail)."""
    from simulator.calibrate import kernels
    from simulator.calibrate.timing import free_memory

    p, dev, dt = s.plan, s.device, s.dtype
    wu, it = p.warmup, p.iters
    ceilings = kernels.ceilings(
        dev, dt, side=p.ceiling_gemm, copy_bytes=p.copy_bytes, warmup=wu, iters=it
    )
    s.section("ceilings", ceilings)
    free_memory(dev)
    s.section(
        "launch", kernels.launch_latency(dev, dt, kernels=p.launch_kernels, warmup=1, iters=5)
    )
    step_names = list(p.steps)
    _steps(s, gqa, step_names[0])
    s.section("gemm bf16", kernels.gemms(models, p.gemm_m, dev, dt, warmup=wu, iters=it, fp8=False))
    attn_model = models[min(1, len(models) - 1)]
    attention = kernels.attention(
        attn_model, p.attn_prefill, p.attn_decode, dev, dt, gqa=gqa, warmup=wu, iters=it
    )
    s.section("attention", attention)
    for name in step_names[1:]:
        _steps(s, gqa, name)
    if p.fp8_gemm_m:
        fp8 = kernels.gemms(models[1:3], p.fp8_gemm_m, dev, dt, warmup=wu, iters=it, fp8=True)
        s.section("gemm fp8", fp8)


def _steps(s: _Session, gqa: bool, name: str) -> None:
    """Whole steps of one model (its weights live on the GPU only meanwhile)."""
    from simulator.calibrate.llama import LlamaModel
    from simulator.calibrate.steps import time_steps
    from simulator.calibrate.timing import free_memory

    if s.out_of_time():
        s.section(f"steps {name}", [])
        return
    spec = _models([name], s.plan.size)[0]
    model = LlamaModel(spec, s.device, s.dtype)
    count = model.parameter_count()
    s.writer.write(
        [{"kind": "model", "model": spec.name, "params": count, "weight_bytes": 2 * count}]
    )
    rows = time_steps(
        model,
        s.plan.steps[name],
        on_error=s.say,
        gqa=gqa,
        warmup=s.plan.warmup,
        iters=s.plan.iters,
        out_of_time=s.out_of_time,
    )
    s.section(f"steps {spec.name}", rows)
    del model
    free_memory(s.device)


def summary(rows: list[dict], elapsed_s: float, skipped: list[str]) -> str:
    """A short table of the headline numbers of a run."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    env = next((r for r in rows if r["kind"] == "env"), {})
    lines = [
        f"measured {sum(counts.values())} rows in {elapsed_s:.0f} s on {env.get('gpu')} "
        f"(torch {env.get('torch')}, CUDA {env.get('cuda')}, driver {env.get('driver')})",
        "rows: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
    ]
    for r in rows:
        if r["kind"] == "ceiling":
            value = f"{r['tflops']:.0f} TFLOP/s" if "tflops" in r else f"{r['gbps']:.0f} GB/s"
            lines.append(f"  ceiling {r['what']:<10} {value}")
        elif r["kind"] == "launch":
            lines.append(f"  launch {r['mode']:<6} {r['us_per_kernel']:.2f} us/kernel")
    for r in rows:
        if r["kind"] == "decode" and r["batch"] in (1, 64) and r["context"] in (128, 1024, 2048):
            eager = f", eager {r['eager_ms']:.2f} ms" if r.get("eager_ms") else ""
            lines.append(
                f"  decode {r['model']} {r['batch']}x{r['context']}: {r['ms']:.3f} ms{eager}"
            )
    for r in rows:
        if r["kind"] == "allreduce" and r["bytes"] in (4096, 1 << 20, 1 << 26):
            lines.append(
                f"  allreduce {r['bytes']} B graph={r['graph']}: {r['ms'] * 1e3:.1f} us, "
                f"{r['busbw_gbps']:.0f} GB/s"
            )
    if skipped:
        lines.append("cut short by the time budget: " + ", ".join(skipped))
    return "\n".join(lines)
