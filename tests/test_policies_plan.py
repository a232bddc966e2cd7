"""Batching policies called directly on hand-built views (no SimPy)."""

from __future__ import annotations

import pytest

from simulator.errors import UnknownNameError, UserError
from simulator.policies import ALL_TOKENS, ReplicaView, WaitingItem, make_policy


def view(
    waiting=(),
    prefilling=(),
    running=0,
    free=1000,
    total=1000,
    max_seqs=64,
    budget=512,
    watermark=0,
    ranks=1,
) -> ReplicaView:
    items = [
        WaitingItem(i, tokens, -(-tokens // 16), arrival, prio)
        for i, (tokens, arrival, prio) in enumerate(waiting)
    ]
    return ReplicaView(
        items, list(prefilling), running, free, total, watermark, max_seqs, budget, ranks
    )


def test_continuous_prefills_whole_prompts_first_then_decodes():
    policy = make_policy("continuous")
    plan = policy.plan(view(waiting=[(100, 0.0, 0), (200, 0.1, 0), (300, 0.2, 0)], running=5), 1)
    assert plan.admit == (0, 1) and plan.prefill_budget == ALL_TOKENS and not plan.decode
    assert policy.plan(view(running=5), 1).decode


def test_continuous_stops_at_a_blocked_head():
    plan = make_policy("continuous").plan(
        view(waiting=[(1000, 0.0, 0), (10, 0.1, 0)], free=20, budget=4096, running=1), 0
    )
    assert plan.admit == () and plan.decode  # 63 blocks needed, 20 free: no overtaking


def test_chunked_puts_decodes_first_and_fills_the_token_budget():
    policy = make_policy("chunked", chunk_size=256)
    plan = policy.plan(view(waiting=[(1000, 0.0, 0), (50, 0.1, 0)], running=56), 0)
    assert plan.decode
    assert plan.prefill_budget == 256 - 56  # decodes take one token each first
    assert plan.admit == (0,)  # the long prompt is chunked; nothing else fits this step
    # a partly prefilled prompt is continued before anything new is admitted
    plan = policy.plan(view(waiting=[(50, 0.1, 0)], prefilling=[800], running=56), 0)
    assert plan.admit == () and plan.prefill_budget == 200


def test_whole_prompt_batching_never_cuts_a_prompt_and_does_not_overtake():
    policy = make_policy("chunked", split_prompts=False)
    plan = policy.plan(view(waiting=[(300, 0.0, 0), (300, 0.1, 0)], running=56), 0)
    assert plan.decode and plan.admit == (0,) and plan.prefill_budget == 300
    # 450 tokens fit beside 100 decodes in no step of 512: it waits, and the short prompt
    # behind it waits too
    plan = policy.plan(view(waiting=[(450, 0.0, 0), (10, 0.1, 0)], running=100), 0)
    assert plan.decode and plan.admit == () and plan.prefill_budget == 0


def test_whole_prompts_are_packed_per_attention_data_parallel_rank():
    policy = make_policy("chunked", split_prompts=False)
    # two ranks of 512 tokens, 5 decodes each: one 400-token prompt per rank, not a third
    waiting = [(400, 0.0, 0), (400, 0.1, 0), (400, 0.2, 0)]
    plan = policy.plan(view(waiting=waiting, running=10, budget=1024, ranks=2), 0)
    assert plan.admit == (0, 1) and plan.prefill_budget == 800
    # small prompts fill a rank before the next one takes any
    plan = policy.plan(view(waiting=[(250, i, 0) for i in range(5)], budget=1024, ranks=2), 0)
    assert plan.admit == (0, 1, 2, 3) and plan.prefill_budget == 1000


def test_whole_prompt_batching_chunks_a_prompt_longer_than_a_rank_s_share():
    policy = make_policy("chunked", split_prompts=False)
    plan = policy.plan(view(waiting=[(2000, 0.0, 0)], running=12, budget=1024, ranks=2), 0)
    assert plan.admit == (0,) and plan.prefill_budget == 512 - 6
    # continued on the emptiest rank, before anything new is admitted
    plan = policy.plan(
        view(waiting=[(400, 0.1, 0)], prefilling=[512], running=12, budget=1024, ranks=2), 0
    )
    assert plan.admit == (0,) and plan.prefill_budget == 506 + 400


def test_chunked_token_budget_respected_with_many_small_prompts():
    plan = make_policy("chunked").plan(
        view(waiting=[(100, i, 0) for i in range(20)], running=12, budget=512), 0
    )
    assert plan.prefill_budget == 500
    assert len(plan.admit) == 5  # 5 × 100 = 500 tokens


def test_decode_priority_bounds_consecutive_prefill_steps():
    policy = make_policy("decode_priority", chunk_size=128, max_prefill_steps=2)
    busy = view(waiting=[(1000, 0.0, 0)], running=8)
    kinds = []
    for _ in range(6):
        plan = policy.plan(busy, 0)
        kinds.append("D" if plan.decode else "P")
        assert plan.prefill_budget <= 128
    assert kinds == ["P", "P", "D", "P", "P", "D"]


def test_priority_admits_the_most_urgent_class_first():
    plan = make_policy("priority").plan(
        view(waiting=[(100, 0.0, 0), (100, 0.1, 2), (100, 0.2, 1)], max_seqs=2), 0
    )
    assert plan.admit == (1, 2)


def test_static_waits_for_a_full_batch_or_the_max_wait():
    policy = make_policy("static", batch_size=4, max_wait_s=0.5)
    plan = policy.plan(view(waiting=[(100, 1.0, 0), (100, 1.1, 0)]), 1.2)
    assert plan.idle and plan.wake_at_s == pytest.approx(1.5)
    plan = policy.plan(view(waiting=[(100, 1.0, 0), (100, 1.1, 0)]), 1.5)
    assert plan.admit == (0, 1) and plan.pad
    full = policy.plan(view(waiting=[(100, 1.0 + i / 10, 0) for i in range(6)]), 1.0)
    assert full.admit == (0, 1, 2, 3)
    # while a batch runs nothing is admitted
    assert policy.plan(view(waiting=[(100, 0.0, 0)], running=4), 9).admit == ()


def test_unknown_policy_and_parameter_are_named():
    with pytest.raises(UnknownNameError, match="did you mean 'chunked'"):
        make_policy("chunkd")
    with pytest.raises(UserError, match="its parameters: chunk_size"):
        make_policy("chunked", chunk=3)
