"""Careless or hostile input: every mistake is one clear line and exit status 2, within
seconds; caches are never stale; skipped trace rows are counted; signals stop everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from simulator.api import run
from simulator.cli.main import main
from simulator.config.loader import scenario_from_dict
from simulator.errors import UserError
from simulator.planning import sweep
from simulator.planning.sweep_cache import scenario_hash
from simulator.specs.catalog import clear_cache, load_gpu
from simulator.workload import build_source, iterate_requests
from simulator.workload.config import WorkloadConfig
from tests.conftest import BASE, _merge

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = """\
model: llama-3.2-1b
engine: {max_num_seqs: 16}
workload:
  arrival: {process: poisson, rate_per_s: 10}
  prompt_tokens: {distribution: fixed, value: 64}
  output_tokens: {distribution: fixed, value: 4}
  num_requests: 20
"""


def errors_of(argv: list[str], capsys) -> list[str]:
    """The error lines of a command that must exit with status 2."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("servesim: error: ") for line in lines)
    return lines


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_duplicate_keys_name_both_lines(tmp_path, capsys):
    scenario = write(
        tmp_path / "dup.yaml",
        SCENARIO.replace("rate_per_s: 10}", "rate_per_s: 10}\n  num_requests: 5"),
    )
    [line] = errors_of(["show", str(scenario)], capsys)
    assert "dup.yaml:8:3: key 'num_requests' given twice (first at line 5, column 3)" in line
    model = write(tmp_path / "m.json", '{"model_type": "llama",\n "model_type": "mistral"}')
    [line] = errors_of(
        ["step", "--model", str(model), "--gpu", "h100-sxm", "--decode", "1x8"], capsys
    )
    assert "key 'model_type' given twice (lines 1 and 2)" in line


BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
)


def test_alias_bombs_are_refused_wherever_yaml_is_read(tmp_path, capsys):
    nested = "\n".join("    " + line for line in BOMB.splitlines())
    scenario = write(
        tmp_path / "bomb.yaml",
        SCENARIO.replace("engine: {max_num_seqs: 16}", f"engine:\n  batching_options:\n{nested}"),
    )
    start = time.perf_counter()
    for argv in (
        ["show", str(scenario), "--json"],
        ["sweep", str(scenario), "--grid", "workload.seed=1,2", "-o", str(tmp_path / "s.csv")],
        ["trace", "generate", str(scenario), "-o", str(tmp_path / "t.csv")],
        [
            "show",
            str(tmp_path / "ok.yaml"),
            "--set",
            "engine.batching_options={" + BOMB.replace("\n", ", ")[:-2] + "}",
        ],
    ):
        write(tmp_path / "ok.yaml", SCENARIO)
        [line] = errors_of(argv, capsys)
        assert "aliases here expand to more than 1,000,000 values" in line
    assert time.perf_counter() - start < 10


def test_numbers_are_finite_exact_and_bounded():
    cases = {
        "engine.max_num_seqs: must be a number, not true or false": {
            "engine": {"max_num_seqs": True}
        },
        "engine.cuda_graphs: must be true or false": {"engine": {"cuda_graphs": 1}},
        "engine.max_num_seqs: must be a whole number (got 64.0)": {
            "engine": {"max_num_seqs": 64.0}
        },
        "cost.gpu_hour_usd: Input should be a finite number": {
            "cost": {"gpu_hour_usd": float("inf")}
        },
        "output.warmup_s: Input should be a finite number": {"output": {"warmup_s": float("inf")}},
        "engine.max_num_seqs: Input should be less than or equal to 65536": {
            "engine": {"max_num_seqs": 10**12}
        },
        "hardware.replicas: Input should be less than or equal to 10000": {
            "hardware": {"replicas": 10**9}
        },
        "workload.arrival.users: Input should be less than or equal to 1000000": {
            "workload": {"arrival": {"process": "closed_loop", "users": 10**9}}
        },
        "workload.arrival.cv: Input should be greater than or equal to 0.001": {
            "workload": {"arrival": {"process": "gamma", "rate_per_s": 1, "cv": 1e-300}}
        },
    }
    for expected, change in cases.items():
        with pytest.raises(UserError) as caught:
            scenario_from_dict(_merge(BASE, change))
        assert expected in str(caught.value), str(caught.value)


def test_fleet_override_errors_name_the_field():
    data = _merge(BASE, {})
    del data["hardware"]
    data["fleet"] = [{"gpu": "h100-sxm", "engine": {"max_num_seqs": "abc"}}]
    with pytest.raises(UserError) as caught:
        scenario_from_dict(data)
    message = "fleet.0.engine.max_num_seqs: must be a whole number (got 'abc')"
    assert str(caught.value) == f"<scenario>: {message}"


