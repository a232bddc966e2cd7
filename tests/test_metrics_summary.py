"""summarize(): hand-built records with known TTFT/TPOT/E2E, goodput, cost, classes, warmup."""

import json

import numpy as np
import pytest

from simulator.errors import UserError
from simulator.metrics import GapHistogram, summarize
from simulator.metrics.synthetic import hand_worked_run as hand_records


def test_counts_and_window():
    s = summarize(hand_records(), slo=None, gpu_hour_usd=None)
    assert (s.requests_total, s.requests_completed, s.requests_rejected) == (5, 4, 1)
    assert s.requests_unfinished == 0
    assert s.duration_s == pytest.approx(5.0)  # first arrival 0 .. last completion 5.0
    assert s.throughput_rps == pytest.approx(4 / 5)
    assert s.output_tokens_per_s == pytest.approx((11 + 21 + 1 + 16) / 5)
    assert s.total_tokens_per_s == pytest.approx((49 + 400) / 5)
    assert not s.saturated


def test_latency_means_and_percentiles_are_exact():
    s = summarize(hand_records(), slo=None, gpu_hour_usd=None)
    # TTFT 100, 300, 200, 500 ms: sorted 100 200 300 500, linear interpolation of ranks.
    assert s.ttft_ms["mean"] == pytest.approx(275.0)
    assert s.ttft_ms["p50"] == pytest.approx(250.0)
    assert s.ttft_ms["p90"] == pytest.approx(300 + 0.7 * 200)
    assert s.ttft_ms["p99"] == pytest.approx(300 + 0.97 * 200)
    assert s.ttft_ms["p99.9"] == pytest.approx(300 + 0.997 * 200)
    # TPOT: 1000/10, 1000/20, 1500/15; the one-token request has no TPOT.
    assert s.tpot_ms["mean"] == pytest.approx(250 / 3)
    assert s.tpot_ms["p50"] == pytest.approx(100.0)
    # E2E 1100, 1300, 200, 2000.
    assert s.e2e_ms["mean"] == pytest.approx(1150.0)
    assert s.e2e_ms["p50"] == pytest.approx(1200.0)
    assert s.e2e_ms["max"] == pytest.approx(2000.0)
    # ITL from the histogram: 20 × 50 ms and 25 × 100 ms.
    assert s.itl_ms["mean"] == pytest.approx((20 * 50 + 25 * 100) / 45)
    assert s.itl_ms["p50"] == pytest.approx(100.0, rel=1e-3)
    assert s.itl_ms["p90"] == pytest.approx(100.0, rel=1e-3)


def test_goodput_counts_exactly_the_requests_meeting_every_threshold():
    slo = {"ttft_ms": {"p99": 400}, "e2e_ms": {"p90": 1500}, "tpot_ms": {"p50": 90}}
    s = summarize(hand_records(), slo=slo, gpu_hour_usd=None)
    # Per request: #0 TPOT 100 > 90 ✗; #1 ✓; #2 ✓ (no TPOT); #3 TTFT 500 > 400 ✗.
    assert s.goodput_rps == pytest.approx(2 / 5)
    assert s.slo["attainment"] == pytest.approx(0.5)
    by_metric = {c["metric"]: c for c in s.slo["constraints"]}
    assert by_metric["ttft_ms"]["observed_ms"] == pytest.approx(494.0)
    assert by_metric["ttft_ms"]["met"] is False
    assert by_metric["e2e_ms"]["observed_ms"] == pytest.approx(1300 + 0.7 * 700)
    assert by_metric["e2e_ms"]["met"] is False
    assert by_metric["tpot_ms"]["observed_ms"] == pytest.approx(100.0)
    assert by_metric["tpot_ms"]["met"] is False
    assert s.slo["all_met"] is False


def test_loose_slo_is_met_and_goodput_equals_throughput():
    slo = {"ttft_ms": {"p99": 1000, "max": 600}, "itl_ms": {"p99": 150}}
    s = summarize(hand_records(), slo=slo, gpu_hour_usd=None)
    assert s.goodput_rps == pytest.approx(s.throughput_rps)
    assert s.slo["attainment"] == 1.0
    assert all(c["met"] for c in s.slo["constraints"])
    itl = next(c for c in s.slo["constraints"] if c["metric"] == "itl_ms")
    assert itl["observed_ms"] == pytest.approx(100.0, rel=1e-3)


def test_itl_constraint_does_not_judge_requests():
    s = summarize(hand_records(), slo={"itl_ms": {"p50": 1}}, gpu_hour_usd=None)
    assert s.slo["constraints"][0]["met"] is False
    assert s.goodput_rps == pytest.approx(s.throughput_rps)


def test_cost_per_million_output_tokens_hand_calculated():
    s = summarize(hand_records(), slo=None, gpu_hour_usd=3.6)
    window_cost = 3.6 * 2 * 5.0 / 3600  # $/GPU-hour × GPUs × hours = $0.01
    assert s.gpu_cost_usd == pytest.approx(window_cost)
    assert s.cost_per_million_output_tokens_usd == pytest.approx(window_cost / 49 * 1e6)
    assert s.cost_per_million_total_tokens_usd == pytest.approx(window_cost / 449 * 1e6)
    assert (
        summarize(hand_records(), slo=None, gpu_hour_usd=None).to_dict()[
            "cost_per_million_output_tokens_usd"
        ]
        is None
    )


