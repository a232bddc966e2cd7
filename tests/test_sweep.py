"""Sweeps: grid parsing, cache by scenario hash, and the same numbers on every executor."""

from __future__ import annotations

import argparse
import importlib

import pandas as pd
import pytest

from simulator.config.loader import scenario_from_dict
from simulator.errors import UserError
from simulator.planning import parse_grid, scenario_hash, sweep

SWEEP_BASE = {
    "name": "sweep-test",
    "model": "llama-3.2-1b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1},
    "engine": {"batching": "continuous", "max_num_seqs": 32, "max_num_batched_tokens": 2048},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 20},
        "prompt_tokens": {"distribution": "uniform", "min": 32, "max": 256},
        "output_tokens": {"distribution": "fixed", "value": 16},
        "num_requests": 120,
        "seed": 0,
    },
    "slo": {"ttft_ms": {"p99": 400}},
    "cost": {"gpu_hour_usd": 2.0},
}
GRID = {"workload.arrival.rate_per_s": [10, 40], "engine.max_num_seqs": [8, 32]}


@pytest.fixture(scope="module")
def scenario():
    return scenario_from_dict(SWEEP_BASE)


@pytest.fixture(scope="module")
def local(scenario):
    return sweep(scenario, GRID)


def test_parse_grid_reads_yaml_values():
    grid = parse_grid(["hardware.gpu=h100-sxm,h200", "engine.max_num_seqs=64,128"])
    assert grid == {"hardware.gpu": ["h100-sxm", "h200"], "engine.max_num_seqs": [64, 128]}
    for bad in (["nokey"], ["a.b="], ["a=1", "a=2"], ["a=[1, 2"]):
        with pytest.raises(UserError):
            parse_grid(bad)
    # values with commas of their own: one YAML list
    grid = parse_grid(["slo.ttft_ms=[{p99: 500}, {p99: 1000}]", "e.sizes=[[1, 2], [4]]"])
    assert grid == {"slo.ttft_ms": [{"p99": 500}, {"p99": 1000}], "e.sizes": [[1, 2], [4]]}


def test_rows_follow_the_grid(local):
    assert len(local) == 4
    assert list(local["workload.arrival.rate_per_s"]) == [10, 10, 40, 40]
    assert list(local["engine.max_num_seqs"]) == [8, 32, 8, 32]
    assert (local["error"] == "").all()
    assert {"throughput_rps", "ttft_ms.p99", "slo.attainment", "saturated"} <= set(local)
    # More load, more throughput: the rows are the points they say they are.
    assert local["throughput_rps"].iloc[2] > local["throughput_rps"].iloc[0]


def test_bad_grid_key_is_reported_before_running(scenario):
    with pytest.raises(UserError) as err:
        sweep(scenario, {"engine.max_num_seqz": [1, 2]})
    assert "engine.max_num_seqz" in str(err.value)
    with pytest.raises(UserError) as err:  # a point's error names the scenario file
        sweep(scenario, {"engine.max_num_seqs": [0]}, source="s.yaml")
    assert "grid point 0 (engine.max_num_seqs=0): s.yaml: engine.max_num_seqs" in str(err.value)


def test_point_that_cannot_run_records_its_error(scenario):
    frame = sweep(scenario, {"model": ["llama-3.2-1b", "llama-3.1-405b"]})
    assert frame["error"].iloc[0] == ""
    assert "does not fit" in frame["error"].iloc[1]


def test_hash_depends_on_content_only(scenario):
    same = scenario.replace(workload=scenario.workload.replace(seed=scenario.workload.seed))
    assert scenario_hash(same) == scenario_hash(scenario)
    other = scenario.with_seed_offset(1)
    assert scenario_hash(other) != scenario_hash(scenario)


def test_cache_skips_finished_points(scenario, local, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = sweep(scenario, {"workload.arrival.rate_per_s": [10]}, cache_dir=cache)
    assert first.attrs == {"simulated": 1, "cached": 0}
    assert len(list(cache.glob("*.json"))) == 1
    # An "interrupted" sweep left one point; the full grid simulates only the other three.
    calls = []
    sweep_module = importlib.import_module("simulator.planning.sweep")
    real = sweep_module.run_point
    monkeypatch.setattr(sweep_module, "run_point", lambda p: calls.append(1) or real(p))
    full = sweep(scenario, GRID, cache_dir=cache)
    assert full.attrs == {"simulated": 3, "cached": 1} and len(calls) == 3
    again = sweep(scenario, GRID, cache_dir=cache)
    assert again.attrs == {"simulated": 0, "cached": 4} and len(calls) == 3
    pd.testing.assert_frame_equal(again, local)
    pd.testing.assert_frame_equal(full, local)


def test_process_pool_gives_identical_numbers(scenario, local):
    pooled = sweep(scenario, GRID, workers=2)
    pd.testing.assert_frame_equal(pooled, local)


def test_dask_local_cluster_gives_identical_numbers(scenario, local):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = sweep(scenario, GRID, dask_scheduler=client)
        by_address = sweep(
            scenario, {"engine.max_num_seqs": [8]}, dask_scheduler=cluster.scheduler_address
        )
    pd.testing.assert_frame_equal(on_dask, local)
    pd.testing.assert_frame_equal(by_address, sweep(scenario, {"engine.max_num_seqs": [8]}))


def test_sweep_command_writes_csv(tmp_path):
    import yaml

    from simulator.cli import sweep as sweep_cli

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SWEEP_BASE))
    parser = argparse.ArgumentParser()
    sweep_cli.register(parser.add_subparsers())
    out = tmp_path / "out" / "r.csv"
    args = parser.parse_args(
        ["sweep", str(path), "--grid", "engine.max_num_seqs=8,32", "-o", str(out), "--quiet"]
    )
    assert args.func(args) == 0
    table = pd.read_csv(out)
    assert list(table["engine.max_num_seqs"]) == [8, 32]
    assert len(list((out.parent / ".servesim-cache").glob("*.json"))) == 2


def test_output_format_checked_before_running(tmp_path):
    from simulator.planning.sweep import check_output

    check_output(tmp_path / "r.csv")
    with pytest.raises(UserError, match="unknown extension"):
        check_output(tmp_path / "r.txt")
