"""Request sources: limits, determinism, laziness, classes, sessions and closed loops."""

from __future__ import annotations

import heapq
import itertools
import math
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from simulator.workload import RequestSource, build_source, iterate_requests
from simulator.workload.config import WorkloadConfig

BASE = {
    "arrival": {"process": "poisson", "rate_per_s": 20},
    "prompt_tokens": {"distribution": "lognormal", "mean": 1000, "sigma": 0.8},
    "output_tokens": {"distribution": "normal", "mean": 200, "std": 80},
}


def source_of(**overrides) -> RequestSource:
    return build_source(WorkloadConfig(**{**BASE, **overrides}))


def as_tuples(requests) -> list[tuple]:
    return [
        (
            r.request_id,
            r.arrival_s,
            r.prompt_tokens,
            r.output_tokens,
            r.class_name,
            r.session_id,
            r.turn,
            r.prefix_tokens,
        )
        for r in requests
    ]


def test_default_num_requests_and_protocol():
    source = source_of()
    assert isinstance(source, RequestSource)
    requests = list(iterate_requests(source))
    assert len(requests) == 1000  # the documented default
    assert source.exhausted and source.peek_time() == math.inf
    assert [r.request_id for r in requests] == list(range(1000))
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(requests))


def test_duration_stops_arrivals():
    requests = list(iterate_requests(source_of(duration_s=50.0)))
    assert max(r.arrival_s for r in requests) < 50.0
    assert abs(len(requests) - 1000) < 5 * math.sqrt(1000)  # 20/s for 50 s


def test_peek_then_pop_agree_and_exhausted_only_at_the_end():
    source = source_of(num_requests=5)
    for _ in range(5):
        assert not source.exhausted
        t = source.peek_time()
        assert source.pop().arrival_s == t
    assert source.exhausted
    with pytest.raises(IndexError):
        source.pop()


def test_one_seed_one_result():
    first = as_tuples(iterate_requests(source_of(seed=11, num_requests=3000)))
    assert first == as_tuples(iterate_requests(source_of(seed=11, num_requests=3000)))
    assert first != as_tuples(iterate_requests(source_of(seed=12, num_requests=3000)))


def test_changing_lengths_does_not_shift_arrivals():
    # Separate random streams: arrival times do not depend on the length distributions.
    one = list(iterate_requests(source_of(num_requests=500)))
    other = list(
        iterate_requests(
            source_of(
                num_requests=500, prompt_tokens={"distribution": "uniform", "min": 1, "max": 9}
            )
        )
    )
    assert [r.arrival_s for r in one] == [r.arrival_s for r in other]


def test_generation_is_lazy():
    source = source_of(num_requests=10_000_000)
    tracemalloc.start()
    for _ in range(50_000):
        source.pop()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Ten million requests would need gigabytes; chunks need well under 10 MB.
    assert peak < 10_000_000, peak
    assert not source.exhausted


def test_class_mix_shares_priorities_and_lengths():
    classes = [
        {"name": "chat", "weight": 3, "priority": 1},
        {
            "name": "rag",
            "weight": 1,
            "priority": 0,
            "prompt_tokens": {"distribution": "fixed", "value": 8000},
            "output_tokens": {"distribution": "fixed", "value": 100},
        },
    ]
    requests = list(iterate_requests(source_of(classes=classes, num_requests=20_000)))
    counts = Counter(r.class_name for r in requests)
    share = counts["rag"] / len(requests)
    assert abs(share - 0.25) < 5 * math.sqrt(0.25 * 0.75 / len(requests))
    rag = [r for r in requests if r.class_name == "rag"]
    chat = [r for r in requests if r.class_name == "chat"]
    assert all(r.prompt_tokens == 8000 and r.output_tokens == 100 and r.priority == 0 for r in rag)
    assert all(r.priority == 1 for r in chat)
    assert np.mean([r.prompt_tokens for r in chat]) == pytest.approx(1000, rel=0.05)


def test_length_correlation_links_prompt_and_output():
    requests = list(iterate_requests(source_of(length_correlation=0.9, num_requests=20_000)))
    prompts = np.array([r.prompt_tokens for r in requests])
    outputs = np.array([r.output_tokens for r in requests])
    assert np.corrcoef(np.argsort(np.argsort(prompts)), np.argsort(np.argsort(outputs)))[0, 1] > 0.8