def test_utilisation():
    s = summarize(hand_records(), slo=None, gpu_hour_usd=None)
    assert s.num_gpus == 2
    assert s.gpu_busy_fraction == pytest.approx(4.0 / 5.0)
    assert s.mean_batch_size == pytest.approx(6.0 / 4.0)
    assert s.peak_kv_use_fraction == pytest.approx(0.4)
    assert s.preemptions == 3


def test_rejections_grouped_by_reason():
    s = summarize(hand_records(), slo=None, gpu_hour_usd=None)
    assert s.rejections == {"prompt + output exceeds max_model_len of 8,192 tokens": 1}


def test_warmup_excludes_requests_that_arrived_in_it():
    s = summarize(hand_records(), slo=None, gpu_hour_usd=None, warmup_s=1.5)
    assert s.window_start_s == pytest.approx(1.5)
    assert s.duration_s == pytest.approx(3.5)
    # latencies: requests 0 and 1 arrived (0 s, 1 s) inside the warm-up
    assert s.requests_measured == 2
    assert s.ttft_ms["mean"] == pytest.approx((200 + 500) / 2)
    # rates: completions inside the window (request 1 finished at 2.3 s, in it)
    assert s.requests_completed == 4
    assert s.requests_completed_in_window == 3
    assert s.throughput_rps == pytest.approx(3 / 3.5)


def test_unfinished_requests_are_counted_and_flag_saturation():
    s = summarize(hand_records(unfinished=True), slo=None, gpu_hour_usd=None)
    assert s.requests_unfinished == 1
    assert s.requests_completed == 4
    assert s.saturated
    assert "unfinished" in s.saturation_reason


