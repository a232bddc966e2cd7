"""``servesim simulate``: outputs, replications with confidence intervals, step traces."""

from __future__ import annotations

import itertools
import json

import pandas as pd

from simulator.cli.main import main
from simulator.metrics.replications import combine, interval

QUICK = ["--set", "workload.num_requests=200", "--set", "model=llama-3.2-1b", "--quiet"]


def test_json_summary_and_output_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", "workloads/quickstart.yaml", *QUICK, "--json", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in (
        "requests_completed",
        "requests_rejected",
        "throughput_rps",
        "output_tokens_per_s",
        "goodput_rps",
        "saturated",
        "cost_per_million_output_tokens_usd",
    ):
        assert key in summary
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert {"mean", "p50", "p90", "p99"} <= set(summary[key])
    requests = pd.read_csv(out / "requests.csv")
    assert len(requests) == 200
    assert {
        "arrival_s",
        "first_token_s",
        "finish_s",
        "prompt_tokens",
        "output_tokens",
        "replica",
    } <= set(requests.columns)
    series = pd.read_csv(out / "timeseries.csv")
    assert {"time_s", "waiting", "running", "kv_used_fraction"} <= set(series.columns)


def test_trace_out_writes_chrome_trace_events(tmp_path):
    path = tmp_path / "steps.json"
    assert main(["simulate", "workloads/quickstart.yaml", *QUICK, "--trace-out", str(path)]) == 0
    events = json.loads(path.read_text())["traceEvents"]
    assert events and all(e["ph"] == "X" and e["dur"] > 0 for e in events)
    assert all(b["ts"] >= a["ts"] + a["dur"] - 1e-6 for a, b in itertools.pairwise(events))


def test_replication_intervals_shrink_as_n_grows(capsys):
    widths = []
    for n in (3, 12):
        assert (
            main(
                [
                    "simulate",
                    "workloads/quickstart.yaml",
                    *QUICK,
                    "--json",
                    "--replications",
                    str(n),
                ]
            )
            == 0
        )
        ci = json.loads(capsys.readouterr().out)["replications"]["throughput_rps"]
        assert ci["low"] <= ci["mean"] <= ci["high"] and ci["n"] == n
        widths.append(ci["high"] - ci["low"])
    assert widths[1] < widths[0]


def test_interval_of_known_values():
    iv = interval([1.0, 2.0, 3.0])
    assert iv["mean"] == 2.0
    assert round(iv["high"] - 2.0, 4) == round(4.302653 * 1.0 / 3**0.5, 4)  # t(0.975, 2)
    assert combine([{"throughput_rps": 1.0}, {"throughput_rps": 3.0}])["throughput_rps"]["n"] == 2


def test_replication_intervals_keep_bounds_and_say_when_seeds_change_nothing():
    """A fraction's interval stays inside [0, 1] (GPU busy showed [0.92, 1.03]); seeds that
    all give the same run (a trace replay) are named, not shown as a precise answer."""
    from simulator.metrics.replications import combine, format_intervals

    runs = [{"gpu_busy_fraction": b, "throughput_rps": 1.0 + b} for b in (0.92, 0.99, 1.0)]
    combined = combine(runs)
    assert combined["gpu_busy_fraction"]["high"] <= 1.0
    assert not combined["identical_runs"]
    same = combine([{"gpu_busy_fraction": 0.5, "throughput_rps": 2.0, "trace": {"rows": 1}}] * 3)
    assert same["identical_runs"]
    assert "every seed gave the same run" in format_intervals(same)
