"""Cost models against hand calculations: offers that can be bought, the machine owning
would be, one cost per token, and break-even rates."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from simulator.planning.machines import OwnedMachine, monthly_owned_usd, owned_machine
from simulator.planning.offers import ReplicaShape, fitting_offers, offers_to_price
from simulator.planning.tco import (
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    Fleet,
    PriceOption,
    Traffic,
    api_monthly_usd,
    break_evens,
    cost_at,
)
from simulator.specs.prices import cloud_prices_per_gpu_hour, load_prices

TRAFFIC = Traffic(mean_prompt_tokens=2000, mean_output_tokens=1000, input_time_share=0.25)


def _tco(**given):
    fields = (
        "server_price_usd",
        "gpus_per_server",
        "life_years",
        "electricity_usd_per_kwh",
        "pue",
        "hosting_usd_per_kw_month",
        "idle_power_fraction",
        "busy_power_fraction",
        "hosting",
    )
    values = dict.fromkeys(fields)
    values.update(staff_usd_per_month=0.0, price_kind="on_demand")
    values.update(given)
    return SimpleNamespace(**values)


def _fleet(gpu="h100-sxm", per_replica=1.0, gpus=1, nvlink=False, busy=0.5):
    return Fleet(ReplicaShape(gpu, gpus, nvlink), per_replica, busy, per_replica, 1)


def test_month_is_730_hours():
    assert HOURS_PER_MONTH == 730


def test_one_cost_per_token_is_the_whole_cost_over_output_tokens():
    rows = cloud_prices_per_gpu_hour("h100-sxm")
    aws = next(r for r in rows if r["instance"] == "p5.48xlarge")
    assert aws["price_per_gpu_hour"] == 6.88 and aws["gpus_per_instance"] == 8 and aws["nvlink"]
    shape = ReplicaShape("h100-sxm", 8, True)
    offer = next(o for o in fitting_offers(shape)[0] if o.instance == "p5.48xlarge")
    option = PriceOption("rent aws", "cloud", offer=offer)
    fleet = Fleet(shape, per_replica_rate_per_s=1.0)
    found = cost_at(option, 1.0, TRAFFIC, fleet)
    # 8 GPUs x $6.88 x 730 h = $40,179.20 over 1 req/s x 1000 tokens a month
    assert found.monthly_usd == pytest.approx(40_179.20)
    out_tokens = 1000 * SECONDS_PER_MONTH
    assert found.usd_per_million_output_tokens == pytest.approx(40_179.20 / out_tokens * 1e6)
    assert found.usd_per_million_tokens == pytest.approx(40_179.20 / (3 * out_tokens) * 1e6)
    # the price-sheet split: a quarter of the cost on 2x as many input tokens
    assert found.price_sheet_usd_per_million_input_tokens == pytest.approx(
        40_179.20 * 0.25 / (2 * out_tokens) * 1e6
    )
    assert found.price_sheet_usd_per_million_output_tokens == pytest.approx(
        40_179.20 * 0.75 / out_tokens * 1e6
    )


def test_no_tensor_parallel_replica_is_priced_as_single_gpu_instances():
    for gpu in ("h100-sxm", "h200", "a100-sxm-80gb", "b200"):
        shape = ReplicaShape(gpu, 4, True)
        offers, why = fitting_offers(shape)
        for offer in offers:
            assert offer.gpus_per_instance >= 4 and offer.nvlink, offer
        assert offers or "NVLink" in why
        # a 4-GPU replica on an 8-GPU instance: two replicas per instance
        assert all(o.replicas_per_instance == o.gpus_per_instance // 4 for o in offers)
    # single-GPU marketplace rows are offered to one-GPU replicas only
    one = {o.market for o in fitting_offers(ReplicaShape("h100-sxm", 1, False))[0]}
    four = {o.market for o in fitting_offers(ReplicaShape("h100-sxm", 4, True))[0]}
    assert "marketplace" in one and "marketplace" not in four


def test_whole_instances_and_the_idle_remainder_are_paid():
    shape = ReplicaShape("h100-sxm", 3, True)  # tensor parallel 3: two per 8-GPU instance
    offer = next(o for o in fitting_offers(shape)[0] if o.instance == "p5.48xlarge")
    assert offer.replicas_per_instance == 2
    assert offer.instances(3) == 2  # 3 replicas: 9 GPUs used, 16 rented
    assert offer.monthly_usd(3, HOURS_PER_MONTH) == pytest.approx(16 * 6.88 * 730)


def test_offers_are_labelled_by_market_and_kind():
    offers, _ = offers_to_price(ReplicaShape("h100-sxm", 1, False))
    assert {o.market for o in offers} == {"cloud", "neocloud", "marketplace"}
    labels = [o.label for o in offers]
    assert any("on-demand, hyperscaler" in label for label in labels)
    assert any("marketplace" in label for label in labels)


def test_owned_server_monthly_amortisation_and_power():
    machine = OwnedMachine(
        kind="server",
        description="8-GPU server",
        gpus_per_machine=8,
        price_usd=270_000,
        life_years=5,
        electricity_usd_per_kwh=0.10,
        pue=1.5,
        hosting_usd_per_kw_month=150.0,
        server_overhead_fraction=0.35,
        idle_power_fraction=0.1,
        busy_power_fraction=1.0,
        staff_usd_per_month=1000.0,
        gpu_tdp_w=700.0,
    )
    parts = monthly_owned_usd(machine, 8, 0.5, HOURS_PER_MONTH)
    assert parts["amortisation_usd"] == pytest.approx(4500.0)  # 270,000 / 60 months
    # GPU: 700 x (0.1 + 0.5 x 0.9) = 385 W; rest of server 0.35 x 700 = 245 W per GPU
    energy_kwh = 8 * (385 + 245) / 1000 * 1.5 * 730
    assert parts["energy_kwh"] == pytest.approx(energy_kwh)
    assert parts["electricity_usd"] == pytest.approx(energy_kwh * 0.10)
    # Hosting on provisioned power: 8 x 700 W x 1.35 = 7.56 kW x $150
    assert parts["hosting_usd"] == pytest.approx(7.56 * 150)
    assert parts["total_usd"] == pytest.approx(4500 + energy_kwh * 0.1 + 1134 + 1000)
    # two busy GPUs of a server: the six others idle
    two = monthly_owned_usd(machine, 2, 1.0, HOURS_PER_MONTH)
    gpu_w = 2 * 700 + 6 * 70
    assert two["energy_kwh"] == pytest.approx((gpu_w + 8 * 245) / 1000 * 1.5 * 730)


def test_workstation_gpu_is_owned_as_a_workstation_without_datacentre_hosting():
    machine, why = owned_machine("rtx-4090", _tco())
    assert machine is not None, why
    assert machine.kind == "workstation" and machine.hosting == "office"
    assert machine.hosting_usd_per_kw_month == 0.0 and machine.pue == 1.0
    prices = load_prices()
    card = next(r for r in prices["hardware_purchase"] if r["gpu"] == "rtx-4090")["price_usd"]
    base = next(r for r in prices["hardware_purchase"] if r["kind"] == "workstation_base")
    # one replica on one card: a workstation with one card, not an 8-GPU server
    parts = monthly_owned_usd(machine, 1, 0.3, HOURS_PER_MONTH)
    assert parts["machines"] == 1 and parts["hosting_usd"] == 0.0
    assert parts["amortisation_usd"] == pytest.approx((base["price_usd"] + card) / 60)
    dc = prices["datacenter"]
    assert machine.electricity_usd_per_kwh == dc["office_electricity_usd_per_kwh"]["value"]
    # hosting in a data centre only when asked
    asked, _ = owned_machine("rtx-4090", _tco(hosting="datacenter"))
    assert monthly_owned_usd(asked, 1, 0.3, HOURS_PER_MONTH)["hosting_usd"] > 0


def test_server_price_is_honoured_for_every_gpu():
    mac, why = owned_machine("m2-ultra", _tco())
    assert mac is not None and mac.kind == "machine" and mac.machine_max_w == 295, why
    assert mac.hosting == "office"
    given, _ = owned_machine("m2-ultra", _tco(server_price_usd=4_999))
    assert given.price_usd == 4_999 and given.kind == "machine"
    assert monthly_owned_usd(given, 1, 0.5, HOURS_PER_MONTH)["amortisation_usd"] == pytest.approx(
        4_999 / 60
    )
    # a GPU prices.yaml does not price: no owned option unless a price is given, then one
    none, why = owned_machine("m4-max", _tco())
    assert none is None and "plan.tco.server_price_usd" in why
    some, _ = owned_machine("m4-max", _tco(server_price_usd=3_000))
    assert some is not None and some.price_usd == 3_000
    server, _ = owned_machine("h100-sxm", _tco(server_price_usd=250_000))
    assert server.price_usd == 250_000 and server.gpus_per_machine == 8
    # a data-centre card without a server row: eight cards plus the chassis
    mi, _ = owned_machine("mi300x", _tco())
    chassis = load_prices()["datacenter"]["server_chassis_fraction"]["value"]
    assert mi.kind == "server" and mi.price_usd == pytest.approx(12_500 * 8 * (1 + chassis))
    assert math.isfinite(mi.gpu_tdp_w) and mi.hosting == "datacenter"


def test_api_cost_of_a_fixed_token_volume():
    api = {
        "provider": "x",
        "model": "m",
        "input_per_mtok": 0.27,
        "cached_input_per_mtok": 0.07,
        "output_per_mtok": 1.10,
    }
    parts = api_monthly_usd(1e9, 2e8, 0.25, api)
    # 750M fresh x 0.27 + 250M cached x 0.07 + 200M out x 1.10
    assert parts["input_usd"] == pytest.approx(202.5)
    assert parts["cached_input_usd"] == pytest.approx(17.5)
    assert parts["output_usd"] == pytest.approx(220.0)
    option = PriceOption("api x", "api", api=api)
    traffic = Traffic(5000, 1000, cached_input_fraction=0.25)
    found = cost_at(option, 1.0, traffic, _fleet())
    # the one cost per token: the whole bill over output tokens, blended
    assert found.usd_per_million_output_tokens == pytest.approx(
        found.monthly_usd / (1000 * SECONDS_PER_MONTH) * 1e6
    )
    assert found.price_sheet_usd_per_million_output_tokens == 1.10


def test_break_even_between_an_api_and_renting_whole_instances():
    api = {"provider": "x", "model": "m", "input_per_mtok": 1.0, "output_per_mtok": 2.0}
    traffic = Traffic(3000, 1000)  # 3 input tokens per output token: $5 per 1,000 requests
    shape = ReplicaShape("h100-sxm", 8, True)
    offer = next(o for o in fitting_offers(shape)[0] if o.instance == "p5.48xlarge")
    options = [PriceOption("api", "api", api=api), PriceOption("rent", "cloud", offer=offer)]
    fleet = Fleet(shape, per_replica_rate_per_s=100.0)
    found = break_evens(options, traffic, fleet, 0.01, 50.0)
    assert [(b["from"], b["to"]) for b in found] == [("api", "rent")]
    # one instance: $40,179.20 a month; the API: $5e-3 per request
    expected = 40_179.20 / (5e-3 * SECONDS_PER_MONTH)
    assert found[0]["rate_per_s"] == pytest.approx(expected, rel=1e-3)
    assert found[0]["utilisation"] == pytest.approx(expected / 100.0, rel=1e-3)


def test_fleet_grows_in_whole_replicas_and_utilisation_is_its_load():
    fleet = Fleet(ReplicaShape("h100-sxm", 1, False), 10.0, simulated=((40.0, 5),))
    assert fleet.replicas_at(25.0) == 3
    assert fleet.replicas_at(40.0) == 5  # simulated there
    assert fleet.utilisation(25.0) == pytest.approx(25 / 30)
