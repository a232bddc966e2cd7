"""Time whole graphed steps (and some eager ones) of a Llama-shaped model over a grid."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from simulator.calibrate.llama import LlamaModel, Step, fits, kv_bytes, norm_kind
from simulator.calibrate.plan import StepGrid
from simulator.calibrate.timing import capture, free_memory, is_cuda, time_region


def _free_bytes(device) -> float:
    import torch

    if is_cuda(device):
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    return float("inf")


def _row(kind: str, model: LlamaModel, step: Step) -> dict:
    name = model.spec.name
    if kind == "decode":
        return {
            "kind": "decode",
            "attn": "sdpa",
            "model": name,
            "batch": step.decode_count,
            "context": step.decode_context,
        }
    if kind == "prefill":
        return {
            "kind": "prefill",
            "model": name,
            "batch": step.prefill_count,
            "seq": step.prefill_new,
            "tokens": step.prefill_tokens,
        }
    return {
        "kind": "mixed",
        "attn": "sdpa",
        "model": name,
        "chunk": step.prefill_new,
        "chunk_context": step.prefill_cached,
        "decode_batch": step.decode_count,
        "decode_context": step.decode_context,
    }


def time_steps(
    model: LlamaModel,
    grid: StepGrid,
    *,
    gqa: bool,
    warmup: int,
    iters: int,
    out_of_time: Callable[[], bool],
    on_error: Callable[[str], None] = print,
) -> Iterator[dict]:
    """One row per step shape of ``grid``; stops early when ``out_of_time()``."""
    device = model.device
    work = [("decode", Step(decode_count=b, decode_context=c)) for b, c in grid.decode]
    work += [("prefill", Step(prefill_count=b, prefill_new=s)) for b, s in grid.prefill]
    work += [("mixed", Step(1, chunk, ctx, d, d_ctx)) for chunk, ctx, d, d_ctx in grid.mixed]
    eager = {("decode", Step(decode_count=b, decode_context=c)) for b, c in grid.eager_decode}
    eager |= {("prefill", Step(prefill_count=b, prefill_new=s)) for b, s in grid.eager_prefill}
    for kind, step in work:
        if out_of_time():
            return
        if step.context_tokens() > grid.max_kv_tokens or not fits(
            model.spec, step, _free_bytes(device)
        ):
            continue
        try:
            row = _time_one(model, kind, step, (kind, step) in eager, gqa, warmup, iters)
        except RuntimeError as exc:  # out of memory or a kernel missing: skip this shape
            on_error(f"{kind} {step}: {type(exc).__name__}: {str(exc)[:200]}")
            row = None
        free_memory(device)
        if row is not None:
            yield row


def _time_one(
    model: LlamaModel, kind: str, step: Step, eager: bool, gqa: bool, warmup: int, iters: int
) -> dict:
    """One step graphed (and eagerly when ``eager``): its JSON row."""
    import torch

    device = model.device
    held: dict = {}

    def body() -> None:
        held["out"] = model.forward(step, held["state"], gqa=gqa)

    with torch.inference_mode():
        held["state"] = model.prepare(step)
        replay = capture(body, device)
        t = time_region(replay, device, warmup=warmup, iters=iters)
        row = _row(kind, model, step) | t.fields() | {"norm": norm_kind()}
        if kind == "decode":
            row["kv_bytes"] = kv_bytes(model.spec, step)
        if eager:
            row["eager_ms"] = time_region(body, device, warmup=1, iters=max(3, iters // 2)).ms
        elif kind != "mixed":
            row["eager_ms"] = None
    held.clear()
    return row
