"""Offline arrivals: every request queued at t = 0, throughput over the makespan."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.api import build_cost_model, run
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.metrics.output import format_summary_table
from simulator.metrics.summary import OFFLINE_BASIS, STEADY_BASIS
from simulator.workload.config import OfflineArrival
from tests.conftest import make_scenario

OFFLINE = {"arrival": {"process": "offline"}, "num_requests": 200}


def test_offline_stream_is_all_zeros():
    stream = OfflineArrival(process="offline").stream(np.random.default_rng(0))
    assert [stream.next() for _ in range(5000)] == [0.0] * 5000


def test_every_request_arrives_at_zero_and_completes():
    result = run(make_scenario(workload=OFFLINE))
    req = result.records.requests
    assert len(req) == 200
    assert np.all(req.arrival_s == 0.0)
    assert np.all(np.isfinite(req.finish_s))


def test_throughput_is_output_tokens_over_the_makespan():
    result = run(make_scenario(workload=OFFLINE))
    req, summary = result.records.requests, result.summary_obj
    makespan_s = float(req.finish_s.max())  # first arrival is 0
    assert summary.duration_s == pytest.approx(makespan_s, rel=1e-12)
    assert summary.output_tokens_per_s == pytest.approx(
        float(req.output_tokens.sum()) / makespan_s, rel=1e-12
    )
    assert summary.throughput_rps == pytest.approx(200 / makespan_s, rel=1e-12)
    assert summary.throughput_basis == OFFLINE_BASIS
    assert summary.requests_measured == 200
    # Poisson arrivals: the steady window (warm-up cut, to the end of arrivals)
    assert run(make_scenario()).summary_obj.throughput_basis == STEADY_BASIS


def test_offline_runs_are_deterministic():
    first = run(make_scenario(workload=OFFLINE)).summary
    second = run(make_scenario(workload=OFFLINE)).summary
    assert first == second


def test_offline_runs_claim_no_sampling_interval():
    """An offline run is one sweep, not samples of a steady state: slices of its makespan and
    batches of consecutive requests are no samples of one process, so no interval is given
    (the SLO verdict follows the point estimate); the same workload as steady traffic gets
    its intervals."""
    workload = {**OFFLINE, "num_requests": 400}
    summary = run(make_scenario(workload=workload)).summary_obj
    assert summary.throughput_ci95_rps is None
    assert summary.latency_ci95_ms == {}
    assert summary.slo["constraints"]
    for constraint in summary.slo["constraints"]:
        assert constraint["ci95_ms"] == [constraint["observed_ms"]] * 2
        assert constraint["verdict"] == ("met" if constraint["met"] else "missed")
    assert "no 95% interval" in format_summary_table(summary)
    steady = run(make_scenario(workload={"num_requests": 400})).summary_obj
    assert steady.throughput_ci95_rps is not None
    assert steady.latency_ci95_ms


def test_one_batch_makespan_is_one_prefill_then_the_decode_steps():
    """Four requests that fit one step: the makespan is the prefill step of all four plus
    the decode steps of the batch of four, priced by the cost model directly."""
    prompt, output, n = 500, 40, 4
    scenario = make_scenario(
        workload={
            "arrival": {"process": "offline"},
            "num_requests": n,
            "prompt_tokens": {"distribution": "fixed", "value": prompt},
            "output_tokens": {"distribution": "fixed", "value": output},
        }
    )
    cost = build_cost_model(scenario)
    prefill_s = cost.step_time_s(StepShape.build(prefills=[(prompt, 0)] * n))
    decode_s = cost.decode_run_s(n, n * prompt, output - 1).sum()
    req = run(scenario).records.requests
    np.testing.assert_allclose(req.first_token_s, prefill_s, rtol=1e-9)
    assert float(req.finish_s.max()) == pytest.approx(prefill_s + decode_s, rel=1e-9)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workload": {**OFFLINE, "duration_s": 60}}, "duration_s"),
        ({"workload": OFFLINE, "output": {"warmup_s": 5}}, "output.warmup_s"),
    ],
)
def test_offline_rejects_settings_that_do_not_apply(changes, message):
    with pytest.raises(UserError, match=message):
        make_scenario(**changes)
