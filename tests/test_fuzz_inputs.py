"""Fuzzing what users hand us: scenario YAML, GPU YAML, model configs and trace rows.

Whatever the input, a command ends with exit status 0 or 2 (a ``servesim: error:`` line),
never a traceback, and quickly. Inputs are the shipped forms with values replaced by
hostile ones (wrong types, infinities, huge and tiny numbers, odd text), or with their
text cut, repeated or corrupted.
"""

from __future__ import annotations

import copy
import json
import math
import time

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli.main import main
from simulator.specs.catalog import clear_cache
from simulator.workload.trace_io import TraceReader

#: Longest a single fuzzed command may take (s); the suite's budget, not a benchmark.
DEADLINE_S = 5.0
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

HOSTILE_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1,
        1.5,
        10**30,
        -(10**30),
        1e300,
        1e-300,
        math.inf,
        -math.inf,
        math.nan,
        "",
        "abc",
        "1e10",
        "x" * 300,
        [1, 2],
        [],
        {"a": 1},
        {},
    ]
)

SCENARIO = {
    "model": "llama-3.2-1b",
    "hardware": {"gpu": "h100-sxm", "tensor_parallel": 1, "replicas": 1},
    "engine": {
        "batching": "continuous",
        "max_num_seqs": 16,
        "max_num_batched_tokens": 2048,
        "kv_block_size": 16,
        "gpu_memory_utilization": 0.9,
        "swap_space_gb": 4.0,
        "cuda_graphs": True,
    },
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 20},
        "prompt_tokens": {"distribution": "lognormal", "mean": 200, "sigma": 0.5},
        "output_tokens": {"distribution": "fixed", "value": 8},
        "num_requests": 20,
        "seed": 0,
    },
    "slo": {"ttft_ms": {"p99": 1000}},
    "cost": {"gpu_hour_usd": 2.0},
    "output": {"warmup_s": 0.0, "timeseries_interval_s": 0.5},
}


def _paths(data: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


SCENARIO_PATHS = _paths(SCENARIO)


def _set(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[path[-1]] = value


def _text_mutation(text: str, how: int, where: float) -> str:
    cut = int(len(text) * where)
    if how == 0:
        return text[:cut]  # truncated
    if how == 1:
        lines = text.splitlines(keepends=True)
        i = int(len(lines) * where) % max(1, len(lines))
        return "".join(lines[: i + 1] + lines[i:])  # a line (so a key) twice
    if how == 2:
        return text[:cut] + "\x00\ufffd{[&a *b" + text[cut:]
    return text


def _run(argv: list[str]) -> int:
    """The command's exit status; it must be 0 or 2 and come back quickly."""
    start = time.perf_counter()
    status = main(argv)
    elapsed = time.perf_counter() - start
    assert status in (0, 2), f"exit status {status} for {argv}"
    assert elapsed < DEADLINE_S, f"{elapsed:.1f} s for {argv}"
    return status


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(SCENARIO_PATHS), HOSTILE_VALUES), max_size=3),
    how=st.integers(0, 3),
    where=st.floats(0, 1),
    simulate=st.booleans(),
)
def test_scenario_yaml_exits_0_or_2(tmp_path_factory, capsys, changes, how, where, simulate):
    data = copy.deepcopy(SCENARIO)
    for path, value in changes:
        _set(data, path, value)
    text = _text_mutation(yaml.safe_dump(data, sort_keys=False), how, where)
    path = tmp_path_factory.mktemp("scenario") / "s.yaml"
    path.write_text(text)
    command = ["simulate", str(path), "--quiet"] if simulate else ["show", str(path)]
    if _run(command) == 2:
        assert "servesim: error:" in capsys.readouterr().err


GPU = {
    "name": "fuzz-gpu",
    "peak_flops": {"bf16": {"value": 989.4e12, "source": "t"}},
    "memory_bytes": {"value": 80e9, "source": "t"},
    "memory_bw_bytes_per_s": {"value": 3.35e12, "source": "t"},
    "sm_count": {"value": 132, "source": "t"},
    "interconnect": {"value": "nvlink4", "source": "t"},
    "host_link": {"value": "pcie5", "source": "t"},
}
GPU_PATHS = [
    ("peak_flops", "bf16", "value"),
    ("peak_flops", "fp8"),
    ("memory_bytes", "value"),
    ("memory_bw_bytes_per_s", "value"),
    ("sm_count", "value"),
    ("interconnect", "value"),
    ("host_link",),
    ("name",),
    ("l2_bytes",),
]


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(GPU_PATHS), HOSTILE_VALUES), max_size=3),
    how=st.integers(0, 3),
    where=st.floats(0, 1),
)
def test_gpu_yaml_exits_0_or_2(tmp_path_factory, changes, how, where):
    data = copy.deepcopy(GPU)
    for path, value in changes:
        _set(data, path, value)
    path = tmp_path_factory.mktemp("gpu") / "gpu.yaml"
    path.write_text(_text_mutation(yaml.safe_dump(data), how, where))
    clear_cache()
    _run(["step", "--model", "llama-3.2-1b", "--gpu", str(path), "--decode", "8x256"])


MODEL = {
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": True,
}


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from([(k,) for k in MODEL]), HOSTILE_VALUES), max_size=3),
    how=st.integers(0, 3),
    where=st.floats(0, 1),
)
def test_model_config_exits_0_or_2(tmp_path_factory, changes, how, where):
    data = dict(MODEL)
    for path, value in changes:
        data[path[0]] = value
    path = tmp_path_factory.mktemp("model") / "config.json"
    path.write_text(_text_mutation(json.dumps(data), how, where))
    clear_cache()
    _run(["step", "--model", str(path), "--gpu", "h100-sxm", "--decode", "8x256"])


CELL = st.one_of(
    st.sampled_from(
        ["1", "0", "-3", "1e30", "9e18", "nan", "inf", "1.5", "", '"', '"1', "a,b", "\x00", "é"]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@FUZZ
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=12))
def test_trace_rows_are_each_read_or_counted(tmp_path_factory, rows):
    lines = [",".join(cells) for cells in rows]
    folder = tmp_path_factory.mktemp("trace")
    path = folder / "t.csv"
    body = "\n".join(["arrival_s,prompt_tokens,output_tokens", *lines]) + "\n"
    path.write_bytes(body.encode("utf-8", "surrogatepass"))
    # Every physical line after the header that is neither blank nor a comment is a row
    # (one that is not UTF-8 counts as a bad one).
    expected = 0
    for raw in body.encode("utf-8", "surrogatepass").split(b"\n")[1:]:
        try:
            text = raw.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            expected += 1
            continue
        expected += bool(text.strip()) and not text.lstrip().startswith("#")
    reader = TraceReader(path, skip_bad_rows=True)
    good = list(reader)
    assert reader.data_rows == expected
    assert reader.bad_rows + len(good) == expected
    for row in good:
        assert 1 <= row.prompt_tokens <= 10**9 and math.isfinite(row.time_s)
    _run(["trace", "stats", str(path), "--skip-bad-rows"])
