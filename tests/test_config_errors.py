"""Scenario loading: every error at once with its dotted path, safe YAML, overrides, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from simulator.cli.main import main
from simulator.config.loader import apply_overrides, load_scenario
from simulator.errors import UserError

BAD = textwrap.dedent("""\
    name: bad
    model: llama-3.1-8x
    hardware: {gpu: h100, replicas: 0, foo: 1}
    engine: {max_num_seqs: -5, weight_dtype: bf17}
    workload:
      arrival: {process: poisson, rate_per_s: -10}
      prompt_tokens: {distribution: lognormal, mean: 1000, sigma: 0}
      output_tokens: {distribution: fixed, value: 0}
    slo: {ttft_ms: {p98: 1000}}
""")


def test_every_error_reported_at_once_with_dotted_paths(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(UserError) as info:
        load_scenario(path)
    text = "\n".join(info.value.messages)
    for expected in (
        "model: unknown model 'llama-3.1-8x'; did you mean 'llama-3.1-8b'?",
        "hardware.gpu: unknown GPU 'h100'; did you mean 'h100-sxm'?",
        "hardware.replicas: Input should be greater than 0 (got 0)",
        "hardware.foo: unknown key",
        "engine.max_num_seqs: Input should be greater than 0 (got -5)",
        "engine.weight_dtype: unknown dtype 'bf17'",
        "workload.arrival.rate_per_s: Input should be greater than or equal to 0.000001 (got -10)",
        "workload.prompt_tokens.sigma: Input should be greater than 0 (got 0)",
        "workload.output_tokens.value: Input should be greater than 0 (got 0)",
        "ttft_ms.p98: unknown percentile",
    ):
        assert expected in text, expected
    assert all(m.startswith(str(path)) for m in info.value.messages)


def test_tensor_parallel_must_divide_heads(tmp_path):
    path = tmp_path / "tp.yaml"
    path.write_text(
        "model: llama-3.1-70b\nhardware: {tensor_parallel: 3}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 1},"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}}\n"
    )
    with pytest.raises(UserError, match=r"hardware\.tensor_parallel: 3 does not divide 64"):
        load_scenario(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_scenario(path)


def test_overrides_set_nested_values_as_yaml():
    data = apply_overrides(
        {"engine": {"max_num_seqs": 8}},
        ["engine.max_num_seqs=128", "workload.arrival.rate_per_s=2.5", "hardware.gpu=h200"],
    )
    assert data == {
        "engine": {"max_num_seqs": 128},
        "hardware": {"gpu": "h200"},
        "workload": {"arrival": {"rate_per_s": 2.5}},
    }
    with pytest.raises(UserError, match=r"expected dotted\.key=value"):
        apply_overrides({}, ["engine.max_num_seqs"])


def test_cli_reports_user_errors_with_status_2_and_no_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("servesim: error:") >= 9


def test_model_that_does_not_fit_says_how_much_memory(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(
        "model: llama-3.1-70b\nhardware: {gpu: l4}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 1},"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli.main", "simulate", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "does not fit" in proc.stderr and "GB" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_engine_profile_sets_runtime_and_default_limits_at_load():
    from simulator.api import build_cost_model
    from simulator.config.loader import scenario_from_dict
    from simulator.costmodel.profiles import load_profile
    from simulator.costmodel.shape import StepShape
    from tests.conftest import BASE, make_scenario

    shape = StepShape(decode_seqs=8, decode_context_tokens=8 * 512, logits_rows=8)
    eager = build_cost_model(make_scenario(engine={"profile": "hf-transformers"}))
    ideal = build_cost_model(make_scenario(engine={"profile": "ideal"}))
    plain = build_cost_model(make_scenario())
    assert ideal.step_time_s(shape) < plain.step_time_s(shape) < eager.step_time_s(shape)
    # the base scenario sets max_num_seqs itself, so the user's value stays
    assert make_scenario(engine={"profile": "vllm"}).engine.max_num_seqs == 64

    def engine_of(engine: dict):
        return scenario_from_dict({**BASE, "engine": engine}).engine

    # the scheduler is the engine's too: TensorRT-LLM and vLLM's V1 engine mix prompts into
    # decode steps, SGLang prefills apart
    assert engine_of({"profile": "trtllm"}).batching.policy == "chunked"
    assert engine_of({"profile": "vllm"}).batching.policy == "chunked"
    assert engine_of({"profile": "sglang"}).batching.policy == "continuous"
    assert engine_of({"profile": "trtllm", "batching": "static"}).batching.policy == "static"
    eager_engine = engine_of({"profile": "hf-transformers"})
    assert eager_engine.cuda_graphs is False
    assert eager_engine.max_num_seqs == load_profile("hf-transformers").limits["max_num_seqs"]
    # filled-in defaults are not settings of the user: another profile brings its own
    assert "max_num_seqs" not in eager_engine.model_fields_set
    assert eager_engine.replace(profile="vllm").cuda_graphs is True
    with pytest.raises(UserError, match=r"engine\.profile: unknown engine profile 'vlm'"):
        make_scenario(engine={"profile": "vlm"})


def test_show_prints_what_runs_with_the_profile_filled_in(tmp_path, capsys):
    from simulator.costmodel.profiles import load_profile

    path = tmp_path / "trt.yaml"
    path.write_text(
        "model: llama-3.1-8b\nengine: {profile: trtllm}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 1},"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}}\n"
    )
    assert main(["show", str(path), "--only", "engine"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)["engine"]
    limits = load_profile("trtllm").limits
    assert shown["batching"] == {"chunk_size": None, **limits["batching"]}
    assert shown["max_num_seqs"] == limits["max_num_seqs"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("engine.batching=chunkd", "engine.batching: unknown batching policy 'chunkd'; did you "
         "mean 'chunked'?"),
        ("engine.batching_options.chunk_sise=512", "engine.batching: batching policy "
         "'continuous' has no parameter 'chunk_sise' (its parameters: none)"),
        ("engine.batching={policy: chunked, chunk_sise: 512}", "engine.batching: batching "
         "policy 'chunked' has no parameter 'chunk_sise'; did you mean 'chunk_size'?"),
        ("engine.batching={policy: static, max_wait_s: -1}", "engine.batching: max_wait_s: "
         "Input should be greater than or equal to 0"),
        ("routing.policy=round_robbin", "routing.policy: unknown routing policy "
         "'round_robbin'; did you mean 'round_robin'?"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["show", "simulate"])
def test_misspelled_policies_are_errors_of_show_and_simulate(command, override, expected, capsys):
    assert main([command, "workloads/quickstart.yaml", "--set", override]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_batching_options_and_the_mapping_form_load_the_same():
    from tests.conftest import make_scenario

    older = make_scenario(engine={"batching": "chunked", "batching_options": {"chunk_size": 512}})
    newer = make_scenario(engine={"batching": {"policy": "chunked", "chunk_size": 512}})
    assert older.engine.batching == newer.engine.batching
    assert newer.engine.batching.chunk_size == 512
    assert newer.model_dump()["engine"]["batching"] == {
        "policy": "chunked",
        "chunk_size": 512,
        "split_prompts": True,
    }


def test_disaggregated_is_a_deployment_mode():
    from tests.conftest import make_scenario

    pools = {"prefill": {"gpu": "h100-sxm", "batching": "chunked"}, "decode": {"gpu": "h200"}}
    older = make_scenario(engine={"batching": "disaggregated", **pools, "kv_link": "nvlink4"})
    newer = make_scenario(disaggregated={**pools, "kv_link": "nvlink4"})
    assert older == newer
    assert [(g.role, g.hardware.gpu, str(g.engine.batching)) for g in newer.groups] == [
        ("prefill", "h100-sxm", "chunked"),
        ("decode", "h200", "continuous"),
    ]
    with pytest.raises(UserError, match="'disaggregated' is a deployment mode"):
        make_scenario(engine={"batching": "disaggregated"})
    with pytest.raises(UserError, match=r"engine\.prefill: disaggregated pools are described"):
        make_scenario(engine={"prefill": {"gpu": "h100-sxm"}})


def test_each_group_is_checked_at_load():
    from tests.conftest import make_scenario

    fleet = [{"gpu": "h200"}, {"gpu": "h10", "tensor_parallel": 3}, {"engine": {"max_num_seqz": 1}}]
    with pytest.raises(UserError) as info:
        make_scenario(model="llama-3.1-8b", fleet=fleet)
    text = str(info.value)
    assert "fleet.1.gpu: unknown GPU 'h10'" in text
    assert "fleet.1.tensor_parallel: 3 does not divide 32 attention heads" in text
    with pytest.raises(UserError, match=r"max_num_seqz: unknown key|max_num_seqz"):
        make_scenario(fleet=[{"engine": {"max_num_seqz": 1}}])


def test_fully_resolved_scenario_loads_back(tmp_path, capsys):
    assert main(["show", "workloads/quickstart.yaml"]) == 0
    path = tmp_path / "resolved.yaml"
    path.write_text(capsys.readouterr().out)
    resolved = load_scenario(path)
    original = load_scenario("workloads/quickstart.yaml")
    # plan/search: an unset section and one with every default plan the same
    skip = {"plan", "search"}
    assert resolved.model_dump(exclude=skip) == original.model_dump(exclude=skip)


def test_a_fleet_members_engine_setting_is_named_under_its_own_path(tmp_path, capsys):
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "model: llama-3.1-8b\n"
        "fleet:\n  - {gpu: h100-sxm}\n"
        "  - {gpu: h100-sxm, engine: {profile: trtllm, gpu_memory_utilization: 0.5}}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 1},"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}, num_requests: 5}\n"
    )
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "fleet.1.engine.gpu_memory_utilization: trtllm sizes its KV cache" in err


@pytest.mark.parametrize(
    ("arrival", "expected"),
    [
        # a key of another arrival process names the process it is unknown to
        (
            "{process: offline, rate_per_s: 3}",
            "workload.arrival.rate_per_s: unknown key for 'offline'",
        ),
        # a section of several kinds without its kind names the missing key
        ("{rate_per_s: 3}", "workload.arrival.process: required key is missing"),
    ],
)
def test_arrival_errors_name_the_key_at_fault(tmp_path, capsys, arrival, expected):
    path = tmp_path / "arrival.yaml"
    path.write_text(
        "model: llama-3.1-8b\n"
        f"workload: {{arrival: {arrival},"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}}\n"
    )
    assert main(["simulate", str(path)]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ({"cuda_graph_batch_sizes": []}, "give at least one batch size"),
        ({"cuda_graphs": False, "cuda_graph_batch_sizes": [8]}, "(cuda_graphs false)"),
        ({"profile": "hf-transformers", "cuda_graph_batch_sizes": [8]}, "'hf-transformers'"),
    ],
)
def test_graph_padding_sizes_need_captured_graphs(engine, expected):
    from simulator.config.engine import EngineConfig

    with pytest.raises(ValueError, match="cuda_graph_batch_sizes") as info:
        EngineConfig.model_validate(engine)
    assert expected in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        (
            {"batching": {"policy": "chunked", "chunk_size": 9000}},
            "batching.chunk_size: 9000 tokens exceeds max_num_batched_tokens (8192)",
        ),
        (
            {"max_num_batched_tokens": 256, "batching": "decode_priority"},
            "batching.chunk_size: 512 tokens exceeds max_num_batched_tokens (256)",
        ),
        (
            {"max_num_seqs": 64, "batching": {"policy": "static", "batch_size": 65}},
            "batching.batch_size: 65 sequences exceeds max_num_seqs (64)",
        ),
    ],
)
def test_a_policy_budget_beyond_the_engine_limits_is_refused(engine, expected):
    """A step budget or batch above the engine's limits would be cut back silently."""
    from simulator.config.engine import EngineConfig

    with pytest.raises(ValueError) as info:
        EngineConfig.model_validate(engine)
    assert expected in info.value.errors()[0]["msg"]
    within = {**engine, "max_num_batched_tokens": 9000, "max_num_seqs": 65}
    assert EngineConfig.model_validate(within).batching is not None


