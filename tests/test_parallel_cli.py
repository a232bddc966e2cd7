"""``servesim step`` with parallel layouts and placement flags."""

from __future__ import annotations

import argparse
import json

import pytest

from simulator.cli import step
from simulator.errors import UserError


def run_step(argv: list[str], capsys) -> dict:
    parser = argparse.ArgumentParser()
    step.register(parser.add_subparsers())
    args = parser.parse_args(["step", *argv, "--json"])
    assert args.func(args) == 0
    return json.loads(capsys.readouterr().out)


def test_step_reports_layout_and_formats(capsys):
    out = run_step(
        [
            "--model",
            "deepseek-v3",
            "--gpu",
            "h100-sxm",
            "--tp",
            "2",
            "--ep",
            "8",
            "--weight-dtype",
            "fp8",
            "--decode",
            "64x2000",
        ],
        capsys,
    )
    assert out["expert_parallel"] == 8 and out["tensor_parallel"] == 2
    assert out["weight_formats"].startswith("mlp fp8")
    assert any(op["name"] == "ep_alltoall" for op in out["ops"])


def test_tp_across_nodes_needs_and_uses_the_network(capsys):
    base = ["--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "16", "--decode", "8x1000"]
    with pytest.raises(UserError, match="--inter-node-link"):
        run_step([*base, "--gpus-per-node", "8"], capsys)
    inside = run_step(base, capsys)
    across = run_step(
        [*base, "--gpus-per-node", "8", "--inter-node-link", "infiniband-ndr"], capsys
    )
    assert across["step_ms"] > inside["step_ms"]


def test_pipeline_flag_and_missing_link(capsys):
    out = run_step(
        ["--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--pp", "2", "--prefill", "8x1024"],
        capsys,
    )
    assert out["pipeline_parallel"] == 2
    assert any(op["name"] == "pipeline_rounds" for op in out["ops"])
    with pytest.raises(UserError, match="--link: rtx-4090"):
        run_step(
            ["--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--tp", "2", "--decode", "1x10"],
            capsys,
        )


def test_step_says_when_the_layout_or_its_kv_cache_could_not_run(capsys):
    base = ["--model", "llama-3.1-8b", "--gpu", "h100-sxm"]
    assert run_step([*base, "--decode", "16x1000"], capsys)["fits_in_memory"]
    over = run_step([*base, "--decode", "256x100000"], capsys)
    assert not over["fits_in_memory"] and "tokens of KV cache" in over["memory_note"]
    big = run_step(["--model", "llama-3.1-405b", "--gpu", "l4", "--decode", "1x100"], capsys)
    assert not big["fits_in_memory"] and "does not fit" in big["memory_note"]


def test_step_runs_a_model_in_its_own_checkpoint_as_a_scenario_does(capsys):
    base = ["--model", "deepseek-v3", "--gpu", "h200", "--tp", "8", "--decode", "8x1000"]
    native = run_step(base, capsys)["weight_formats"]
    assert native.startswith("mlp fp8_block, attention fp8_block")
    assert run_step([*base, "--weight-dtype", "fp8"], capsys)["weight_formats"] == native
    assert run_step([*base, "--weight-dtype", "bf16"], capsys)["weight_formats"] == "bf16"
