"""Parts of the engine called directly: the compiled deployment, speculative pricing, gap
recording and KV block accounting (no SimPy run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from simulator.config.compile import compile_scenario
from simulator.costmodel.shape import StepShape
from simulator.engine.batch import RunningBatch
from simulator.engine.entities import Waiting
from simulator.engine.gaps import TokenGaps
from simulator.engine.kv_blocks import KvBlocks
from simulator.engine.speculative import SpeculativeCostModel
from simulator.errors import UserError
from simulator.specs.catalog import specs_dir
from tests.conftest import make_scenario

SHAPES = [
    StepShape(decode_seqs=8, decode_context_tokens=8 * 700, logits_rows=8),
    StepShape(decode_seqs=1, decode_context_tokens=30, logits_rows=1),
    StepShape.build(prefills=[(512, 0)], decode_contexts=[300, 900]),
]


def _with_mtp_layer(folder: Path) -> str:
    """Llama-3.1-8B's config with one multi-token-prediction module (a config.json path)."""
    config = json.loads((specs_dir() / "models" / "llama-3.1-8b.json").read_text())
    path = folder / "config.json"
    path.write_text(json.dumps({**config, "num_nextn_predict_layers": 1}))
    return str(path)


@pytest.mark.parametrize("method", ["draft", "mtp"])
def test_speculative_price_is_the_step_time_with_its_ops(method, tmp_path):
    spec = {"method": method, "num_speculative_tokens": 3, "acceptance_rate": 0.6}
    model = "llama-3.1-8b"
    if method == "draft":
        spec["draft_model"] = "llama-3.2-1b"
    else:
        model = _with_mtp_layer(tmp_path)
    deployment = compile_scenario(make_scenario(model=model, engine={"speculative": spec}))
    cost = deployment.groups[0].cost_model
    assert isinstance(cost, SpeculativeCostModel)
    for shape in SHAPES:
        priced = cost.price(shape)
        assert priced.total_s == cost.step_time_s(shape)
        assert math.fsum(op.time_s for op in priced.ops) == pytest.approx(priced.total_s)
    decode = cost.price(SHAPES[0])
    assert any(op.name.startswith("draft ") for op in decode.ops)
    assert any(op.name.startswith("verify ") for op in decode.ops)
    run = cost.decode_run_s(8, 8 * 700, 3)
    assert run[0] == pytest.approx(cost.step_time_s(SHAPES[0]))


def test_mtp_speculation_needs_a_model_that_ships_mtp_layers():
    spec = {"method": "mtp", "num_speculative_tokens": 3, "acceptance_rate": 0.6}
    with pytest.raises(UserError, match=r"mtp needs a model .* llama-3\.1-8b has none"):
        compile_scenario(make_scenario(model="llama-3.1-8b", engine={"speculative": spec}))


def test_deployment_groups_carry_what_the_engine_needs():
    scenario = make_scenario(
        model="llama-3.1-8b",
        disaggregated={
            "prefill": {"engine": {"batching": {"policy": "chunked", "chunk_size": 256}}},
            "decode": {"gpu": "h200", "replicas": 2},
            "kv_link": "infiniband-ndr",
        },
    )
    prefill, decode = compile_scenario(scenario).groups
    assert (prefill.role, prefill.count, decode.role, decode.count) == ("prefill", 1, "decode", 2)
    assert prefill.policy.chunk_size == 256 and decode.policy.policy == "continuous"
    assert prefill.kv_link is not None and decode.kv_link is None
    assert decode.memory.gpu_name == "h200"
    assert decode.config.total_kv_blocks == decode.memory.max_kv_tokens // 16


def _batch(cohorts: list[tuple[float, int]], klass: list[int]) -> RunningBatch:
    batch = RunningBatch(capacity=16, block_size=16)
    i = 0
    for last_s, count in cohorts:
        for _ in range(count):
            batch.append(ordinal=i, context=100, remaining=10, last_token_s=last_s, klass=klass[i])
            i += 1
    return batch


def test_gaps_count_one_per_live_sequence_and_step():
    batch = _batch([(1.0, 2), (1.5, 3)], klass=[0, 1, 0, 1, 1])
    gaps = TokenGaps(per_class=True)
    gaps.classes_seen(2)
    gaps.decode(batch, 2.0, later_s=np.array([0.1, 0.2]))
    assert gaps.all.count == 5 * 3
    assert [h.count for h in gaps.by_class] == [2 * 3, 3 * 3]
    assert gaps.all.min() == pytest.approx(0.1) and gaps.all.max() == pytest.approx(1.0)
    live = np.array([True, False, True, True, False])
    only_live = TokenGaps(per_class=True)
    only_live.classes_seen(2)
    only_live.decode(batch, 2.0, later_s=np.array([0.1]), live=live)
    assert only_live.all.count == 3 * 2
    assert [h.count for h in only_live.by_class] == [2 * 2, 1 * 2]


def test_kv_blocks_account_for_prefixes_and_growth():
    batch = RunningBatch(capacity=8, block_size=16)
    kv = KvBlocks(
        total=100, block_size=16, watermark_fraction=0.1, prefix_caching=True, batch=batch
    )
    assert (kv.free, kv.watermark, kv.admissible) == (100, 10, 90)
    first = Waiting(0, 0.0, 320, 5, 0, False, prefix_id=7, prefix_tokens=300)
    assert kv.admit(first) == (20, 0)
    assert kv.used == 20 and kv.prefilling == 20
    kv.prefilling -= 20
    batch.append(0, 320, 5, 0.0)
    assert kv.steps_within(100) == 100  # 8 more blocks fit
    batch.advance(5, 1.0)
    batch.take_finished()
    kv.retain_or_free(_request(prefix_id=7, prefix_tokens=300), 325, 0)
    assert kv.cache.blocks == 300 // 16 and kv.free == 100  # cached but evictable
    second = Waiting(1, 0.0, 400, 5, 0, False, prefix_id=7, prefix_tokens=300)
    own, shared = kv.admit(second)
    assert shared == 300 // 16 and own == 25 - shared
    assert kv.used == kv.cache.blocks + own


def _request(**kw):
    from simulator.workload.request import Request

    return Request(0, 0.0, 320, 6, **kw)


def test_running_batch_counts_the_blocks_its_sequences_still_take():
    """``blocks_to_grow``: blocks of every sequence's final context not yet taken; it falls as
    the batch decodes and with the sequences that leave."""
    batch = RunningBatch(8, 16)
    batch.append(0, context=20, remaining=30, last_token_s=0.0)  # 2 blocks now, 4 at the end
    batch.append(1, context=16, remaining=1, last_token_s=0.0)  # 1 block now, 2 at the end
    assert batch.blocks_to_grow == (4 - 2) + (2 - 1)
    batch.advance(1, 0.1)  # the second takes its last block (17 tokens), the first has 21
    assert batch.blocks_to_grow == 4 - 2
    batch.take_finished()  # the second is done
    assert batch.size == 1 and batch.blocks_to_grow == 2
    batch.advance(12, 0.2)  # 33 tokens: the first took its third block
    assert batch.blocks_to_grow == 1
    batch.pop_last()
    assert batch.blocks_to_grow == 0 and batch.final_blocks == 0
