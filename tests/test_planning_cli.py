"""``servesim plan``: JSON keys, CSV of candidates, table text, and the Python API."""

from __future__ import annotations

import argparse
import json
import math

import pandas as pd
import pytest
import yaml

from simulator.cli import plan as plan_cli
from simulator.errors import UserError
from simulator.planning import plan

PLAN_FILE = {
    "name": "cli-plan",
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1},
    "engine": {"batching": "continuous", "max_num_seqs": 32, "max_num_batched_tokens": 2048},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 5},
        "prompt_tokens": {"distribution": "uniform", "min": 128, "max": 512},
        "output_tokens": {"distribution": "fixed", "value": 16},
        "num_requests": 200,
        "seed": 0,
    },
    "slo": {"ttft_ms": {"p99": 500}, "tpot_ms": {"p99": 40}},
    "plan": {
        "target_rate_per_s": 30,
        "replications": 1,
        "rate_tolerance": 0.1,
        "min_requests_per_replica": 300,
        "max_requests_per_replica": 2000,
    },
    "search": {
        "gpus": ["h100-sxm", "no-such-gpu"],
        "tensor_parallel": [1, 3],
        "gpu_hour_usd": {"h100-sxm": 2.5},
    },
}


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parser():
    parser = argparse.ArgumentParser()
    plan_cli.register(parser.add_subparsers())
    return parser


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan")
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN_FILE))
    csv = folder / "c.csv"
    args = _parser().parse_args(["plan", str(path), "--json", "--quiet", "--csv", str(csv)])
    return args, path, csv


def test_plan_json_and_csv(outputs, capsys):
    args, _, csv = outputs
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out, parse_constant=_no_constant)  # strict JSON
    assert result["max_rate_per_s"] > 0
    assert result["fewest_replicas"]["replicas"] >= 1
    assert result["costs"]["options"]
    costs = result["costs"]
    # The cost options price the target rate on the fewest-replica deployment.
    assert costs["gpus"] == result["fewest_replicas"]["gpus"]
    assert costs["mean_output_tokens"] == pytest.approx(16)
    for option in costs["options"]:
        assert option["output_tokens_per_month"] == pytest.approx(30 * 16 * 730 * 3600)
        # one cost per token: the whole monthly cost over the output tokens
        assert option["usd_per_million_output_tokens"] == pytest.approx(
            option["monthly_usd"] / option["output_tokens_per_month"] * 1e6
        )
    kinds = {o["kind"] for o in result["costs"]["options"]}
    assert {"cloud", "owned", "api"} <= kinds  # Llama-3.1-8B has API rows in prices.yaml
    candidates = result["candidates"]
    assert len(candidates) == 4
    for c in candidates:
        assert {
            "settings",
            "feasible",
            "reason",
            "cost_per_million_output_tokens_usd",
            "pareto",
        } <= set(c)
    feasible = [c for c in candidates if c["feasible"]]
    assert [c["settings"]["gpu"] for c in feasible] == ["h100-sxm"]
    reasons = " ".join(c["reason"] for c in candidates if not c["feasible"])
    assert "no-such-gpu" in reasons and "does not divide" in reasons
    checked = result["search"]["best_fewest_replicas"]
    assert checked["target_rate_per_s"] == 30 and checked["replicas"] >= 1
    table = pd.read_csv(csv)
    assert len(table) == 4 and "cost_per_million_output_tokens_usd" in table


@pytest.fixture(scope="module")
def planned(outputs):
    return plan(outputs[1])


def test_planned_rented_cost_per_token_is_what_simulate_reports(outputs, planned):
    from simulator.api import run
    from simulator.planning import load_plan_file

    _, path, _ = outputs
    costs = planned.to_dict()["costs"]
    single = next(
        o
        for o in costs["options"]
        if o["kind"] == "cloud" and o["breakdown"]["instances"] == o["replicas"]
    )
    loaded = load_plan_file(path).scenario
    price = single["breakdown"]["price_per_gpu_hour"]
    scenario = (
        loaded.with_replicas(costs["replicas"])
        .with_rate(costs["rate_per_s"])
        .with_num_requests(3000)
    )
    scenario = scenario.replace(cost=scenario.cost.replace(gpu_hour_usd=price))
    simulated = run(scenario).summary["cost_per_million_output_tokens_usd"]
    assert single["usd_per_million_output_tokens"] == pytest.approx(simulated, rel=0.05)


def test_plan_table_text(outputs, capsys):
    args, path, _ = outputs
    args = _parser().parse_args(["plan", str(path), "--quiet", "--set", "search.gpus=[h100-sxm]"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "maximum sustainable rate" in text and "fewest replicas for 30 req/s" in text
    assert "configuration search: 2 points" in text


def test_plan_bad_input_is_a_user_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**PLAN_FILE, "plan": {"replications": 0}}))
    args = _parser().parse_args(["plan", str(path), "--quiet"])
    with pytest.raises(UserError, match=r"plan\.replications"):
        args.func(args)


def test_python_api_plan_from_path(planned):
    result = planned
    assert result.max_rate_per_s == result.rate.max_rate_per_s > 0
    assert result.search is not None and result.search.best.settings["gpu"] == "h100-sxm"
    frame = result.search.to_frame()
    assert len(frame) == 4 and {"gpu", "tensor_parallel", "feasible", "pareto"} <= set(frame)


def test_json_output_has_no_nan_or_infinity():
    """What --json prints is strict JSON: NaN and infinities become null, numpy numbers
    plain ones, through nested dicts, lists and tuples."""
    import numpy as np

    from simulator.metrics.summary import jsonable

    value = {"a": math.nan, "b": [np.float64(math.inf), (np.int64(3), -math.inf)], 4: 1.5}
    text = json.dumps(jsonable(value), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [None, [3, None]], "4": 1.5}
