"""Summary table text and the files written by write_outputs."""

import json

import numpy as np
import pandas as pd
import pytest

from simulator.metrics import format_summary_table, summarize, write_outputs
from simulator.metrics.synthetic import hand_worked_run as hand_records
from simulator.metrics.synthetic import multi_server_queue_run

SLO = {"ttft_ms": {"p99": 400}, "e2e_ms": {"p90": 5000}}


def test_table_sections_and_slo_marks():
    summary = summarize(hand_records(), slo=SLO, gpu_hour_usd=2.5)
    text = format_summary_table(summary)
    for section in ("requests", "throughput", "latency", "SLO", "utilisation", "cost", "per class"):
        assert f"\n{section}" in text or text.startswith(section), section
    # four measured requests: the point estimates miss (494 ms > 400 ms) and meet, but the
    # intervals of so few requests straddle both thresholds
    assert "? TTFT p99" in text and "target ≤ 400.0 ms: uncertain" in text
    assert "? E2E p90" in text
    header = next(line for line in text.splitlines() if "(ms)" in line)
    assert header.split() == ["(ms)", "mean", "p50", "p90", "p99", "p99.9"]
    ttft = next(line for line in text.splitlines() if line.strip().startswith("TTFT "))
    assert ttft.split()[1] == "275.0"  # the mean
    assert "SATURATED" not in text
    assert "1 × prompt + output exceeds max_model_len of 8,192 tokens" in text


def test_table_marks_certain_verdicts_of_a_long_run():
    records = multi_server_queue_run(
        rate_per_s=5, servers=8, service_s=0.8, arrival_window_s=2000, seed=0
    )
    slo = {"ttft_ms": {"p50": 50}, "e2e_ms": {"p90": 5000}}
    text = format_summary_table(summarize(records, slo=slo, gpu_hour_usd=None))
    assert "✗ TTFT p50" in text and ": missed" in text  # every TTFT is 80 ms
    assert "✓ E2E p90" in text and ": met" in text
    assert "SLO: missed" in text


def test_table_without_price_or_slo():
    text = format_summary_table(summarize(hand_records(), slo=None, gpu_hour_usd=None))
    assert "no cost.gpu_hour_usd given" in text
    assert "SLO" not in text


def test_table_is_loud_when_saturated():
    records = multi_server_queue_run(
        rate_per_s=20, servers=8, service_s=0.8, arrival_window_s=30, seed=0
    )
    text = format_summary_table(summarize(records, slo=None, gpu_hour_usd=None))
    assert text.splitlines()[0].startswith("SATURATED: ")


def test_write_outputs(tmp_path):
    records = hand_records()
    summary = summarize(records, slo=SLO, gpu_hour_usd=2.5)
    paths = write_outputs(tmp_path / "out", summary, records)
    assert [p.name for p in paths] == ["summary.json", "requests.csv", "timeseries.csv"]

    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["requests_completed"] == 4
    assert written["ttft_ms"]["mean"] == pytest.approx(275.0)
    assert written["per_class"]["rag"]["requests_total"] == 2

    requests = pd.read_csv(tmp_path / "out" / "requests.csv", keep_default_na=False)
    assert list(requests.columns[:12]) == [
        "request_id", "class_name", "arrival_s", "first_token_s", "finish_s", "prompt_tokens",
        "output_tokens", "replica", "rejected", "reject_reason", "ttft_ms", "e2e_ms",
    ]  # fmt: skip
    assert "preemptions" in requests.columns
    assert "cached_prompt_tokens" not in requests.columns
    assert len(requests) == len(records.requests)
    np.testing.assert_allclose(requests["ttft_ms"][:4].astype(float), [100, 300, 200, 500])
    assert requests["rejected"].tolist() == [False] * 4 + [True]
    assert requests["reject_reason"].tolist()[3:] == ["", records.requests.reject_reason[4]]

    series = pd.read_csv(tmp_path / "out" / "timeseries.csv")
    assert list(series.columns) == [
        "time_s", "replica", "waiting", "running", "kv_used_fraction", "batch_tokens",
    ]  # fmt: skip
    assert len(series) == len(records.timeseries.time_s)


def test_table_prices_the_gpus_an_autoscaled_fleet_held():
    from tests.test_metrics_summary import _autoscaled_hand_records

    text = format_summary_table(summarize(_autoscaled_hand_records(), slo=None, gpu_hour_usd=3.6))
    # 15 GPU-seconds held over the 5 s window: 3 GPUs on average, 4 at most
    assert "× 3 GPUs (mean held over the window; peak 4)" in text
    assert "GPUs held (peak)   4" in text
    assert "GPU busy           53.3 % of the GPU-seconds held" in text


def test_table_says_which_requests_goodput_and_attainment_are_over():
    """Goodput counts completions in the window, attainment the requests that arrived in it:
    each line names its own, so a goodput above 0 next to 0% meeting the SLO reads right."""
    slo = {"ttft_ms": {"p99": 400}}
    s = summarize(
        hand_records(),
        slo=slo,
        gpu_hour_usd=None,
        warmup_s=1.5,
        class_slos={"rag": {"e2e_ms": {"max": 1000}}},
    )
    chat = s.per_class["chat"]
    # chat: request 1 (arrived at 1 s, in the warm-up) completes in the window and meets
    # TTFT ≤ 400 ms, but no chat request arrived in the window
    assert chat["goodput_rps"] > 0 and chat["requests_measured"] == 0
    text = format_summary_table(s)
    assert "goodput (req/s)  0.571  (completions meeting every SLO threshold)" in text
    assert "of the 2 measured requests, those that arrived in the window, 50.0% met" in text
    rag = next(line for line in text.splitlines() if line.strip().startswith("rag:"))
    assert "goodput 0.286 req/s (completions meeting the SLO)" in rag
    assert "of the 2 that arrived in it, 50.0% met it" in rag
