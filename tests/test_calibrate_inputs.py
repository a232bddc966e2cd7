"""``servesim calibrate``: bad options, output paths and measurement rows are refused with a
one-line error (exit 2) before anything is written; no PyTorch or aiconfigurator-core needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "aiconfigurator"
GEMM = {"kind": "gemm", "m": 16, "k": 4096, "n": 4096, "dtype": "bf16", "ms": 0.05}


def _jsonl(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def _fit(tmp_path: Path, *rows: dict, extra: tuple[str, ...] = ()) -> list[str]:
    source = _jsonl(tmp_path / "rows.jsonl", *rows)
    out = tmp_path / "out.yaml"
    return ["calibrate", "--from", str(source), "--gpu", "h100-sxm", "-o", str(out), *extra]


def test_an_empty_aiconfigurator_system_names_the_known_ones(tmp_path, capsys):
    assert main(["calibrate", "--from-aiconfigurator", "", "-o", str(tmp_path / "x")]) == 2
    err = _error(capsys)
    assert "--from-aiconfigurator needs a system name" in err and "h100_sxm" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("engine", ["all", "vllm"])
def test_an_unknown_aiconfigurator_system_is_refused_for_every_engine(tmp_path, capsys, engine):
    argv = ["calibrate", "--from-aiconfigurator", "h100", "--engine", engine]
    assert main([*argv, "-o", str(tmp_path / "x")]) == 2
    err = _error(capsys)
    assert "unknown system 'h100'" in err and "h100_sxm" in err


def test_an_unknown_engine_is_refused(tmp_path, capsys):
    argv = ["calibrate", "--from-aiconfigurator", "h100_sxm", "--engine", "vllmm"]
    assert main([*argv, "-o", str(tmp_path / "x")]) == 2
    assert "--engine: unknown engine 'vllmm'" in _error(capsys)


def _aiconfigurator(out: Path | str) -> list[str]:
    return ["calibrate", "--from-aiconfigurator", "h100_sxm", "--engine", "vllm", "-o", str(out)]


def test_an_aiconfigurator_folder_that_is_a_file_is_refused(tmp_path, capsys):
    existing = tmp_path / "existing.txt"
    existing.write_text("keep")
    assert main(_aiconfigurator(existing)) == 2
    assert f"-o '{existing}' is a file, not a folder" in _error(capsys)
    assert existing.read_text() == "keep"


def test_an_aiconfigurator_folder_on_a_device_is_refused(capsys):
    assert main(_aiconfigurator("/dev/null")) == 2
    assert "-o '/dev/null' is a file, not a folder" in _error(capsys)


def test_an_aiconfigurator_folder_under_a_missing_one_is_refused_and_not_created(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert main(_aiconfigurator(missing / "dir" / "x")) == 2
    assert f"folder '{missing / 'dir'}' does not exist" in _error(capsys)
    assert not missing.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc")
def test_an_aiconfigurator_folder_where_nothing_can_be_written_is_refused(capsys):
    assert main(_aiconfigurator("/proc/servesim-x")) == 2
    assert "-o '/proc/servesim-x': cannot write in '/proc'" in _error(capsys)


def test_write_all_says_when_the_tables_hold_nothing_to_write(tmp_path):
    from simulator.calibrate.aiconfigurator_import import write_all

    with pytest.raises(UserError, match="no vllm GEMM table for h100_sxm"):
        write_all(tmp_path, ["h100_sxm"], ["vllm"], all_versions=True, root=FIXTURE)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_a_path_below_a_file(tmp_path):
    from simulator.calibrate.aiconfigurator_import import write

    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"-o .*cannot create its folder"):
        write({"format": "x"}, tmp_path / "file" / "vllm" / "0.1.yaml")


@pytest.mark.parametrize(
    ("system", "engine", "message"),
    [
        ("", "all", "needs a system name"),
        ("h100", "all", "unknown system 'h100'; did you mean 'h100_sxm'?"),
        ("all", "tensorrt", "unknown engine 'tensorrt'"),
    ],
)
def test_expand_refuses_unknown_names(system, engine, message):
    from simulator.calibrate.aiconfigurator_import import expand

    with pytest.raises(UserError, match=re.escape(message)):
        expand(system, engine)


def test_a_fit_output_in_a_missing_folder_is_refused_before_fitting(tmp_path, capsys):
    argv = _fit(tmp_path, GEMM, {**GEMM, "m": 64, "ms": 0.07})
    argv[-1] = str(tmp_path / "missing" / "y.yaml")
    assert main(argv) == 2
    assert f"-o '{tmp_path / 'missing' / 'y.yaml'}': folder" in _error(capsys)
    assert not (tmp_path / "missing").exists()


def test_a_fit_output_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    argv = _fit(tmp_path, GEMM)
    argv[-1] = str(tmp_path / "file" / "y.yaml")
    assert main(argv) == 2
    assert "is a file, not a folder" in _error(capsys)


def test_a_fit_output_that_is_its_measurements_is_refused(tmp_path, capsys):
    argv = _fit(tmp_path, GEMM)
    argv[-1] = argv[2]
    assert main(argv) == 2
    assert "is also a --from file" in _error(capsys)
    assert json.loads(Path(argv[2]).read_text())["kind"] == "gemm"


@pytest.mark.parametrize(
    ("row", "messages"),
    [
        (
            {k: v for k, v in GEMM.items() if k != "ms"},
            [
                "rows.jsonl line 1: gemm row needs 'ms' (milliseconds, a number > 0); "
                "got keys kind, m, k, n, dtype"
            ],
        ),
        (
            {"kind": "allreduce"},
            ["allreduce row needs 'bytes' (a whole number >= 1) and 'ms' (milliseconds"],
        ),
        ({**GEMM, "ms": "abc"}, ["gemm row: 'ms' must be milliseconds, a number > 0; got \"abc\""]),
        (
            {**GEMM, "m": -1, "k": 0, "ms": -5},
            [
                "gemm row: 'm' must be a whole number >= 1; got -1",
                "gemm row: 'k' must be a whole number >= 1; got 0",
                "gemm row: 'ms' must be milliseconds, a number > 0; got -5",
            ],
        ),
        ({"kind": "decode"}, ["decode row needs 'model' (a catalog model name), 'batch'"]),
        ({"kind": "grouped_gemm"}, ["grouped_gemm row needs 'model' (a catalog model name)"]),
        ({**GEMM, "ms": 1e-300}, ["gemm row: 'ms' is 1e-300, under 1e-06 ms"]),
        ({**GEMM, "n": 1.5, "graph": "yes"}, ["'n' must be a whole number", "'graph' must be"]),
        ({**GEMM, "dtype": "fp16"}, ["gemm row: 'dtype' must be 'bf16' or 'fp8'; got \"fp16\""]),
        (
            {"kind": "allreduce", "bytes": 4096, "ms": 0.02, "tp": 1},
            ["allreduce row: 'tp' must be a whole number of GPUs >= 2; got 1"],
        ),
        (
            {
                "kind": "decode",
                "model": "llama-3.2-1b",
                "batch": 1,
                "context": 8,
                "ms": float("nan"),
            },
            ["decode row: 'ms' must be milliseconds, a number > 0; got NaN"],
        ),
        ({"kind": ["gemm"]}, ["rows.jsonl line 1: 'kind' must be a row kind"]),
    ],
)
def test_bad_measurement_rows_are_refused_with_their_line(tmp_path, capsys, row, messages):
    env = {"kind": "env", "gpu": "NVIDIA H100 80GB HBM3"}
    argv = _fit(tmp_path, env, row)
    assert main(argv) == 2
    err = _error(capsys)
    for message in messages:
        assert message.replace("line 1", "line 2") in err
    assert "line 2:" in err
    assert not (tmp_path / "out.yaml").exists()


def test_an_unknown_model_of_a_step_row_names_its_line(tmp_path, capsys):
    row = {"kind": "decode", "model": "llama-9", "batch": 1, "context": 8, "ms": 2.0}
    assert main(_fit(tmp_path, GEMM, row)) == 2
    err = _error(capsys)
    assert "rows.jsonl line 2: decode row 'model': unknown model 'llama-9'" in err


def test_a_fit_with_every_row_held_out_is_refused(tmp_path, capsys):
    argv = _fit(tmp_path, GEMM, {**GEMM, "m": 64, "ms": 0.07}, extra=("--holdout", "kind=gemm"))
    assert main(argv) == 2
    assert "holds out all 2 timed rows; nothing is left to fit" in _error(capsys)
    assert not (tmp_path / "out.yaml").exists()


def test_a_fit_of_a_single_row_is_refused(tmp_path, capsys):
    assert main(_fit(tmp_path, GEMM)) == 2
    err = _error(capsys)
    assert "1 timed measurement left to fit cannot determine the 4 parameters" in err
    assert not (tmp_path / "out.yaml").exists()


def test_a_grouped_gemm_fit_takes_no_holdout(tmp_path, capsys):
    row = {"kind": "grouped_gemm", "model": "mixtral-8x7b", "tokens_per_expert": 4}
    row |= {"experts": 8, "rows": 32, "k": 4096, "n": 28672, "ms": 0.1}
    assert main(_fit(tmp_path, row, extra=("--holdout", "experts=8"))) == 2
    assert "--holdout: a grouped GEMM curve fit" in _error(capsys)
