"""``servesim list`` and ``servesim show``: tables, JSON, names only, colour rules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from simulator.config.loader import load_scenario
from simulator.errors import UnknownNameError, UserError
from simulator.reports.terminal import format_table, paint, use_colour
from simulator.specs.catalog import list_gpus, list_models

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> int:
    from simulator.cli import listing, show

    parser = argparse.ArgumentParser(prog="servesim")
    sub = parser.add_subparsers()
    listing.register(sub)
    show.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize(
    "what", ["gpus", "models", "links", "policies", "routers", "profiles", "prices"]
)
def test_every_list_prints_json_rows(what, capsys):
    assert _run(["list", what, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(isinstance(r, dict) for r in rows)


def test_list_gpus_matches_the_catalog(capsys):
    _run(["list", "gpus", "--quiet"])
    assert capsys.readouterr().out.split() == list_gpus()
    _run(["list", "gpus", "--json"])
    h100 = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "h100-sxm")
    assert h100["memory_gb"] == pytest.approx(85.0, rel=0.01)  # 80 GiB as CUDA reports it
    assert h100["bf16_tflops"] == pytest.approx(989.4, rel=0.01)


def test_list_models_table_has_a_row_per_model(capsys):
    _run(["list", "models"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["name", "params_b"]
    assert len(lines) == 1 + len(list_models())
    assert "\033[" not in "".join(lines)  # not a terminal: no colour codes


def test_list_policies_and_routers_name_the_registered_ones(capsys):
    from simulator.policies import known_policies
    from simulator.policies.routing import known_routers

    _run(["list", "policies", "--quiet"])
    assert capsys.readouterr().out.split() == known_policies()
    _run(["list", "routers", "--quiet"])
    assert capsys.readouterr().out.split() == known_routers()


def test_list_prices_filters_by_gpu_and_section(capsys):
    _run(["list", "prices", "--gpu", "h100-sxm", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["gpu"] for r in rows} == {"h100-sxm"}
    assert {r["section"] for r in rows} == {"cloud", "purchase"}
    _run(["list", "prices", "--section", "api", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["section"] for r in rows} == {"api"}
    _run(["list", "prices", "--gpu", "h100-sxm"])
    text = capsys.readouterr().out
    assert "cloud prices" in text and "purchase prices" in text and "api prices" not in text


def test_list_errors_are_user_errors():
    with pytest.raises(UnknownNameError, match="h100-sxm"):
        _run(["list", "prices", "--gpu", "h100"])
    with pytest.raises(UserError, match="--gpu and --section"):
        _run(["list", "gpus", "--gpu", "h100-sxm"])


def test_show_prints_every_default(capsys):
    path = ROOT / "workloads" / "plan_chat.yaml"
    assert _run(["show", str(path), "--set", "hardware.gpu=h200"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    scenario = load_scenario(path, ["hardware.gpu=h200"])
    assert data["hardware"]["gpu"] == "h200"
    # a default the file does not set is filled in
    assert "kv_block_size" not in path.read_text()
    assert data["engine"]["kv_block_size"] == scenario.engine.kv_block_size
    assert data["plan"]["target_rate_per_s"] == 40
    assert data["plan"]["rate_tolerance"] == 0.05


def test_show_only_a_section_as_json(capsys):
    _run(["show", str(ROOT / "workloads" / "quickstart.yaml"), "--only", "slo", "--json"])
    assert json.loads(capsys.readouterr().out) == {
        "slo": {"ttft_ms": {"p99": 1000.0}, "tpot_ms": {"p99": 50.0}}
    }
    with pytest.raises(UserError, match="no section 'nope'"):
        _run(["show", str(ROOT / "workloads" / "quickstart.yaml"), "--only", "nope"])


def test_show_reports_scenario_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: llama-3.1-8b\nhardware: {gpu: h100-sxm, tensor_parallel: 3}\n")
    with pytest.raises(UserError):
        _run(["show", str(bad)])


def test_colour_only_on_a_terminal(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    class Pipe:
        def isatty(self):
            return False

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert use_colour(Tty()) is True
    assert use_colour(Pipe()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(Tty()) is False
    assert paint("x", "bold", False) == "x"
    assert paint("x", "bold", True) == "\033[1mx\033[0m"


def test_format_table_aligns_numbers_right():
    text = format_table(["name", "value"], [["a", 1.5], ["bbbb", 1234.0]])
    lines = text.splitlines()
    assert lines[1].endswith("  1.5") and lines[2].endswith("1234")
    assert len({len(line) for line in lines[1:]}) == 1


def test_listing_loads_no_simulation_statistics_or_plotting_library():
    import subprocess
    import sys

    code = (
        "import sys; from simulator.cli.main import main; main(['list', 'gpus', '--quiet']); "
        "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib', 'simpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