def test_sessions_resend_history_as_tagged_prefix():
    source = source_of(
        num_requests=3000,
        sessions={
            "turns": 4,
            "think_time_s": 5.0,
            "followup_tokens": {"distribution": "fixed", "value": 50},
        },
    )
    requests = list(iterate_requests(source))  # each request finishes when it arrives
    assert source.exhausted
    by_session: dict[int, list] = {}
    for r in requests:
        by_session.setdefault(r.session_id, []).append(r)
    complete = [turns for turns in by_session.values() if len(turns) == 4]
    assert len(complete) > 500
    for turns in complete:
        assert [t.turn for t in turns] == [0, 1, 2, 3]
        assert turns[0].prefix_tokens == 0
        for before, after in itertools.pairwise(turns):
            assert after.prefix_id == before.prefix_id == before.session_id
            assert after.prefix_tokens == before.prompt_tokens + before.output_tokens
            assert after.prompt_tokens == after.prefix_tokens + 50
            assert after.arrival_s == pytest.approx(before.arrival_s + 5.0)


def test_session_waits_for_completion_and_max_context_ends_it():
    source = source_of(
        num_requests=10,
        arrival={"process": "constant", "interval_s": 1000},
        sessions={"turns": 3, "think_time_s": 1.0, "max_context_tokens": 10**6},
    )
    first = source.pop()
    assert source.peek_time() == pytest.approx(2000)  # next session; turn 2 needs a completion
    source.on_finish(first, 1500.0)
    assert source.peek_time() == pytest.approx(1501.0)
    second = source.pop()
    assert (second.session_id, second.turn) == (first.session_id, 1)
    limited = source_of(
        num_requests=10,
        arrival={"process": "constant", "interval_s": 1000},
        prompt_tokens={"distribution": "fixed", "value": 600},
        output_tokens={"distribution": "fixed", "value": 100},
        sessions={"turns": 5, "max_context_tokens": 1000},
    )
    request = limited.pop()
    limited.on_finish(request, 1.0)  # 600 + 100 + 600 > 1000: the conversation ends
    assert limited.peek_time() == pytest.approx(2000)


def simulate_closed_loop(source, service_s: float) -> tuple[int, list]:
    """Serve every request in ``service_s``; return the most requests in flight at once."""
    in_flight: list[tuple[float, int, object]] = []
    most, issued = 0, []
    while not source.exhausted:
        next_arrival = source.peek_time()
        if in_flight and in_flight[0][0] <= next_arrival:
            finish_s, _, request = heapq.heappop(in_flight)
            source.on_finish(request, finish_s)
            continue
        if next_arrival == math.inf:
            break
        request = source.pop()
        issued.append(request)
        heapq.heappush(in_flight, (request.arrival_s + service_s, request.request_id, request))
        most = max(most, len(in_flight))
    return most, issued


def test_closed_loop_keeps_users_busy_and_waits_for_answers():
    source = source_of(
        arrival={"process": "closed_loop", "users": 8, "think_time_s": 1.0}, num_requests=800
    )
    assert source.peek_time() == 0.0
    most, issued = simulate_closed_loop(source, service_s=2.0)
    assert most == 8 and len(issued) == 800
    # Each user cycles every service + think = 3 s: 8 users give 8/3 requests per second.
    span = issued[-1].arrival_s - issued[0].arrival_s
    assert len(issued) / span == pytest.approx(8 / 3, rel=0.02)


def test_closed_loop_all_waiting_peeks_inf_but_not_exhausted():
    source = source_of(arrival={"process": "closed_loop", "users": 2}, num_requests=10)
    a, b = source.pop(), source.pop()
    assert source.peek_time() == math.inf and not source.exhausted
    source.on_finish(a, 3.0)
    assert source.peek_time() == 3.0
    source.on_finish(b, 4.0)
    assert source.pop().arrival_s == 3.0


def test_closed_loop_users_carry_on_their_conversations():
    source = source_of(
        arrival={"process": "closed_loop", "users": 3, "think_time_s": 100.0},
        sessions={"turns": 2, "think_time_s": 1.0},
        output_tokens={"distribution": "fixed", "value": 10},
        num_requests=60,
    )
    most, issued = simulate_closed_loop(source, service_s=0.5)
    assert most == 3 and len(issued) == 60
    first_turns = {r.session_id: r for r in issued if r.turn == 0}
    for r in issued:
        if r.turn == 1:
            start = first_turns[r.session_id]
            # Session think time after the answer, and the history as prefix.
            assert r.arrival_s == pytest.approx(start.arrival_s + 0.5 + 1.0)
            assert r.prefix_tokens == start.prompt_tokens + 10
    # After its last turn a user thinks for the closed-loop think time before a new session.
    starts = sorted(r.arrival_s for r in first_turns.values())
    assert starts[3] == pytest.approx(starts[0] + 0.5 + 1.0 + 0.5 + 100.0)