def test_micro_batches_without_pipeline_stages_are_refused():
    from simulator.config.hardware import HardwareConfig

    with pytest.raises(ValueError) as info:
        HardwareConfig.model_validate({"pipeline_microbatches": 4})
    assert "need pipeline stages (pipeline_parallel > 1)" in info.value.errors()[0]["msg"]
    staged = HardwareConfig.model_validate({"pipeline_parallel": 2, "pipeline_microbatches": 4})
    assert staged.pipeline_microbatches == 4


def test_a_batching_parameter_without_its_policy_shows_the_whole_setting_to_write():
    from simulator.policies import policy_params

    with pytest.raises(ValueError) as info:
        policy_params({"chunk_size": 100})
    assert "--set 'engine.batching={policy: NAME, chunk_size: 100}'" in str(info.value)


def test_an_error_found_while_a_scenario_runs_names_its_file(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(
        "model: llama-3.1-8b\nengine: {max_model_len: 1000000}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 1},"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}, num_requests: 5}\n"
    )
    assert main(["simulate", str(path)]) == 2
    assert f"{path}: engine.max_model_len: 1,000,000 tokens" in capsys.readouterr().err


def test_a_number_in_a_dotted_key_names_an_item_of_a_list():
    """--set fleet.0.replicas=5 reaches the first group (it replaced the list with a
    mapping, and the error blamed a valid list); a position past the end is named."""
    from simulator.config.loader import set_dotted

    data = {"fleet": [{"gpu": "h100-sxm", "replicas": 1}, {"gpu": "a100-sxm-80gb"}]}
    set_dotted(data, "fleet.0.replicas", 5)
    set_dotted(data, "fleet.1.engine.max_num_seqs", 8)
    assert data["fleet"] == [
        {"gpu": "h100-sxm", "replicas": 5},
        {"gpu": "a100-sxm-80gb", "engine": {"max_num_seqs": 8}},
    ]
    for key in ("fleet.2.replicas", "fleet.first.replicas"):
        with pytest.raises(UserError, match="fleet is a list of 2; name an item by its position"):
            set_dotted(data, key, 1)


def test_a_scalar_where_a_number_or_a_distribution_goes_gets_one_plain_line(tmp_path, capsys):
    """sessions.turns: 0 failed both members of its union, and the second line printed
    pydantic's internal names of the distribution members."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "model: llama-3.1-8b\n"
        "workload: {arrival: {process: poisson, rate_per_s: 1}, num_requests: 10,"
        " prompt_tokens: {distribution: fixed, value: 10},"
        " output_tokens: {distribution: fixed, value: 10}, sessions: {turns: 0}}\n"
    )
    assert main(["simulate", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "workload.sessions.turns: Input should be greater than or equal to 1 (got 0)"
    )


def test_length_aware_options_under_another_router_are_refused():
    from pydantic import ValidationError

    from simulator.config.deployment import RoutingConfig

    with pytest.raises(ValidationError, match="options of the length_aware policy"):
        RoutingConfig.model_validate({"policy": "round_robin", "long_prompt_tokens": 100})
    assert RoutingConfig.model_validate({"policy": "length_aware", "long_prompt_tokens": 100})