def test_per_class_metrics_and_class_slo():
    slo = {"ttft_ms": {"p99": 400}}
    s = summarize(
        hand_records(), slo=slo, gpu_hour_usd=None, class_slos={"rag": {"e2e_ms": {"max": 1000}}}
    )
    assert set(s.per_class) == {"chat", "rag"}
    chat, rag = s.per_class["chat"], s.per_class["rag"]
    assert (chat["requests_total"], chat["requests_completed"], chat["requests_rejected"]) == (
        3,
        2,
        1,
    )
    assert chat["throughput_rps"] == pytest.approx(2 / 5)
    assert chat["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert rag["e2e_ms"]["mean"] == pytest.approx(1100.0)
    # chat judged on TTFT ≤ 400 (both meet); rag on E2E ≤ 1000 (only the 200 ms one meets).
    assert chat["goodput_rps"] == pytest.approx(2 / 5)
    assert rag["goodput_rps"] == pytest.approx(1 / 5)
    assert rag["slo"]["constraints"][0]["metric"] == "e2e_ms"
    assert s.goodput_rps == pytest.approx(3 / 5)


def test_single_class_has_no_per_class_section():
    records = hand_records()
    records.requests.class_name[:] = "default"
    assert summarize(records, slo=None, gpu_hour_usd=None).per_class == {}


def test_to_dict_is_json_ready_and_has_the_interface_keys():
    records = hand_records()
    records.itl = GapHistogram()  # no gaps: ITL statistics are NaN -> None
    d = summarize(records, slo={"ttft_ms": {"p99": 400}}, gpu_hour_usd=2.5).to_dict()
    json.dumps(d, allow_nan=False)
    for key in (
        "requests_total", "requests_completed", "requests_rejected", "requests_unfinished",
        "duration_s", "throughput_rps", "output_tokens_per_s", "total_tokens_per_s",
        "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "goodput_rps", "slo", "saturated",
        "saturation_reason", "gpu_busy_fraction", "mean_batch_size", "peak_kv_use_fraction",
        "num_gpus", "cost_per_million_output_tokens_usd", "per_class", "rejections",
        "preemptions",
    ):  # fmt: skip
        assert key in d, key
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert {"mean", "p50", "p90", "p99", "p99.9"} <= set(d[metric])
    assert d["itl_ms"]["p50"] is None
    assert "attainment" in d["slo"]


@pytest.mark.parametrize(
    ("slo", "fragment"),
    [
        ({"ttfb_ms": {"p99": 1}}, "slo.ttfb_ms: unknown SLO metric"),
        ({"ttft_ms": {"p101": 1}}, "slo.ttft_ms.p101"),
        ({"ttft_ms": {"median": 1}}, "slo.ttft_ms.median: 'median' is not a percentile"),
        ({"ttft_ms": {"p99": -5}}, "slo.ttft_ms.p99: -5 must be a positive number"),
        ({"tpot_ms": 50}, "slo.tpot_ms: expected a mapping"),
    ],
)
def test_bad_slo_names_the_dotted_path(slo, fragment):
    with pytest.raises(UserError) as info:
        summarize(hand_records(), slo=slo, gpu_hour_usd=None)
    assert fragment in str(info.value)


def test_every_slo_mistake_is_reported_at_once():
    with pytest.raises(UserError) as info:
        summarize(
            hand_records(), slo={"ttft_ms": {"p0": 1}, "e2e_ms": {"p99": "x"}}, gpu_hour_usd=None
        )
    assert len(info.value.messages) == 2


def test_empty_run():
    records = hand_records()
    keep = np.zeros(5, dtype=bool)
    for name in ("request_id", "arrival_s", "first_token_s", "finish_s", "prompt_tokens",
                 "output_tokens", "replica", "class_name", "rejected", "reject_reason",
                 "preemptions"):  # fmt: skip
        setattr(records.requests, name, getattr(records.requests, name)[keep])
    d = summarize(records, slo={"ttft_ms": {"p99": 400}}, gpu_hour_usd=1.0).to_dict()
    assert d["requests_total"] == 0
    assert d["throughput_rps"] == 0.0
    assert d["ttft_ms"]["mean"] is None
    json.dumps(d, allow_nan=False)


def test_mean_targets_and_unconstrained_metrics():
    slo = {"ttft_ms": {"mean": 250}, "itl_ms": {"mean": 70}, "e2e_ms": None}
    s = summarize(hand_records(), slo=slo, gpu_hour_usd=None)
    ttft, itl = s.slo["constraints"]
    assert (ttft["percentile"], ttft["met"]) == ("mean", False)
    assert ttft["observed_ms"] == pytest.approx(275.0)
    assert itl["observed_ms"] == pytest.approx((20 * 50 + 25 * 100) / 45)
    assert itl["met"] is False
    # Per request, a mean target is a threshold like any other: TTFT 100 and 200 ms meet 250.
    assert s.goodput_rps == pytest.approx(2 / 5)


def test_per_class_itl_unknown_without_per_class_histograms():
    s = summarize(hand_records(), slo={"itl_ms": {"p99": 500}}, gpu_hour_usd=None)
    assert s.slo["all_met"] is True
    chat = s.per_class["chat"]
    assert chat["itl_ms"]["mean"] != chat["itl_ms"]["mean"]  # NaN: not tracked per class
    assert chat["slo"]["constraints"][0]["met"] is None
    assert chat["slo"]["all_met"] is None


def test_per_class_itl_from_per_class_histograms():
    records = hand_records()
    for name, gap_s in (("chat", 0.02), ("rag", 0.9)):
        records.itl_by_class[name] = GapHistogram()
        records.itl_by_class[name].add_value(gap_s, 10)
    s = summarize(records, slo={"itl_ms": {"p99": 500}}, gpu_hour_usd=None)
    assert s.per_class["chat"]["itl_ms"]["p99"] == pytest.approx(20.0)
    assert s.per_class["chat"]["slo"]["all_met"] is True
    assert s.per_class["rag"]["slo"]["all_met"] is False


def test_default_windows_stay_few_over_any_span():
    """Round lengths give at least 12 windows; a span past 100 of the longest round length
    is cut into whole days (a 2-row trace over 1e9 s printed 69,444 rows)."""
    from simulator.metrics.per_window import MIN_WINDOWS, default_window_s

    assert default_window_s(86_400.0, 1e9) == 3_600.0  # a daily cycle: its hours
    assert default_window_s(None, 120.0) == 10.0
    for span_s in (3.0 * 86_400, 30.0 * 86_400, 365.0 * 86_400, 1e9):
        windows = span_s / default_window_s(None, span_s)
        assert MIN_WINDOWS <= windows <= 100


def _autoscaled_hand_records():
    """The hand-worked run on a fleet that may run 4 replicas of 2 GPUs: it holds one from
    0 to 2.5 s, two to 5 s (one more started and released at 2.5 s, held no time), and
    only the first replica steps (4 busy seconds)."""
    from dataclasses import replace

    from simulator.metrics.records import FleetRecord

    records = hand_records()
    idle = replace(records.replicas[0], busy_s=0.0, steps=0, batch_seq_seconds=0.0)
    records.replicas += [replace(idle, replica=i) for i in (1, 2, 3)]
    records.num_gpus = 8
    records.fleet = FleetRecord(
        times_s=[0.0, 2.5, 2.5, 5.0],
        serving=[1, 2, 2, 0],
        held=[1, 3, 2, 0],
        mean_held=1.5,
        max_held=3,
        replica_seconds_held=7.5,
        gpu_seconds_held=15.0,
    )
    return records


def test_autoscaled_utilisation_and_cost_count_the_gpus_held():
    s = summarize(_autoscaled_hand_records(), slo=None, gpu_hour_usd=3.6)
    # 8 busy GPU-seconds of 2 × 2.5 + 4 × 2.5 = 15 held (not 8 GPUs × 5 s = 40)
    assert s.gpu_busy_fraction == pytest.approx(8.0 / 15.0)
    assert s.num_gpus == 4  # the most held for any time: 2 replicas × 2 GPUs
    assert s.gpu_cost_usd == pytest.approx(3.6 * 15.0 / 3600)