def test_files_that_are_not_regular_or_not_utf8_or_too_long(tmp_path, capsys):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "is a named pipe (FIFO), not a file" in errors_of(["show", str(fifo)], capsys)[0]
    assert "is a folder, not a file" in errors_of(["show", str(tmp_path)], capsys)[0]
    assert "is a device, not a file" in errors_of(["show", "/dev/zero"], capsys)[0]
    latin = write(
        tmp_path / "l.yaml", SCENARIO.replace("model:", "name: caf\xe9\nmodel:").encode("latin-1")
    )
    assert "l.yaml:1:10: not UTF-8 text (byte 0xe9)" in errors_of(["show", str(latin)], capsys)[0]
    with pytest.raises(UserError, match="at most 255 characters"):
        load_gpu("g" * 100_000)
    with pytest.raises(UserError, match="is a device, not a file"):
        load_gpu("/dev/null")
    [line] = errors_of(["show", "x" * 100_000 + ".yaml"], capsys)
    assert "(100,005 characters)" in line and len(line) < 300


def test_outputs_are_checked_before_work_and_never_overwritten(tmp_path, capsys):
    scenario = write(tmp_path / "s.yaml", SCENARIO)
    taken = write(tmp_path / "taken.csv", "keep\n")
    for argv, expected in [
        (["simulate", str(scenario), "--out", str(taken)], "is a file, not a folder"),
        (["simulate", str(scenario), "--trace-out", str(tmp_path)], "is a folder; give a file"),
        (["simulate", str(scenario), "--out", str(taken / "sub")], "is a file, not a folder"),
        (["trace", "generate", str(scenario), "-o", str(taken)], "exists; pass --force"),
        (["trace", "generate", str(scenario), "-o", str(tmp_path / "t.parquet")], "got .parquet"),
        (["report", str(scenario), "-o", str(tmp_path / "r.pdf")], "written as an HTML page"),
        (
            ["report", str(scenario), "-o", str(tmp_path / "r.html"), "--pdf", str(tmp_path / "r")],
            "written as a PDF",
        ),
        (["sweep", str(scenario), "--grid", "workload.seed=1,2", "-o", str(taken)], "exists"),
        (["plan", str(scenario), "--csv", str(taken)], "exists; pass --force"),
    ]:
        assert expected in errors_of(argv, capsys)[0]
    assert taken.read_text() == "keep\n"
    out = tmp_path / "new" / "dir" / "t.csv"
    assert main(["trace", "generate", str(scenario), "-o", str(out)]) == 0
    assert main(["trace", "generate", str(scenario), "-o", str(out), "--force"]) == 0
    assert [p.name for p in out.parent.iterdir()] == ["t.csv"]  # no partial file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_read_only_output_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    scenario = write(tmp_path / "s.yaml", SCENARIO)
    line = errors_of(["simulate", str(scenario), "--out", str(folder / "run")], capsys)[0]
    assert "cannot write in" in line


def test_every_skipped_trace_row_is_counted(tmp_path):
    rows = [f"{i * 0.1:.1f},{100 + i},{10 + i}\n" for i in range(20)]
    rows[6] = '0.6,"106,16\n'  # line 8: a quote left open
    trace = write(tmp_path / "t.csv", "arrival_s,prompt_tokens,output_tokens\n" + "".join(rows))
    for options, requests in [({}, 19), ({"num_requests": 3}, 3), ({"window": {"end_s": 0.5}}, 5)]:
        workload = {"trace": str(trace), "on_bad_row": "skip", **options}
        summary = run(scenario_from_dict({"model": "llama-3.2-1b", "workload": workload})).summary
        assert summary["requests_total"] == requests
        assert summary["trace"]["rows_read"] == 20 and summary["trace"]["rows_skipped"] == 1
        assert summary["trace"]["skipped_reasons"] == [
            f"{trace}:8: not valid CSV (unexpected end of data; a quote left open?)"
        ]


def test_arrivals_honour_duration_and_zero_rates():
    for arrival in (
        {
            "process": "time_varying",
            "points": [{"time_s": 0, "rate_per_s": 0}, {"time_s": 1e9, "rate_per_s": 10}],
        },
        {"process": "on_off", "on_rate_per_s": 10, "on_duration_s": 1e-6, "off_duration_s": 10},
    ):
        spec = WorkloadConfig(
            arrival=arrival,
            prompt_tokens={"distribution": "fixed", "value": 8},
            output_tokens={"distribution": "fixed", "value": 8},
            duration_s=60,
        ).model_dump()
        start = time.perf_counter()
        assert len(list(iterate_requests(build_source(spec)))) <= 1
        assert time.perf_counter() - start < 1


