"""Argument definitions shared by the commands that take a scenario."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator


def add_command(subparsers, name: str, *, help: str, description: str, examples: str):
    """A subcommand parser whose help ends with ``examples`` as written."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_scenario_arguments(
    parser: argparse.ArgumentParser,
    scenario_help: str = "scenario YAML file",
    set_help: str = "override a scenario value by dotted key (repeatable)",
) -> None:
    """The scenario file and its ``--set dotted.key=value`` overrides."""
    parser.add_argument("scenario", help=scenario_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=set_help,
    )


def add_replica_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, GPU and the parallel layout of one replica (``step`` and ``fit``)."""
    parser.add_argument("--model", required=True, help="catalog model name or config.json path")
    parser.add_argument("--gpu", required=True, help="catalog GPU name or YAML path")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel GPUs (default 1)")
    parser.add_argument("--pp", type=int, default=1, help="pipeline stages (default 1)")
    parser.add_argument("--ep", type=int, default=1, help="expert-parallel groups, MoE (default 1)")


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-long-run``: run even when the estimated run time is over the budget."""
    parser.add_argument(
        "--allow-long-run",
        action="store_true",
        help="run even when the run is estimated to take longer than the budget "
        "(simulator.workload.budget.BUDGET_S, 10 minutes)",
    )


def check_run_budget(
    scenario,
    source: str,
    *,
    runs: int = 1,
    allow_long_run: bool = False,
    fleet_requests: float = 0.0,
) -> None:
    """Refuse, before any work, a scenario whose arrivals run past the simulated span,
    that expects no request, or whose estimated run time is over the budget (unless
    allowed); one ``UserError`` line each, naming the scenario file. ``fleet_requests``:
    what a plan's fleets simulate besides the scenario's own runs, per replication
    (``planning.work.fleet_requests``)."""
    from dataclasses import replace

    from simulator.errors import UserError
    from simulator.workload.budget import budget_problems, estimate_work

    estimate = estimate_work(
        scenario.workload.model_dump(),
        max_batched_tokens=scenario.engine.max_num_batched_tokens,
        base_dir=scenario.base_dir,
    )
    if estimate is not None and fleet_requests and estimate.requests:
        # the fleets' requests are the scenario's, in the same proportion of steps
        scale = 1 + fleet_requests / estimate.requests
        estimate = replace(
            estimate,
            requests=estimate.requests * scale,
            sequence_steps=estimate.sequence_steps * scale,
            task="simulation with the fleets plan.target_rate_per_s needs (a lower target or "
            "plan.min_requests_per_replica shortens it)",
        )
    problems = budget_problems(estimate, runs=runs, allow_long_run=allow_long_run)
    if problems:
        raise UserError([f"{source}: {p}" for p in problems])


def available_cores() -> int:
    """Processors this process may run on (its CPU affinity where the system says)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_weight_dtype_argument(parser: argparse.ArgumentParser, examples: str) -> None:
    """``--weight-dtype``, defaulting to the model's own checkpoint as a scenario does."""
    parser.add_argument(
        "--weight-dtype",
        default=None,
        help=f"weight format ({examples}); default: the model's own checkpoint, bf16 unless it "
        "ships quantised (DeepSeek-V3/R1 block-scaled FP8, gpt-oss MXFP4 experts); fp8 on a "
        "block-scaled FP8 model means that checkpoint",
    )


def weight_format(model, given: str | None) -> str:
    """The weight format a replica of ``model`` runs for ``--weight-dtype`` ``given`` (None:
    not given), by the checkpoint convention of scenarios (``quant.checkpoint_dtype``)."""
    from simulator.costmodel.quant import checkpoint_dtype

    return checkpoint_dtype(model, given or "bf16", explicit=given is not None)


@contextlib.contextmanager
def naming_file(source: str) -> Iterator[None]:
    """Errors found while a scenario file runs (building its replicas, say) name the file,
    as the errors found when loading it do."""
    from simulator.errors import UserError

    try:
        yield
    except UserError as exc:
        prefix = f"{source}: "
        messages = [m if m.startswith(prefix) else prefix + m for m in exc.messages]
        raise UserError(messages) from None
