"""The MoE sections of a measurement run: grouped expert GEMMs, then whole MoE steps.

The grouped-GEMM rows fit the cost model's grouped-GEMM efficiency curve
(``simulator/costmodel/moe.py``); the step and MoE-block rows are written for judging it,
never for fitting.
"""

from __future__ import annotations

from typing import Any

from simulator.calibrate.moe_kernels import GroupedMm, grouped_gemms
from simulator.calibrate.moe_plan import (
    SMOKE_MOE_MODEL,
    MoePlan,
    make_moe_plan,
    max_step_tokens,
)
from simulator.specs.model import ModelSpec

#: Seconds the MoE sections may take on top of a run's own budget, per size of run.
MOE_BUDGET_S = {"full": 420.0, "quick": 120.0, "smoke": 60.0}


def _model(name: str) -> ModelSpec:
    if name == SMOKE_MOE_MODEL.name:
        return SMOKE_MOE_MODEL
    from simulator.specs.catalog import load_model

    return load_model(name)


def measure_moe(session: Any, gmm: GroupedMm, gqa: bool, *, ceilings: bool = False) -> None:
    """Every MoE benchmark of one GPU: grouped GEMMs first, then steps of each step model.

    ``ceilings``: time the bf16 GEMM and copy ceilings first (a run of the MoE part alone
    then still says how fast this GPU is against the datasheet)."""
    from simulator.calibrate import kernels

    plan = make_moe_plan(session.plan.size)
    if ceilings:
        p = session.plan
        rows = kernels.ceilings(
            session.device,
            session.dtype,
            side=p.ceiling_gemm,
            copy_bytes=p.copy_bytes,
            warmup=p.warmup,
            iters=p.iters,
        )
        session.section("ceilings", rows)
    models = [_model(n) for n in plan.gemm_models]
    rows = grouped_gemms(models, plan, gmm, session.device, session.dtype)
    session.section("grouped gemm bf16", rows)
    from simulator.calibrate.moe_model import routing_rows

    routing = routing_rows(
        models,
        plan.routing_tokens,
        session.device,
        session.dtype,
        warmup=plan.warmup,
        iters=plan.iters,
    )
    session.section("moe routing", routing)
    if not gmm.uneven_groups and session.device.type == "cuda":
        session.say("moe steps: skipped (no grouped GEMM that takes uneven groups in a graph)")
        return
    for entry in plan.steps:
        _steps(session, plan, entry, gmm, gqa)


def _steps(session: Any, plan: MoePlan, entry, gmm: GroupedMm, gqa: bool) -> None:
    """Whole steps and the MoE block alone of one model (weights on the GPU meanwhile)."""
    from simulator.calibrate.moe_model import build, moe_layer_rows, moe_step_rows
    from simulator.calibrate.steps import time_steps
    from simulator.calibrate.timing import free_memory

    name = f"moe steps {entry.model}"
    if session.out_of_time():
        session.section(name, [])
        return
    try:
        spec, tokens = _model(entry.model), max_step_tokens(plan, entry)
        model = build(entry, spec, session.device, session.dtype, gmm, tokens)
    except RuntimeError as exc:  # out of memory: the other sections still run
        session.failed.append(name)
        session.say(f"{name}: not built: {type(exc).__name__}: {str(exc)[:200]}")
        free_memory(session.device)
        return
    count = model.parameter_count()
    session.writer.write(
        [
            {
                "kind": "model",
                "model": entry.model,
                "layers": model.spec.num_layers,
                "params": count,
                "weight_bytes": 2 * count,
            }
        ]
    )
    steps = time_steps(
        model,
        entry.grid,
        on_error=session.say,
        gqa=gqa,
        warmup=plan.warmup,
        iters=plan.iters,
        out_of_time=session.out_of_time,
    )
    session.section(name, moe_step_rows(model, steps))
    layer_rows = moe_layer_rows(
        model,
        plan.layer_tokens,
        warmup=plan.warmup,
        iters=plan.iters,
        out_of_time=session.out_of_time,
    )
    session.section(f"moe block {entry.model}", layer_rows)
    del model
    free_memory(session.device)
