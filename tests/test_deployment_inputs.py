"""Deployment settings that cannot run as given are refused at load (or before a plan runs)
with the field, the value and what is allowed; those that can run are applied."""

from __future__ import annotations

import pytest

from simulator.cli.main import main
from simulator.errors import UserError
from simulator.planning import max_sustainable_rate, plan
from tests.conftest import make_scenario

POOLS = {"prefill": {"gpu": "h100-sxm"}, "decode": {"gpu": "h100-sxm"}}
FLEET = [{"gpu": "h100-sxm", "replicas": 2}, {"gpu": "a100-sxm-80gb"}]
OFFLINE = {"process": "offline"}
SMALL = {"num_requests": 20, "prompt_tokens": {"distribution": "fixed", "value": 200}}


def _pools(**decode) -> dict:
    return {**POOLS, "decode": {**POOLS["decode"], **decode}}


# ------------------------------------------------------- static batching in a decode pool


def test_static_batching_in_the_decode_pool_is_refused_naming_the_pool():
    with pytest.raises(UserError) as info:
        make_scenario(disaggregated=_pools(engine={"batching": "static"}))
    text = str(info.value)
    assert "disaggregated.decode.engine.batching: static batching does not apply" in text
    assert "chunked, continuous, decode_priority, priority" in text


def test_static_batching_the_decode_pool_inherits_names_the_engine_section():
    with pytest.raises(UserError) as info:
        make_scenario(engine={"batching": "static"}, disaggregated=POOLS)
    text = str(info.value)
    assert "engine.batching: static batching does not apply to the decode pool" in text
    assert "set disaggregated.decode.engine.batching to one of them" in text


def test_static_batching_in_the_prefill_pool_runs():
    from simulator.api import run

    pools = {**POOLS, "prefill": {"gpu": "h100-sxm", "engine": {"batching": "static"}}}
    summary = run(make_scenario(disaggregated=pools, workload=SMALL)).summary
    assert summary["requests_completed"] == 20


