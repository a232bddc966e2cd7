"""Trace inputs that once went wrong quietly: the time origin of recorded traces with
skipped rows, closed loops too large to write as a trace, scenario settings that a
replay ignores, request classes of a replay, and ``servesim show`` output read back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from simulator.cli.main import main
from simulator.cli.show import resolved_scenario
from simulator.errors import UserError
from simulator.workload import build_source, iterate_requests
from simulator.workload.budget import budget_problems, estimate_work, generation_budget
from simulator.workload.config import WorkloadConfig
from simulator.workload.trace_io import TraceReader

ROOT = Path(__file__).resolve().parent.parent
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BURSTGPT = "Timestamp,Request tokens,Response tokens\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def replay(path: Path, **options) -> list:
    workload = WorkloadConfig(trace=str(path), **options)
    return list(iterate_requests(build_source(workload)))


def times(requests) -> list[float]:
    return [r.arrival_s for r in requests]


# ---------------------------------------------------------------- time origin


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # A bad first row stamped after the good ones: rows used to land before time 0.
        ("burstgpt.csv", BURSTGPT + "100,0,5\n50,10,5\n80,10,5\n110,10,5\n120,10,5\n"),
        (
            "azure.csv",
            AZURE + "2023-11-16 18:01:40,x,5\n2023-11-16 18:00:50,10,5\n"
            "2023-11-16 18:01:20,10,5\n2023-11-16 18:01:50,10,5\n2023-11-16 18:02:00,10,5\n",
        ),
        (
            "azure.jsonl",
            '{"TIMESTAMP": 100, "ContextTokens": 10, "GeneratedTokens": 0}\n'
            + "".join(
                f'{{"TIMESTAMP": {t}, "ContextTokens": 10, "GeneratedTokens": 5}}\n'
                for t in (50, 80, 110, 120)
            ),
        ),
    ],
    ids=["burstgpt", "azure", "azure-jsonl"],
)
def test_recorded_times_count_from_the_first_good_row(tmp_path, name, text):
    path = write(tmp_path / name, text)
    reader = TraceReader(path, skip_bad_rows=True)
    assert [row.time_s for row in reader] == [0.0, 30.0, 60.0, 70.0]
    requests = replay(path, on_bad_row="skip")
    assert times(requests) == [0.0, 30.0, 60.0, 70.0]
    source = build_source(WorkloadConfig(trace=str(path), on_bad_row="skip"))
    list(iterate_requests(source))
    report = source.row_report()
    assert (report["rows_read"], report["rows_skipped"]) == (5, 1)


def test_one_good_row_after_a_bad_first_row_replays(tmp_path):
    path = write(tmp_path / "b.csv", BURSTGPT + "100,0,5\n50,10,5\n")
    assert [(r.arrival_s, r.prompt_tokens) for r in replay(path, on_bad_row="skip")] == [(0.0, 10)]


def test_a_bad_row_out_of_time_order_does_not_move_the_origin(tmp_path):
    path = write(tmp_path / "b.csv", BURSTGPT + "20,abc,5\n10,1,5\n5,1,5\n15,1,5\n")
    assert times(replay(path, on_bad_row="skip")) == [0.0, 5.0]


def test_our_layout_keeps_its_own_times_after_a_bad_first_row(tmp_path):
    path = write(tmp_path / "t.csv", "arrival_s,prompt_tokens,output_tokens\n9,0,1\n3,1,1\n4,1,1\n")
    assert times(replay(path, on_bad_row="skip")) == [3.0, 4.0]


def test_trace_stats_rates_start_at_the_first_good_row(tmp_path, capsys):
    path = write(tmp_path / "b.csv", BURSTGPT + "100,0,5\n50,10,5\n80,10,5\n110,10,5\n")
    assert main(["trace", "stats", str(path), "--skip-bad-rows"]) == 0
    printed = capsys.readouterr().out
    assert "requests: 3  bad rows: 1  span: 60.000 s" in printed
    first_bin = printed.split("rate over time (req/s):\n")[1].splitlines()[0]
    assert first_bin.split()[0] == "0.0"


# ---------------------------------------------------------------- closed-loop generation


def closed_loop(think, *, duration_s=10.0, users=4, **extra) -> dict:
    return {
        "arrival": {"process": "closed_loop", "users": users, "think_time_s": think},
        "prompt_tokens": {"distribution": "fixed", "value": 100},
        "output_tokens": {"distribution": "fixed", "value": 10},
        "duration_s": duration_s,
        **extra,
    }


def generation_estimate(spec: dict):
    workload = WorkloadConfig.model_validate(spec).model_dump()
    return generation_budget(estimate_work(workload, max_batched_tokens=1))


def test_generation_counts_closed_loop_requests_without_service_time():
    # Every request finishes on arrival: a user sends one per think time.
    estimate = generation_estimate(closed_loop(1e-9))
    assert estimate.requests == pytest.approx(4 * 10 / 1e-9, rel=1e-6)
    [problem] = budget_problems(estimate)
    assert "users 4, think_time_s 1e-09, duration_s 10" in problem
    assert "40,000,000,004 requests" in problem and "trace generation" in problem


@pytest.mark.parametrize(
    ("think", "extra"),
    [
        (0.5, {}),
        ({"distribution": "exponential", "mean": 0.5}, {}),
        (2.0, {"sessions": {"turns": 4, "think_time_s": 0.5}}),
    ],
)
def test_generation_estimate_matches_what_is_generated(think, extra):
    spec = closed_loop(think, duration_s=200.0, **extra)
    generated = len(list(iterate_requests(build_source(WorkloadConfig.model_validate(spec)))))
    assert generation_estimate(spec).requests == pytest.approx(generated, rel=0.2)


def test_generation_of_an_endless_closed_loop_is_refused():
    think = {"distribution": "empirical", "samples": [0]}
    [problem] = budget_problems(generation_estimate(closed_loop(think)), allow_long_run=True)
    assert "endless requests" in problem and "num_requests" in problem


def test_simulated_closed_loop_still_counts_service_time():
    workload = WorkloadConfig.model_validate(closed_loop(1e-9)).model_dump()
    estimate = estimate_work(workload, max_batched_tokens=8192)
    # At least 1 ms per output token: 10 ms per request, 4 users, 10 s.
    assert estimate.requests == pytest.approx(4 * 10 / 0.01 + 4, rel=1e-6)
    assert budget_problems(estimate) == []


def test_cli_refuses_to_generate_a_huge_closed_loop(tmp_path, capsys):
    scenario = tmp_path / "cl.yaml"
    scenario.write_text(yaml.safe_dump({"name": "cl", "workload": closed_loop(1e-9)}))
    out = tmp_path / "out.csv"
    assert main(["trace", "generate", str(scenario), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "servesim: error:" in err and "think_time_s 1e-09" in err
    assert "40,000,000,004 requests" in err and not out.exists()


# ---------------------------------------------------------------- settings a replay ignores


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"system_prompt_tokens": 50000}, "system_prompt_tokens (50000)"),
        (
            {"classes": [{"name": "chat", "system_prompt_tokens": 100}]},
            "classes.chat.system_prompt_tokens (100)",
        ),
        ({"length_correlation": 0.5}, "length_correlation (0.5)"),
        (
            {"classes": [{"name": "chat", "weight": 0}, {"name": "rag", "weight": 0}]},
            "classes.chat.weight (0.0), classes.rag.weight (0.0)",
        ),
        ({"classes": [{"name": "chat"}, {"name": "chat"}]}, "duplicate names ['chat']"),
    ],
)
def test_replay_refuses_what_it_would_ignore(extra, named):
    with pytest.raises(ValidationError) as caught:
        WorkloadConfig.model_validate({"trace": "t.csv", **extra})
    assert named in str(caught.value)


def test_replay_accepts_defaults_written_out():
    WorkloadConfig.model_validate(
        {
            "trace": "t.csv",
            "system_prompt_tokens": 0,
            "length_correlation": 0.0,
            "classes": [{"name": "chat", "weight": 1.0, "system_prompt_tokens": None}],
        }
    )


def test_cli_refuses_a_system_prompt_for_a_replay(capsys):
    scenario = ROOT / "workloads" / "trace_replay.yaml"
    args = ["simulate", str(scenario), "--set", "workload.system_prompt_tokens=50000"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "servesim: error:" in err and "system_prompt_tokens (50000)" in err


# ---------------------------------------------------------------- classes of a replay

OURS = "arrival_s,prompt_tokens,output_tokens,class_name\n"


def test_a_class_no_row_names_is_refused(tmp_path):
    path = write(tmp_path / "t.csv", OURS + "0,5,5,chat\n1,5,5,rag\n2,5,5,\n")
    classes = [{"name": "chat"}, {"name": "nope", "slo": {"ttft_ms": {"p99": 5}}}]
    with pytest.raises(UserError) as caught:
        replay(path, classes=classes)
    message = str(caught.value)
    assert "workload.classes" in message and "'nope'" in message
    assert "'chat', 'default', 'rag'" in message


def test_a_class_found_late_in_the_trace_is_accepted(tmp_path):
    rows = "".join(f"{k},5,5,chat\n" for k in range(500)) + "500,5,5,batch\n"
    path = write(tmp_path / "t.csv", OURS + rows)
    requests = replay(path, classes=[{"name": "batch", "priority": 4}], num_requests=3)
    assert [(r.class_name, r.priority) for r in requests] == [("chat", 0)] * 3


def test_classes_of_a_trace_without_class_names(tmp_path):
    path = write(tmp_path / "b.csv", BURSTGPT + "0,5,5\n1,5,5\n")
    with pytest.raises(UserError, match=r"no class_name column.*\['chat'\]"):
        replay(path, classes=[{"name": "chat"}])
    requests = replay(path, classes=[{"name": "default", "priority": 2}])
    assert [(r.class_name, r.priority) for r in requests] == [("default", 2)] * 2


def test_shipped_replay_classes_are_in_its_trace():
    scenario = resolved_scenario(str(ROOT / "workloads" / "trace_replay.yaml"))
    workload = WorkloadConfig.model_validate(scenario["workload"])
    source = build_source(workload, base_dir=ROOT / "workloads")
    assert not source.exhausted


# ---------------------------------------------------------------- show reads back


@pytest.mark.parametrize(
    "scenario", sorted((ROOT / "workloads").glob("*.yaml")), ids=lambda p: p.stem
)
def test_show_output_reads_back(tmp_path, scenario):
    shown = resolved_scenario(str(scenario))
    dumped = tmp_path / scenario.name
    dumped.write_text(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True))
    assert resolved_scenario(str(dumped)) == shown


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    """A row would keep only the last of two columns of one name: refused, naming it."""
    from simulator.workload.trace_io import TraceRowError

    path = write(
        tmp_path / "dup.csv", "arrival_s,prompt_tokens,output_tokens,prompt_tokens\n0,10,5,20\n"
    )
    with pytest.raises(TraceRowError, match="column 'prompt_tokens' given twice"):
        list(TraceReader(path))


def test_a_time_unit_on_date_time_stamps_is_refused(tmp_path):
    """time_unit scales numbers; date-times carry their own unit, so asking for ms there
    would otherwise be ignored without a word."""
    from simulator.workload.trace_io import TraceRowError

    path = write(
        tmp_path / "azure.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n",
    )
    assert [row.time_s for row in TraceReader(path)] == [0.0]
    with pytest.raises(TraceRowError, match="time_unit ms applies to numeric timestamps"):
        list(TraceReader(path, time_unit="ms"))


def test_numbers_with_underscores_are_bad_rows(tmp_path):
    """Python reads "1_000" as 1000, but no trace writer writes numbers so: a bad row."""
    from simulator.workload.trace_io import TraceRowError

    path = write(tmp_path / "u.csv", "arrival_s,prompt_tokens,output_tokens\n0,1_000,5\n")
    with pytest.raises(TraceRowError, match="'1_000' is not"):
        list(TraceReader(path))


def test_a_trace_shorter_than_num_requests_says_so():
    """num_requests past the trace's rows ran the rows it had without a word."""
    from simulator.api import load_scenario, run

    root = Path(__file__).resolve().parent.parent
    scenario = load_scenario(
        root / "workloads" / "trace_replay.yaml", ["workload.num_requests=5000"]
    )
    summary = run(scenario).summary
    assert summary["requests_total"] == 1000
    assert summary["trace"]["short_of_num_requests"] == "num_requests 5,000: the trace held 1,000"
    fewer = load_scenario(root / "workloads" / "trace_replay.yaml", ["workload.num_requests=10"])
    assert "short_of_num_requests" not in run(fewer).summary["trace"]