def test_runs_over_the_budget_need_a_flag(tmp_path, capsys):
    scenario = write(
        tmp_path / "s.yaml", SCENARIO.replace("num_requests: 20", "num_requests: 10000000000")
    )
    line = errors_of(["simulate", str(scenario)], capsys)[0]
    assert "over the budget of 10.0 minutes" in line and "--allow-long-run" in line
    late = SCENARIO.replace(
        "{process: poisson, rate_per_s: 10}",
        "{process: time_varying, points: "
        "[{time_s: 0, rate_per_s: 0}, {time_s: 1.0e+9, rate_per_s: 1}]}",
    )
    line = errors_of(["simulate", str(write(tmp_path / "late.yaml", late))], capsys)[0]
    assert "the simulated span is at most 1,000,000,000 s" in line


def test_sweep_cache_sees_an_edited_model_file(tmp_path):
    model = json.loads((ROOT / "hardware_specs" / "models" / "llama-3.2-1b.json").read_text())
    path = write(tmp_path / "mymodel.json", json.dumps(model))
    scenario = scenario_from_dict(
        _merge(BASE, {"model": str(path), "workload": {"num_requests": 40}})
    )
    grid = {"workload.seed": [1, 2]}
    first = sweep(scenario, grid, cache_dir=tmp_path / "cache")
    again = sweep(scenario, grid, cache_dir=tmp_path / "cache")
    assert again.attrs["cached"] == 2
    write(path, json.dumps({**model, "num_hidden_layers": 64}))
    clear_cache()
    edited = sweep(scenario, grid, cache_dir=tmp_path / "cache")
    assert edited.attrs["simulated"] == 2
    assert (edited["e2e_ms.mean"] > 2 * first["e2e_ms.mean"]).all()


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        tasks = Path(f"/proc/{stack.pop()}/task")
        for task in tasks.iterdir() if tasks.is_dir() else []:
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except FileNotFoundError:
                continue
            stack += list(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigterm_to_a_sweep_parent_leaves_no_process(tmp_path):
    slow = SCENARIO.replace("num_requests: 20", "num_requests: 200000").replace(
        "rate_per_s: 10", "rate_per_s: 400"
    )
    scenario = write(tmp_path / "slow.yaml", slow)
    argv = [sys.executable, "-m", "simulator.cli.main", "sweep", str(scenario), "--grid",
            "workload.seed=1,2,3", "-o", str(tmp_path / "s.csv"), "--workers", "2", "--quiet",
            "--allow-long-run"]  # fmt: skip
    parent = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 30
    while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.1)
        workers = {p for p in _children(parent.pid) if _alive(p)}
    assert len(workers) == 2, parent.stderr.read() if parent.poll() is not None else ""
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=15) == 128 + signal.SIGTERM
    assert parent.stderr.read().strip() == "servesim: terminated"
    time.sleep(0.5)
    assert not [p for p in workers if _alive(p)]
    assert not (tmp_path / "s.csv").exists()
    assert not list(tmp_path.glob(".partial-*"))


def test_sweep_cache_key_covers_the_curve_beside_a_calibration(tmp_path):
    shipped = ROOT / "hardware_specs" / "calibration"
    calibration = write(tmp_path / "mygpu.yaml", (shipped / "h100-sxm.yaml").read_text())
    scenario = scenario_from_dict(
        _merge(BASE, {"hardware": {"calibration": str(calibration)}}), base_dir=tmp_path
    )
    before = scenario_hash(scenario, environment="fixed")
    write(tmp_path / "mygpu-moe.yaml", (shipped / "h100-sxm-moe.yaml").read_text())
    assert scenario_hash(scenario, environment="fixed") != before


def test_a_plan_whose_fleets_would_run_past_the_budget_is_refused_before_work(tmp_path, capsys):
    """A large target rate sizes fleets of hundreds of replicas, each simulated with
    plan.min_requests_per_replica requests: the budget counts them, not only the
    scenario's own 20 requests; the scenario's own size still passes."""
    scenario = write(tmp_path / "s.yaml", SCENARIO + "slo: {ttft_ms: {p99: 1000}}\n")
    large = ["--set", "plan.target_rate_per_s=1000000", "--set", "plan.max_replicas=10000"]
    for command in (["plan"], ["report", "-o", str(tmp_path / "r.html")]):
        (line,) = errors_of([*command, str(scenario), *large], capsys)
        assert "with the fleets plan.target_rate_per_s needs" in line
        assert "--allow-long-run" in line
    assert not (tmp_path / "r.html").exists()


