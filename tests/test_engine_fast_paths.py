"""The engine's fast paths give the results of the plain ones, to the last bit: the batch
clock against per-sequence bookkeeping, arrivals taken by the replica itself against an
arrival process, decode runs priced step by step against arrays, exact timeouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from simulator.api import build_cost_model, build_simulation
from simulator.costmodel.shape import StepShape
from simulator.engine.batch import RunningBatch
from simulator.engine.intake import timeout_at
from simulator.engine.steps import prices_runs_step_by_step
from tests.conftest import make_scenario

BLOCK = 16


def _blocks(contexts, shared) -> int:
    return sum(-(-c // BLOCK) for c in contexts) - sum(shared)


def test_batch_clock_matches_per_sequence_bookkeeping():
    rng = np.random.default_rng(3)
    batch = RunningBatch(capacity=64, block_size=BLOCK)
    rows: list[list[int]] = []  # [ordinal, context, remaining, shared] per live sequence
    for step in range(400):
        if rows and rng.random() < 0.5:
            shortest = min(r[2] for r in rows)
            steps = int(rng.integers(1, shortest + 1))
            growth = _blocks([r[1] + steps for r in rows], []) - _blocks([r[1] for r in rows], [])
            assert batch.blocks_needed(steps) == growth
            batch.advance(steps, float(step))
            for r in rows:
                r[1] += steps
                r[2] -= steps
            done = [r for r in rows if r[2] == 0]
            ordinals, contexts, shared = batch.take_finished()
            assert ordinals == [r[0] for r in done]
            assert contexts == [r[1] for r in done]
            rows = [r for r in rows if r[2] > 0]
        elif rows and rng.random() < 0.1:
            ordinal, context, remaining, _, shared = batch.pop_last()
            assert [ordinal, context, remaining, shared] == rows.pop()
        elif len(rows) < 64:
            row = [step, int(rng.integers(1, 900)), int(rng.integers(1, 50)), 0]
            batch.append(row[0], row[1], row[2], float(step))
            rows.append(row)
        assert batch.size == len(rows)
        assert batch.context_sum == sum(r[1] for r in rows)
        assert batch.blocks_held == _blocks([r[1] for r in rows], [r[3] for r in rows])
        if rows:
            assert batch.shortest == min(r[2] for r in rows)


class _WithFeedback:
    """A source whose completions may schedule arrivals: the engine routes its arrivals with
    an arrival process, never inline."""

    def __init__(self, source):
        self._source = source
        self.completion_feedback = True

    def __getattr__(self, name):
        return getattr(self._source, name)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"engine": {"batching": "chunked"}},
        {"engine": {"batching": "decode_priority"}},
        {"workload": {"arrival": {"process": "offline"}}},
        {"workload": {"arrival": {"process": "constant", "interval_s": 0.05}}},
    ],
    ids=["continuous", "chunked", "decode_priority", "offline", "constant"],
)
def test_arrivals_taken_inline_give_the_arrival_process_results(changes):
    scenario = make_scenario(**changes)
    inline = build_simulation(scenario)
    assert inline.replicas[0].intake is not None and inline.replicas[0].alone
    plain = build_simulation(scenario)
    plain_source = _WithFeedback(plain.source)
    plain = type(plain)(
        _deployment(scenario), plain_source, sample_interval_s=scenario.output.timeseries_interval_s
    )
    assert plain.replicas[0].intake is None
    a, b = inline.run(), plain.run()
    for column in ("arrival_s", "first_token_s", "finish_s", "replica"):
        np.testing.assert_array_equal(getattr(a.requests, column), getattr(b.requests, column))
    np.testing.assert_array_equal(a.timeseries.time_s, b.timeseries.time_s)
    np.testing.assert_array_equal(a.timeseries.waiting, b.timeseries.waiting)
    assert a.end_s == b.end_s and a.itl.sum_s == b.itl.sum_s


def _deployment(scenario):
    from simulator.config.compile import compile_scenario

    return compile_scenario(scenario)


def test_roofline_prices_a_decode_run_step_by_step_exactly():
    for changes in ({}, {"hardware": {"tensor_parallel": 2}}, {"engine": {"cuda_graphs": False}}):
        cost = build_cost_model(make_scenario(**changes))
        assert prices_runs_step_by_step(cost)
        for seqs, context in ((1, 100), (37, 20_000), (256, 900_000)):
            run = cost.decode_run_s(seqs, context, 20)
            steps = [
                cost.step_time_s(
                    StepShape(
                        decode_seqs=seqs, decode_context_tokens=context + i * seqs, logits_rows=seqs
                    )
                )
                for i in range(20)
            ]
            assert steps == run.tolist()


def test_timeout_at_lands_on_the_time_asked():
    env = simpy.Environment()
    times = [0.1, 0.30000000000000004, 1e-9, 12345.678901234567, 86399.99999999999]
    seen = []

    def process():
        for t in sorted(times):
            yield env.timeout(0.7)  # move the clock off round numbers first
            target = env.now + t
            yield timeout_at(env, target)
            seen.append(env.now == target)

    env.process(process())
    env.run()
    assert seen == [True] * len(times)
    assert math.isfinite(env.now)
