"""Sweeps given careless or hostile input: a bad grid, scheduler address or cache is one
clear error before anything runs; a damaged cache entry is simulated again; a sweep whose
every point failed exits with status 2 after writing its table."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pandas as pd
import pytest

from simulator.cli.main import main
from simulator.config.loader import scenario_from_dict
from simulator.errors import UserError
from simulator.planning import sweep
from tests.test_hostile_inputs import SCENARIO as TINY_SCENARIO

SCENARIO = TINY_SCENARIO + "plan: {target_rate_per_s: 40}\n"
TRACE_SCENARIO = """\
model: llama-3.2-1b
workload: {trace: traces/missing.csv, format: servesim}
"""
sweep_module = importlib.import_module("simulator.planning.sweep")


@pytest.fixture
def scenario_file(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture
def scenario(scenario_file):
    import yaml

    return scenario_from_dict(yaml.safe_load(SCENARIO), base_dir=scenario_file.parent)


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if any point is simulated."""

    def refuse(payload):
        raise AssertionError("a point was simulated")

    monkeypatch.setattr(sweep_module, "run_point", refuse)


def error_line(argv: list[str], capsys) -> str:
    """The one error line of a command that must exit with status 2."""
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("servesim")]
    assert len(lines) == 1 and lines[0].startswith("servesim: error: "), lines
    return lines[0]


@pytest.mark.parametrize("address", ["not an address", "foo://127.0.0.1:8786", "", "  "])
def test_malformed_dask_scheduler_is_one_error(address, scenario_file, tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "sw" / "d.csv"
    argv = ["sweep", str(scenario_file), "--grid", "workload.seed=21,22", "-o", str(out)]
    line = error_line([*argv, "--quiet", "--dask-scheduler", address], capsys)
    assert "--dask-scheduler" in line and "tcp://host:8786" in line
    assert not out.exists()


def test_malformed_dask_scheduler_from_python(scenario, no_simulation):
    pytest.importorskip("distributed")
    for address in ("garbage", "", 8786):
        with pytest.raises(UserError, match=r"--dask-scheduler .*tcp://host:8786"):
            sweep(scenario, {"workload.seed": [1]}, dask_scheduler=address)


def test_cache_that_is_a_file_is_one_error(scenario_file, scenario, tmp_path, capsys):
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / ".servesim-cache").touch()
    out = tmp_path / "c1" / "r.csv"
    argv = ["sweep", str(scenario_file), "--grid", "workload.seed=1,2", "-o", str(out)]
    line = error_line([*argv, "--quiet"], capsys)
    assert ".servesim-cache" in line and "must be a folder" in line
    assert not out.exists()
    with pytest.raises(UserError, match="must be a folder"):
        sweep(scenario, {"workload.seed": [1]}, cache_dir=tmp_path / "c1" / ".servesim-cache")


@pytest.mark.parametrize(
    "damaged",
    [
        "[]",
        "{}",
        "null",
        '{"error": "", "summary": "abc"}',
        '{"error": "", "summary": {}}',
        "[" * 10**5,
    ],
)
def test_cache_entry_of_the_wrong_shape_is_simulated_again(damaged, scenario, tmp_path):
    grid = {"workload.seed": [1]}
    first = sweep(scenario, grid, cache_dir=tmp_path)
    [entry] = tmp_path.glob("*.json")
    good = entry.read_text()
    entry.write_text(damaged)
    again = sweep(scenario, grid, cache_dir=tmp_path)
    assert again.attrs == {"simulated": 1, "cached": 0}
    assert entry.read_text() == good
    pd.testing.assert_frame_equal(again, first)


def test_cache_entry_that_is_a_folder_is_one_error(scenario, tmp_path, monkeypatch):
    grid = {"workload.seed": [1]}
    sweep(scenario, grid, cache_dir=tmp_path)
    [entry] = tmp_path.glob("*.json")
    entry.unlink()
    entry.mkdir()
    monkeypatch.setattr(sweep_module, "run_point", lambda p: pytest.fail("simulated"))
    with pytest.raises(UserError, match=rf"{entry.name[-20:]}.* is not a regular file"):
        sweep(scenario, grid, cache_dir=tmp_path)


def test_every_point_failed_exits_2_after_writing_the_table(tmp_path, capsys):
    path = tmp_path / "trace.yaml"
    path.write_text(TRACE_SCENARIO)
    out = tmp_path / "t" / "r.csv"
    grid = "workload.trace=nope1.csv,nope2.csv"
    line = error_line(["sweep", str(path), "--grid", grid, "-o", str(out), "--quiet"], capsys)
    assert "all 2 points failed" in line and "nope1.csv" in line
    table = pd.read_csv(out)
    assert len(table) == 2 and table["error"].str.contains("does not exist").all()


def test_some_points_failed_exits_0(scenario_file, tmp_path, capsys):
    out = tmp_path / "r.csv"
    grid = "model=llama-3.2-1b,llama-3.1-405b"
    assert main(["sweep", str(scenario_file), "--grid", grid, "-o", str(out), "--quiet"]) == 0
    assert "1 failed" in capsys.readouterr().err
    assert list(pd.read_csv(out)["error"].isna()) == [True, False]


def test_a_key_both_set_and_gridded_is_refused(scenario_file, tmp_path, capsys):
    argv = ["sweep", str(scenario_file), "--set", "workload.seed=7", "--grid", "workload.seed=1,2"]
    line = error_line([*argv, "-o", str(tmp_path / "r.csv"), "--quiet"], capsys)
    assert "--set workload.seed: also given by --grid" in line
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ({"workload.arrival.rate_per_s": "15"}, "rate_per_s: '15' is a single value"),
        ({"hardware.gpu": "l4"}, "hardware.gpu: 'l4' is a single value"),
        ({"workload.seed": 3}, "workload.seed: 3 is a single value"),
        ({"workload.seed": {1, 2}}, "workload.seed: not a list of values"),
        ({"workload.seed": []}, "workload.seed: no values"),
        (5, "grid: not a mapping"),
        (["workload.seed"], "grid: not a mapping"),
        ((k for k in ["workload.seed"]), "grid: not a mapping"),
        ({1: [2]}, "--grid key 1: not a string"),
        ({"workload..seed": [1]}, "expected a dotted scenario key"),
        ({}, "give at least one"),
    ],
)
def test_grid_of_the_wrong_shape_is_one_error(grid, expected, scenario, no_simulation):
    with pytest.raises(UserError, match=re.escape(expected)):
        sweep(scenario, grid)


def test_grid_takes_any_ordered_values(scenario):
    np = pytest.importorskip("numpy")
    frame = sweep(scenario, {"workload.seed": np.array([1, 2]), "engine.max_num_seqs": (8,)})
    assert list(frame["workload.seed"]) == [1, 2] and (frame["error"] == "").all()


@pytest.mark.parametrize("key", ["plan.target_rate_per_s", "search.gpus", "name"])
def test_grid_keys_no_simulation_reads_are_refused(key, scenario, no_simulation):
    with pytest.raises(UserError, match=f"--grid {key}: .*every point would be the same"):
        sweep(scenario, {key: ["a", "b"]})


def test_plan_key_refused_by_the_command(scenario_file, tmp_path, capsys):
    out = tmp_path / "u.csv"
    grid = "plan.target_rate_per_s=10,20"
    line = error_line(["sweep", str(scenario_file), "--grid", grid, "-o", str(out)], capsys)
    assert "plan.target_rate_per_s" in line and "servesim plan" in line
    assert not out.exists()
