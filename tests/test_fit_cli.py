"""``servesim fit``: memory plan, maximum sequences, and configurations that would fit."""

from __future__ import annotations

import argparse
import json

import pytest

from simulator.cli import fit
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu, load_model


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fit.register(parser.add_subparsers())
    return parser.parse_args(["fit", *argv])


def test_llama_70b_tp4_fits_and_counts_sequences(capsys):
    args = parse(
        [
            "--model",
            "llama-3.1-70b",
            "--gpu",
            "h100-sxm",
            "--tp",
            "4",
            "--context",
            "8192",
            "--json",
        ]
    )
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fits"] and report["gpus"] == 4
    assert report["kv_bytes_per_token"] == 327_680
    assert report["max_sequences"] == report["max_kv_tokens"] // 8192
    assert report["weights_per_gpu_gb"] == pytest.approx(141.1 / 4, rel=0.01)
    free = report["usable_gb"] - report["weights_per_gpu_gb"] - report["workspace_per_gpu_gb"]
    assert report["free_for_kv_per_gpu_gb"] == pytest.approx(free)
    # The sequences really fit: their KV cache is within the free memory of each GPU.
    kv_gb = report["max_sequences"] * report["kv_per_sequence_per_gpu_gb"]
    assert kv_gb <= report["free_for_kv_per_gpu_gb"]


def test_too_big_model_explains_and_suggests_configurations_that_fit():
    model, gpu = load_model("deepseek-v3"), load_gpu("h100-sxm")
    report = fit.fit_report(model, gpu, fit.FitOptions(context_tokens=4096))
    assert not report["fits"]
    assert "does not fit" in report["reason"]
    suggestions = report["suggestions"]
    assert suggestions
    assert [s["gpus"] for s in suggestions] == sorted(s["gpus"] for s in suggestions)
    for s in suggestions:
        opts = fit.FitOptions(
            tensor_parallel=s["tensor_parallel"],
            pipeline_parallel=s["pipeline_parallel"],
            expert_parallel=s["expert_parallel"],
            weight_dtype=s["weight_dtype"],
            kv_dtype=s["kv_dtype"],
            context_tokens=4096,
        )
        assert fit.fit_report(model, gpu, opts)["fits"]
        assert s["max_sequences"] >= 1
    text = fit.format_report(report)
    assert "does not fit" in text and "smallest configurations" in text


def test_weights_fit_but_context_does_not():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("rtx-4090")
    report = fit.fit_report(model, gpu, fit.FitOptions(context_tokens=131_072))
    assert not report["fits"]
    assert "KV cache" in report["reason"]


def test_quantised_weights_fit_a_consumer_gpu(capsys):
    args = parse(["--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--weight-dtype", "q4_k_m"])
    args.func(args)
    out = capsys.readouterr().out
    assert "fits:" in out and "q4_k_m" in out


def test_bad_layouts_name_the_flag():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100-sxm")
    with pytest.raises(UserError, match="--tp"):
        fit.fit_report(model, gpu, fit.FitOptions(tensor_parallel=3))
    with pytest.raises(UserError, match="--ep"):
        fit.fit_report(model, gpu, fit.FitOptions(expert_parallel=2))