def test_static_batching_in_a_decode_pool_exits_2_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "dis.yaml"
    path.write_text(
        "model: llama-3.2-1b\n"
        "disaggregated: {prefill: {gpu: h100-sxm}, decode: {gpu: h100-sxm}}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 5}, num_requests: 10,"
        " prompt_tokens: {distribution: fixed, value: 100},"
        " output_tokens: {distribution: fixed, value: 10}}\n"
    )
    assert main(["simulate", str(path), "--quiet", "--set", "engine.batching=static"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: engine.batching: static batching does not apply" in err
    assert "Traceback" not in err


# ------------------------------------------------------- the decode pool's max_model_len


def test_the_decode_pools_max_model_len_rejects_longer_requests():
    from simulator.api import run

    scenario = make_scenario(disaggregated=_pools(engine={"max_model_len": 100}), workload=SMALL)
    summary = run(scenario).summary
    assert summary["requests_rejected"] == 20
    assert summary["rejections"] == {"prompt + output exceeds max_model_len of 100 tokens": 20}


def test_a_decode_pool_max_model_len_beyond_the_model_is_named_under_the_pool():
    from simulator.api import run

    scenario = make_scenario(disaggregated=_pools(engine={"max_model_len": 10_000_000}))
    with pytest.raises(UserError, match=r"disaggregated\.decode\.engine\.max_model_len: "):
        run(scenario)


# ------------------------------------------------------- planning one kind of replica


@pytest.mark.parametrize(
    ("deployment", "mode", "instead"),
    [
        ({"fleet": FLEET}, "fleet", "--grid 'fleet=[["),
        ({"disaggregated": POOLS}, "disaggregated", "--grid disaggregated.decode.replicas="),
    ],
)
def test_plan_refuses_a_fleet_or_pools_saying_what_to_run(deployment, mode, instead):
    scenario = make_scenario(**deployment)
    for entry in (plan, max_sustainable_rate):
        with pytest.raises(UserError) as info:
            entry(scenario)
        text = str(info.value)
        assert text.startswith(f"{mode}: ") and "sizes identical replicas" in text
        assert "servesim simulate" in text and instead in text


@pytest.mark.parametrize("command", [["plan"], ["report", "-o", "r.html"]])
def test_plan_and_report_refuse_a_fleet_before_any_run(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "model: llama-3.2-1b\n"
        "fleet: [{gpu: h100-sxm, replicas: 2}, {gpu: a100-sxm-80gb}]\n"
        "workload: {arrival: {process: poisson, rate_per_s: 5}, num_requests: 10,"
        " prompt_tokens: {distribution: fixed, value: 100},"
        " output_tokens: {distribution: fixed, value: 10}}\n"
        "slo: {ttft_ms: {p99: 1000}}\n"
    )
    assert main([command[0], str(path), "--quiet", *command[1:]]) == 2
    err = capsys.readouterr().err
    assert f"{path}: fleet: servesim {command[0]} sizes identical replicas" in err
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------- offline arrivals


def test_sessions_with_offline_arrivals_are_refused_naming_both_keys():
    workload = {"arrival": OFFLINE, "sessions": {"turns": 3}}
    with pytest.raises(UserError) as info:
        make_scenario(workload=workload)
    text = str(info.value)
    assert "workload.sessions: multi-turn sessions do not apply" in text
    assert "workload.arrival.process: offline" in text


def test_autoscale_with_offline_arrivals_is_refused():
    autoscale = {"max_replicas": 4, "target": 2}
    with pytest.raises(UserError) as info:
        make_scenario(workload={"arrival": OFFLINE}, hardware={"autoscale": autoscale})
    text = str(info.value)
    assert "hardware.autoscale: autoscaling does not apply" in text
    assert "workload.arrival.process: offline" in text


def test_sessions_and_autoscale_still_load_with_arrivals_in_time():
    scenario = make_scenario(
        workload={"sessions": {"turns": 3}},
        hardware={"autoscale": {"max_replicas": 4, "target": 2}},
    )
    assert scenario.workload.sessions.turns == 3
    assert scenario.hardware.autoscale.max_replicas == 4


# ------------------------------------------------------- empty lists


def test_an_empty_fleet_is_refused():
    with pytest.raises(UserError, match=r"fleet: an empty list has no group of replicas"):
        make_scenario(fleet=[])


def test_an_empty_list_of_classes_is_refused():
    with pytest.raises(UserError, match=r"workload\.classes: an empty list has no class"):
        make_scenario(workload={"classes": []})


def test_an_unknown_offload_host_is_named_under_its_own_key(tmp_path, capsys):
    from simulator.cli.main import main

    path = tmp_path / "s.yaml"
    path.write_text(
        "model: llama-3.2-1b\n"
        "hardware: {gpu: h100-sxm, offload: {gpu_layers: 4, host: nohost}}\n"
        "workload: {arrival: {process: poisson, rate_per_s: 5}, num_requests: 10,"
        " prompt_tokens: {distribution: fixed, value: 16},"
        " output_tokens: {distribution: fixed, value: 4}}\n"
    )
    assert main(["simulate", str(path)]) == 2
    assert "hardware.offload.host: unknown GPU 'nohost'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "engine.speculative={method: draft, draft_model: mistral-7b}",
            "mistral-7b has a vocabulary of 32,000 tokens",
        ),
        (
            "engine.speculative={method: draft, draft_model: llama-3.1-8b}",
            "llama-3.1-8b is no smaller than llama-3.1-8b",
        ),
        (
            "engine.speculative={method: mtp, draft_model: llama-3.2-1b}",
            "draft_model: 'llama-3.2-1b' is not used by method 'mtp'",
        ),
    ],
)
def test_a_draft_that_cannot_draft_is_refused(tmp_path, capsys, setting, expected):
    """A draft needs the target's vocabulary and must be smaller; mtp drafts with the
    model's own head (each of these ran, the draft ignored or pointless)."""
    from simulator.cli.main import main

    path = tmp_path / "s.yaml"
    path.write_text(
        "model: llama-3.1-8b\n"
        "workload: {arrival: {process: poisson, rate_per_s: 5}, num_requests: 10,"
        " prompt_tokens: {distribution: fixed, value: 16},"
        " output_tokens: {distribution: fixed, value: 4}}\n"
    )
    assert main(["simulate", str(path), "--set", setting]) == 2
    assert expected in capsys.readouterr().err


def test_speculative_decoding_on_a_prefill_pool_alone_is_refused():
    from pydantic import ValidationError

    from simulator.config.deployment import DisaggregatedConfig

    spec = {"speculative": {"method": "draft", "draft_model": "llama-3.2-1b"}}
    with pytest.raises(ValidationError, match="a prefill pool produces only"):
        DisaggregatedConfig.model_validate({"prefill": {"engine": spec}, "decode": {}})
    pools = DisaggregatedConfig.model_validate({"prefill": {}, "decode": {"engine": spec}})
    assert pools.decode.engine == spec


def test_groups_take_the_hardware_tensor_parallel_and_refuse_its_replica_count():
    """A group without its own tensor_parallel takes the hardware section's (it ran TP1);
    a replica count there is used by no group, so it is refused."""
    from simulator.config.loader import scenario_from_dict
    from simulator.errors import UserError

    data = {
        "model": "llama-3.1-8b",
        "hardware": {"gpu": "h100-sxm", "tensor_parallel": 2},
        "fleet": [{"name": "a", "replicas": 2}, {"name": "b", "tensor_parallel": 4}],
        "workload": {
            "arrival": {"process": "poisson", "rate_per_s": 5},
            "prompt_tokens": {"distribution": "fixed", "value": 16},
            "output_tokens": {"distribution": "fixed", "value": 4},
        },
    }
    groups = scenario_from_dict(data).groups
    assert [g.hardware.tensor_parallel for g in groups] == [2, 4]
    with pytest.raises(UserError, match=r"hardware\.replicas: 3 is not used with fleet"):
        scenario_from_dict({**data, "hardware": {"gpu": "h100-sxm", "replicas": 3}})
