"""The simulated engine against closed forms: single requests, M/D/1 queueing, Little's law,
and the roofline bound on throughput."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.api import build_cost_model, build_simulation, run
from simulator.costmodel.shape import StepShape
from simulator.specs.catalog import load_gpu, load_model
from tests.conftest import make_scenario


def test_light_load_latency_equals_single_request_step_times():
    prompt, output = 700, 50
    scenario = make_scenario(
        workload={
            "arrival": {"process": "poisson", "rate_per_s": 0.05},
            "num_requests": 5,
            "prompt_tokens": {"distribution": "fixed", "value": prompt},
            "output_tokens": {"distribution": "fixed", "value": output},
        }
    )
    result = run(scenario)
    cost = build_cost_model(scenario)
    prefill_s = cost.step_time_s(StepShape.build(prefills=[(prompt, 0)]))
    decode_s = cost.decode_run_s(1, prompt, output - 1)
    req = result.records.requests
    # arrivals 20 s apart on average: every request finds the replica idle (checked here)
    assert np.all(req.arrival_s[1:] > req.finish_s[:-1])
    ttft = req.first_token_s - req.arrival_s
    tpot = (req.finish_s - req.first_token_s) / (output - 1)
    np.testing.assert_allclose(ttft, prefill_s, rtol=1e-9)
    np.testing.assert_allclose(tpot, decode_s.mean(), rtol=1e-9)


def _md1_scenario(rho: float, service_s: float, n: int):
    return make_scenario(
        engine={"max_num_seqs": 1},
        workload={
            "arrival": {"process": "poisson", "rate_per_s": rho / service_s},
            "prompt_tokens": {"distribution": "fixed", "value": 1024},
            "output_tokens": {"distribution": "fixed", "value": 1},
            "num_requests": n,
            "seed": 3,
        },
    )


def test_md1_queue_waiting_time_matches_pollaczek_khinchine():
    # One request at a time, fixed prompt, one output token: an M/D/1 queue whose service
    # time is the prefill step. Mean wait Wq = rho * S / (2 (1 - rho)).
    probe = _md1_scenario(0.5, 1.0, 10)
    service_s = build_cost_model(probe).step_time_s(StepShape.build(prefills=[(1024, 0)]))
    rho = 0.7
    scenario = _md1_scenario(rho, service_s, 40_000)
    req = run(scenario).records.requests
    wait = (req.first_token_s - req.arrival_s) - service_s
    expected = rho * service_s / (2 * (1 - rho))
    assert wait.mean() == pytest.approx(expected, rel=0.05)
    assert wait.min() >= -1e-12


def test_littles_law_on_the_waiting_queue():
    probe = _md1_scenario(0.5, 1.0, 10)
    service_s = build_cost_model(probe).step_time_s(StepShape.build(prefills=[(1024, 0)]))
    scenario = _md1_scenario(0.8, service_s, 20_000)
    sim = build_simulation(scenario)
    env = sim.env
    samples: list[int] = []
    interval = service_s / 7  # not a divisor of the service time

    def monitor():
        while True:
            waiting = sum(r.status.waiting for r in sim.replicas)  # arrivals so far routed
            if sim.source.exhausted:
                return
            samples.append(waiting)
            yield env.timeout(interval)

    env.process(monitor())
    req = sim.run().requests
    horizon = len(samples) * interval
    waits = (req.first_token_s - req.arrival_s) - service_s  # time in the queue
    lam = len(req) / req.arrival_s.max()
    mean_queue = float(np.mean(samples))
    assert horizon == pytest.approx(req.arrival_s.max(), rel=0.01)
    assert mean_queue == pytest.approx(lam * waits.mean(), rel=0.05)


def test_throughput_never_exceeds_the_roofline_bound():
    scenario = make_scenario(
        model="llama-3.1-8b",
        engine={"max_num_seqs": 128, "max_num_batched_tokens": 8192},
        workload={
            "arrival": {"process": "poisson", "rate_per_s": 500},
            "num_requests": 1500,
            "prompt_tokens": {"distribution": "uniform", "min": 100, "max": 2000},
            "output_tokens": {"distribution": "uniform", "min": 10, "max": 300},
        },
    )
    summary = run(scenario).summary
    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100-sxm")
    # Every decode step streams all weights at most at datasheet bandwidth and yields at most
    # max_num_seqs tokens; every token needs at least 2 FLOPs per (non-embedding) parameter.
    step_floor_s = model.weight_bytes("bf16") / 2 / gpu.memory_bw_bytes_per_s  # half: generous
    assert summary["output_tokens_per_s"] <= 128 / step_floor_s
    flops_per_token = 2 * (model.param_count() - model.vocab_size * model.hidden_size)
    assert summary["total_tokens_per_s"] <= gpu.peak_flops["bf16"] / flops_per_token
