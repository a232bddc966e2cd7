"""CUDA-graph padding of decode-only steps (TensorRT-LLM ``enable_padding``)."""

from __future__ import annotations

import pytest

from simulator.config.loader import scenario_from_dict
from simulator.costmodel import CostConfig, CostModel, Parallelism
from simulator.costmodel.graph_padding import captured_batch_sizes, padded_batch
from simulator.costmodel.shape import StepShape
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu, load_link, load_model

LISTED = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)


def test_captured_sizes_stop_at_the_rank_limits_and_keep_the_cap():
    # max_batch_size 1024: the sizes past it are dropped and none added (1024 is listed).
    assert captured_batch_sizes(LISTED, 1024, 2048)[-3:] == (384, 512, 1024)
    # A cap between listed sizes becomes the largest graph.
    assert captured_batch_sizes(LISTED, 600, 8192)[-3:] == (384, 512, 600)
    # The token budget caps a pure decode batch too.
    assert captured_batch_sizes(LISTED, 4096, 300)[-2:] == (256, 300)
    assert captured_batch_sizes((), 64, 64) == ()


def test_a_batch_runs_as_the_next_captured_size():
    sizes = captured_batch_sizes(LISTED, 1024, 8192)
    assert padded_batch(sizes, 186) == 256
    assert padded_batch(sizes, 256) == 256
    assert padded_batch(sizes, 595) == 1024
    assert padded_batch(sizes, 3) == 4
    assert padded_batch((), 186) == 186
    assert padded_batch((8, 16), 17) == 17  # past the largest graph: no padding


def _pair(**kw):
    model, gpu = load_model(kw.pop("model")), load_gpu("h100-sxm")
    plain = CostModel(CostConfig(model, gpu, **kw))
    padded = CostModel(CostConfig(model, gpu, graph_batch_sizes=(64, 256), **kw))
    return plain, padded


def test_a_decode_step_costs_its_padded_batch_and_a_prefill_step_is_not_padded():
    plain, padded = _pair(model="llama-3.1-8b")
    decode = StepShape(decode_seqs=186, decode_context_tokens=186 * 1000, logits_rows=186)
    dummies = StepShape(decode_seqs=256, decode_context_tokens=186 * 1000 + 70, logits_rows=256)
    assert padded.step_time_s(decode) == pytest.approx(plain.step_time_s(dummies))
    assert padded.step_time_s(decode) > plain.step_time_s(decode)
    mixed = StepShape.build(prefills=[(512, 0)], decode_contexts=[1000] * 186)
    assert padded.step_time_s(mixed) == plain.step_time_s(mixed)


def test_attention_dp_ranks_pad_to_the_busiest_ranks_batch():
    plain, padded = _pair(
        model="qwen3-30b-a3b", parallel=Parallelism(expert=4, link=load_link("nvlink4"))
    )
    # 4 ranks, 65 sequences: the busiest holds 17, every rank runs the graph of 64.
    decode = StepShape(decode_seqs=65, decode_context_tokens=65 * 500, logits_rows=65)
    dummies = StepShape(decode_seqs=256, decode_context_tokens=65 * 500 + 191, logits_rows=256)
    assert padded.step_time_s(decode) == pytest.approx(plain.step_time_s(dummies))


def _scenario(**engine):
    return scenario_from_dict(
        {
            "model": "llama-3.1-8b",
            "hardware": {"gpu": "h100-sxm"},
            "engine": {"profile": "trtllm", **engine},
            "workload": {
                "arrival": {"process": "offline"},
                "prompt_tokens": {"distribution": "fixed", "value": 100},
                "output_tokens": {"distribution": "fixed", "value": 10},
                "num_requests": 4,
            },
        }
    )


def test_the_engine_setting_reaches_the_cost_model():
    from simulator.config.compile import cost_model

    def sizes(**engine):
        s = _scenario(**engine)
        return cost_model(s.model, s.hardware, s.engine, s.base_dir).config.graph_batch_sizes

    assert sizes(max_num_seqs=100, cuda_graph_batch_sizes=[8, 64, 512]) == (8, 64, 100)
    assert sizes(max_num_seqs=100) == ()
    with pytest.raises(UserError, match=r"cuda_graph_batch_sizes: .* \(cuda_graphs false"):
        sizes(cuda_graph_batch_sizes=[8, 64], cuda_graphs=False)