def test_the_fleet_estimate_grows_with_the_target_and_the_searches():
    from simulator.config.loader import scenario_from_dict
    from simulator.config.planning import PlanConfig
    from simulator.planning.work import fleet_requests

    scenario = scenario_from_dict(yaml.safe_load(SCENARIO))
    assert fleet_requests(scenario, PlanConfig()) == 0.0  # no target: no fleet
    small = fleet_requests(scenario, PlanConfig(target_rate_per_s=10))
    large = fleet_requests(scenario, PlanConfig(target_rate_per_s=10_000))
    assert 0 < small < large
    assert fleet_requests(scenario, PlanConfig(target_rate_per_s=10), searches=3) == 3 * small


def test_options_that_would_do_nothing_say_so(tmp_path, capsys):
    """--dask-scheduler on a plan without a search would be ignored; a price listing with
    no row says there is none rather than printing only its footer."""
    scenario = write(tmp_path / "s.yaml", SCENARIO)
    (line,) = errors_of(["plan", str(scenario), "--dask-scheduler", "tcp://x:1"], capsys)
    assert "has no search: section" in line
    assert main(["list", "prices", "--gpu", "cpu-server"]) == 0
    assert capsys.readouterr().out.startswith("no prices for --gpu cpu-server")


def test_fit_and_step_check_contexts_and_budgets(capsys):
    """A context past the model's, a budget below one token, or a step flag that holds no
    sequence are named; step prices a sequence past the model's context but says so."""
    fit = ["fit", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"]
    (line,) = errors_of([*fit, "--context", "200000"], capsys)
    assert "more than llama-3.1-8b takes (131,072" in line
    (line,) = errors_of([*fit, "--max-num-batched-tokens", "0"], capsys)
    assert "--max-num-batched-tokens: 0 must be >= 1" in line
    step = ["step", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"]
    (line,) = errors_of([*step, "--decode", "0x0"], capsys)
    assert "--decode 0x0 holds no sequence" in line
    (line,) = errors_of([*step, "--decode", "8x100", "--link", "bogus"], capsys)
    assert "--link: unknown link 'bogus'" in line  # checked though one GPU uses no link
    assert main([*step, "--decode", "16x200000"]) == 0
    assert "a sequence of 200,001 tokens is more than llama-3.1-8b takes" in capsys.readouterr().out


def test_the_header_names_every_group_and_counts_every_gpu(tmp_path, capsys):
    """A fleet's header listed only the scenario's own hardware section (1× 1× h100-sxm for
    a run of 3 GPUs)."""
    fleet = (
        SCENARIO
        + "fleet:\n  - {name: big, gpu: h100-sxm, replicas: 2}\n"
        + "  - {name: small, gpu: a100-sxm-80gb, tensor_parallel: 2}\n"
    )
    scenario = write(tmp_path / "fleet.yaml", fleet)
    assert main(["simulate", str(scenario)]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0]
    assert "big: 2× 1× h100-sxm + small: 1× 2× a100-sxm-80gb (4 GPUs)" in header
    # each group's pricing and error band (the A100 group was reported as the H100's)
    assert "big priced with: PyTorch reference runtime; kernels: PyTorch reference" in printed
    assert "small priced with: PyTorch reference runtime; kernels: datasheet defaults" in printed
    assert "small model error: datasheet band for a100-sxm-80gb" in printed


def test_an_output_format_that_cannot_be_written_leaves_no_folder(tmp_path, capsys):
    """--out-format parquet without pyarrow is refused, and the folders --out would have
    created are gone again."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed: Parquet can be written")
    scenario = write(tmp_path / "s.yaml", SCENARIO)
    out = tmp_path / "new" / "out"
    (line,) = errors_of(
        ["simulate", str(scenario), "--out", str(out), "--out-format", "parquet"], capsys
    )
    assert "needs pyarrow" in line
    assert not (tmp_path / "new").exists()


def test_replications_past_the_largest_seed_are_refused_before_running(tmp_path, capsys):
    scenario = write(tmp_path / "s.yaml", SCENARIO)
    argv = ["simulate", str(scenario), "--set", f"workload.seed={2**64 - 1}", "--replications", "2"]
    (line,) = errors_of(argv, capsys)
    assert "--replications 2: the seeds run from workload.seed" in line


def test_an_engine_on_a_gpu_it_does_not_run_on_is_refused(capsys):
    """TensorRT-LLM runs on NVIDIA GPUs only: on an AMD or Apple part it was priced on
    datasheet defaults (and printed as running CUDA graphs)."""
    step = ["step", "--model", "llama-3.1-8b", "--decode", "8x100", "--profile", "trtllm"]
    for gpu, vendor in (("mi300x", "amd"), ("m2-ultra", "apple")):
        (line,) = errors_of([*step, "--gpu", gpu], capsys)
        assert f"trtllm runs on nvidia GPUs, and {gpu} is {vendor}" in line
    assert main([*step[:-1], "vllm", "--gpu", "mi300x"]) == 0
