"""Trace replay and recording: layouts, options, round trips and bad rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli.main import main
from simulator.errors import UserError
from simulator.workload import Request, build_source, iterate_requests
from simulator.workload.config import WorkloadConfig
from simulator.workload.trace_io import write_trace

FIELDS = (
    "request_id",
    "arrival_s",
    "prompt_tokens",
    "output_tokens",
    "class_name",
    "priority",
    "session_id",
    "turn",
    "prefix_id",
    "prefix_tokens",
)


def replay(path, **options):
    return list(iterate_requests(build_source(WorkloadConfig(trace=str(path), **options))))


def as_rows(requests):
    return [tuple(getattr(r, f) for f in FIELDS) for r in requests]


def synthetic(**extra):
    spec = {
        "arrival": {"process": "gamma", "rate_per_s": 30, "cv": 2},
        "prompt_tokens": {"distribution": "lognormal", "mean": 900, "sigma": 1.0},
        "output_tokens": {"distribution": "exponential", "mean": 150},
        "num_requests": 3000,
        "classes": [{"name": "chat", "weight": 2, "priority": 2}, {"name": "code", "weight": 1}],
        **extra,
    }
    return WorkloadConfig(**spec)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".csv.gz"])
def test_generate_then_replay_round_trips_exactly(tmp_path, suffix):
    spec = synthetic(
        sessions={
            "turns": {"distribution": "uniform", "min": 1, "max": 4},
            "think_time_s": {"distribution": "exponential", "mean": 7},
        }
    )
    original = list(iterate_requests(build_source(spec)))
    path = tmp_path / f"trace{suffix}"
    assert write_trace(original, path, comment="test trace") == len(original)
    assert as_rows(replay(path)) == as_rows(original)


def test_replay_reproduces_every_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(
        "arrival_s,prompt_tokens,output_tokens\n0,10,1\n0.5,20,2\n0.5,30,3\n7.25,40,4\n"
    )
    requests = replay(path)
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in requests] == [
        (0.0, 10, 1),
        (0.5, 20, 2),
        (0.5, 30, 3),
        (7.25, 40, 4),
    ]


def test_azure_layout_absolute_timestamps(tmp_path):
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:16:46.6805900,879,15\n"
    )
    requests = replay(path)
    assert [r.arrival_s for r in requests] == pytest.approx([0.0, 4.314579, 60.0])
    assert [(r.prompt_tokens, r.output_tokens) for r in requests] == [
        (374, 44),
        (396, 109),
        (879, 15),
    ]


def test_burstgpt_layout_with_extra_columns(tmp_path):
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,GPT-4,1087,230,1317,Conversation log\n"
    )
    requests = replay(path)
    # Recorded traces count from their first row.
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in requests] == [
        (0.0, 472, 18),
        (40.0, 1087, 230),
    ]


def test_milliseconds_time_scale_window_and_sample(tmp_path):
    path = tmp_path / "ms.csv"
    rows = "\n".join(f"{1000 * k},{k + 1},1" for k in range(100))
    path.write_text("arrival_s,prompt_tokens,output_tokens\n" + rows + "\n")
    requests = replay(path, time_unit="ms", time_scale=0.5, window={"start_s": 10, "end_s": 20})
    # Rows at 10..19 s, counted from the window start, replayed at twice the rate.
    assert [r.arrival_s for r in requests] == pytest.approx([0.5 * k for k in range(10)])
    assert [r.prompt_tokens for r in requests] == list(range(11, 21))
    sampled = replay(path, time_unit="ms", sample=0.5, seed=4)
    assert 30 < len(sampled) < 70
    assert as_rows(sampled) == as_rows(replay(path, time_unit="ms", sample=0.5, seed=4))
    assert len(replay(path, time_unit="ms", num_requests=7)) == 7
    assert max(r.arrival_s for r in replay(path, time_unit="ms", duration_s=30)) < 30


def test_classes_give_priorities_to_trace_rows(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens,class_name\n1,5,5,chat\n2,5,5,batch\n")
    requests = replay(path, classes=[{"name": "chat", "priority": 3}])
    assert [(r.class_name, r.priority) for r in requests] == [("chat", 3), ("batch", 0)]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("arrival_s,prompt_tokens,output_tokens\n1,10,5\n2,abc,5\n", ":3: column 'prompt_tokens'"),
        ("arrival_s,prompt_tokens,output_tokens\n1,10,5\n2,-4,5\n", ":3: column 'prompt_tokens'"),
        ("arrival_s,prompt_tokens,output_tokens\n1,10,5\n2,10\n", ":3: column 'output_tokens'"),
        ("arrival_s,prompt_tokens,output_tokens\n5,10,5\n2,10,5\n", ":3: column 'arrival_s'"),
        (
            "arrival_s,prompt_tokens,output_tokens\n# note\n1,10,5\n-1,10,5\n",
            ":4: column 'arrival_s'",
        ),
        ("arrival_s,prompt_tokens\n1,10\n", ":1: header"),
        (
            "arrival_s,prompt_tokens,output_tokens,prefix_tokens\n1,10,5,11\n",
            ":2: column 'prefix_tokens'",
        ),
        (
            "arrival_s,prompt_tokens,output_tokens,session_id\n1,10,5,x\n",
            ":2: column 'session_id'",
        ),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path, body, where):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(UserError) as caught:
        replay(path)
    assert f"{path}{where}" in str(caught.value)


def test_missing_column_of_named_format(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,5\n")
    with pytest.raises(UserError, match=r":1: missing column 'GeneratedTokens'"):
        replay(path, format="azure")


def test_skip_mode_skips_bad_rows_but_all_bad_is_an_error(tmp_path):
    path = tmp_path / "some_bad.jsonl"
    path.write_text(
        '{"arrival_s": 1, "prompt_tokens": 10, "output_tokens": 0}\n'
        '{"arrival_s": 2, "prompt_tokens": 10, "output_tokens": 3}\n'
        "not json\n"
    )
    requests = replay(path, on_bad_row="skip")
    assert [(r.arrival_s, r.output_tokens) for r in requests] == [(2.0, 3)]
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text("arrival_s,prompt_tokens,output_tokens\n1,x,1\n2,0,1\n")
    with pytest.raises(UserError) as caught:
        replay(all_bad, on_bad_row="skip")
    assert "all 2 rows are bad" in str(caught.value)
    assert f"{all_bad}:2: column 'prompt_tokens'" in str(caught.value)


def test_empty_trace_and_empty_window_are_errors(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n")
    with pytest.raises(UserError, match="no data rows"):
        replay(path)
    path.write_text("arrival_s,prompt_tokens,output_tokens\n1,1,1\n")
    with pytest.raises(UserError, match="no row left"):
        replay(path, window={"start_s": 100})


def test_trace_replay_is_lazy(tmp_path):
    path = tmp_path / "long.csv"
    with path.open("w") as handle:
        handle.write("arrival_s,prompt_tokens,output_tokens\n")
        handle.writelines(f"{k * 0.01!r},100,10\n" for k in range(20_000))
    source = build_source(WorkloadConfig(trace=str(path)))
    assert source.peek_time() == 0.0
    first = [source.pop() for _ in range(3)]
    assert [r.request_id for r in first] == [0, 1, 2]
    assert source.reader.data_rows < 20_000  # only read as far as needed
    rest = list(iterate_requests(source))
    assert len(rest) == 20_000 - 3 and source.exhausted and source.peek_time() == math.inf


def test_cli_generate_and_stats(tmp_path, capsys):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "name: t\nmodel: llama-3.1-8b\nworkload:\n"
        "  arrival: {process: closed_loop, users: 4, think_time_s: 2}\n"
        "  prompt_tokens: {distribution: uniform, min: 100, max: 200}\n"
        "  output_tokens: {distribution: fixed, value: 10}\n"
        "  num_requests: 40\n"
    )
    out = tmp_path / "trace.csv"
    assert main(["trace", "generate", str(scenario), "-o", str(out)]) == 0
    requests = replay(out)
    # Zero service time: each user's requests are one think time apart.
    assert len(requests) == 40 and requests[-1].arrival_s == pytest.approx(18.0)
    assert main(["trace", "stats", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "requests: 40" in printed and "p99" in printed and "#" in printed


def test_cli_reports_bad_scenario_with_dotted_path(tmp_path, capsys):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "workload:\n  arrival: {process: poisson, rate_per_s: -1}\n"
        "  prompt_tokens: {distribution: fixed, value: 5}\n"
        "  output_tokens: {distribution: fixed, value: 5}\n"
    )
    assert main(["trace", "generate", str(scenario), "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "workload.arrival.rate_per_s" in err and "-1" in err


def test_cli_stats_reads_an_azure_trace(tmp_path, capsys):
    path = tmp_path / "azure.csv"
    rows = [
        f"2023-11-16 18:{15 + k // 60:02d}:{k % 60:02d}.5,{100 + k},{1 + k % 7}" for k in range(120)
    ]
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    assert main(["trace", "stats", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "layout: azure" in printed and "requests: 120" in printed
    assert "span: 119.000 s" in printed


ROWS = st.lists(
    st.tuples(
        st.floats(0, 1e9, allow_nan=False, allow_infinity=False),
        st.integers(1, 10**6),
        st.integers(1, 10**5),
        st.sampled_from(["default", "chat", "rag, long", 'quote"d']),
        st.integers(-1, 10**6),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=ROWS)
def test_any_rows_round_trip_exactly(tmp_path_factory, rows):
    rows = sorted(rows)
    requests = [
        Request(i, t, p, o, class_name=c, session_id=s, prefix_id=s)
        for i, (t, p, o, c, s) in enumerate(rows)
    ]
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    write_trace(requests, path)
    assert as_rows(replay(path)) == as_rows(requests)


def test_cli_generate_refuses_endless_closed_loop(tmp_path, capsys):
    scenario = tmp_path / "endless.yaml"
    scenario.write_text(
        "workload:\n"
        "  arrival: {process: closed_loop, users: 2}\n"
        "  prompt_tokens: {distribution: fixed, value: 5}\n"
        "  output_tokens: {distribution: fixed, value: 5}\n"
        "  duration_s: 10\n"
    )
    assert main(["trace", "generate", str(scenario), "-o", str(tmp_path / "x.csv")]) == 2
    assert "workload.num_requests is required" in capsys.readouterr().err


def test_shipped_sample_trace_is_what_its_command_generates(tmp_path):
    # Golden file: regenerate it on purpose (see workloads/traces/README.md) when the
    # generator's draws change.
    workloads = Path(__file__).resolve().parent.parent / "workloads"
    out = tmp_path / "sample.csv"
    args = ["trace", "generate", str(workloads / "bursty_mixed.yaml"), "--num-requests", "1000"]
    assert main([*args, "-o", str(out)]) == 0

    def data(path):
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]

    assert data(out) == data(workloads / "traces" / "sample_trace.csv")


def test_unreadable_files_are_user_errors(tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"arrival_s,prompt_tokens,output_tokens\n1,2,3\n\xff\xfe\xb3garbage\n")
    with pytest.raises(UserError, match="not UTF-8 text"):
        replay(binary)
    fake_gzip = tmp_path / "fake.csv.gz"
    fake_gzip.write_text("arrival_s,prompt_tokens,output_tokens\n1,2,3\n")
    with pytest.raises(UserError, match="gzip"):
        replay(fake_gzip)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfarrival_s,prompt_tokens,output_tokens\r\n1,2,3\r\n")
    assert [(r.arrival_s, r.prompt_tokens) for r in replay(bom)] == [(1.0, 2)]


def test_a_trace_written_from_a_replay_says_where_its_requests_came_from(tmp_path):
    """A copy of a replayed trace is recorded traffic, not a synthetic draw."""
    root = Path(__file__).resolve().parent.parent
    synthetic, copy = tmp_path / "s.csv", tmp_path / "c.csv"
    assert main(["trace", "generate", str(root / "workloads" / "quickstart.yaml"), "-o",
                 str(synthetic), "--num-requests", "5"]) == 0  # fmt: skip
    assert main(["trace", "generate", str(root / "workloads" / "trace_replay.yaml"), "-o",
                 str(copy), "--num-requests", "5"]) == 0  # fmt: skip
    assert synthetic.read_text().startswith("# synthetic trace (not recorded traffic)")
    assert copy.read_text().startswith("# requests replayed from the trace traces/sample_trace")
