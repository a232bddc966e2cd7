"""Cost models against hand calculations."""

from __future__ import annotations

import math

import pytest

from simulator.planning.tco import (
    HOURS_PER_MONTH,
    Deployment,
    OwnedParams,
    TokenVolume,
    api_monthly_usd,
    api_option,
    break_even_cloud_vs_api,
    break_even_owned_vs_cloud,
    cloud_option,
    default_owned_params,
    gpu_power_w,
    owned_option,
)
from simulator.specs.prices import cloud_prices_per_gpu_hour

VOLUME = TokenVolume(input_tokens_per_month=2e9, output_tokens_per_month=1e9)


def test_month_is_730_hours():
    assert HOURS_PER_MONTH == 730


def test_rented_8x_h100_month():
    rows = cloud_prices_per_gpu_hour("h100-sxm")
    aws = next(r for r in rows if r["instance"] == "p5.48xlarge")
    assert aws["price_per_gpu_hour"] == 6.88 and aws["gpus_per_instance"] == 8
    deployment = Deployment("h100-sxm", 8, 0.5, 1000.0, input_time_share=0.25)
    option = cloud_option(deployment, VOLUME, price_per_gpu_hour=6.88, gpus_per_instance=8)
    # 8 GPUs x $6.88 x 730 h = $40,179.20
    assert option.monthly_usd == pytest.approx(40_179.20)
    # A quarter of it on 2e9 input tokens, three quarters on 1e9 output tokens.
    assert option.usd_per_million_input_tokens == pytest.approx(40_179.20 * 0.25 / 2000)
    assert option.usd_per_million_output_tokens == pytest.approx(40_179.20 * 0.75 / 1000)


def test_instances_are_rented_whole():
    nine = Deployment("h100-sxm", 9, 0.5, 1000.0)
    option = cloud_option(nine, VOLUME, price_per_gpu_hour=2.0, gpus_per_instance=8)
    assert option.breakdown["instances"] == 2 and option.breakdown["rented_gpus"] == 16
    assert option.monthly_usd == pytest.approx(16 * 2.0 * 730)


def test_owned_server_monthly_amortisation_and_power():
    params = OwnedParams(
        server_price_usd=270_000,
        gpus_per_server=8,
        life_years=5,
        electricity_usd_per_kwh=0.10,
        pue=1.5,
        hosting_usd_per_kw_month=150.0,
        server_overhead_fraction=0.35,
        idle_power_fraction=0.1,
        busy_power_fraction=1.0,
        staff_usd_per_month=1000.0,
        tdp_w=700.0,
    )
    deployment = Deployment("h100-sxm", 8, 0.5, 1000.0, input_time_share=0.5)
    option = owned_option(deployment, VOLUME, params)
    parts = option.breakdown
    # 270,000 / 60 months
    assert parts["amortisation_usd"] == pytest.approx(4500.0)
    # GPU: 700 x (0.1 + 0.5 x 0.9) = 385 W; rest of server 0.35 x 700 = 245 W per GPU
    assert gpu_power_w(700, 0.5, 0.1) == pytest.approx(385.0)
    it_kw = 8 * (385 + 245) / 1000  # 5.04 kW
    energy_kwh = it_kw * 1.5 * 730  # 5518.8 kWh
    assert parts["energy_kwh"] == pytest.approx(energy_kwh)
    assert parts["electricity_usd"] == pytest.approx(energy_kwh * 0.10)  # $551.88
    # Hosting on provisioned power: 8 x 700 W x 1.35 = 7.56 kW x $150
    assert parts["hosting_usd"] == pytest.approx(7.56 * 150)
    assert option.monthly_usd == pytest.approx(4500 + 551.88 + 1134 + 1000)
    assert option.energy_wh_per_output_token == pytest.approx(energy_kwh * 1e3 / 1e9)
    assert option.energy_wh_per_token == pytest.approx(energy_kwh * 1e3 / 3e9)


def test_partly_used_server_pays_idle_power_of_the_rest():
    params = OwnedParams(
        server_price_usd=100_000,
        idle_power_fraction=0.1,
        tdp_w=1000.0,
        server_overhead_fraction=0.0,
        pue=1.0,
        electricity_usd_per_kwh=1.0,
    )
    two_busy = Deployment("h100-sxm", 2, 1.0, 100.0)
    parts = owned_option(two_busy, VOLUME, params).breakdown
    # 2 GPUs at 1000 W, 6 idle at 100 W: 2.6 kW for 730 h
    assert parts["energy_kwh"] == pytest.approx(2.6 * 730)


def test_api_cost_of_a_fixed_token_volume():
    api = {
        "provider": "x",
        "model": "m",
        "input_per_mtok": 0.27,
        "cached_input_per_mtok": 0.07,
        "output_per_mtok": 1.10,
    }
    volume = TokenVolume(1e9, 2e8, cached_input_fraction=0.25)
    parts = api_monthly_usd(volume, api)
    # 750M fresh x 0.27 + 250M cached x 0.07 + 200M out x 1.10
    assert parts["input_usd"] == pytest.approx(202.5)
    assert parts["cached_input_usd"] == pytest.approx(17.5)
    assert parts["output_usd"] == pytest.approx(220.0)
    option = api_option(volume, api)
    assert option.monthly_usd == pytest.approx(440.0)
    assert option.usd_per_million_input_tokens == pytest.approx(0.22)
    no_cache_price = dict(api, cached_input_per_mtok=None)
    assert api_option(volume, no_cache_price).monthly_usd == pytest.approx(270 + 220)


def test_break_even_cloud_vs_api():
    api = {"provider": "x", "model": "m", "input_per_mtok": 1.0, "output_per_mtok": 2.0}
    volume = TokenVolume(3e9, 1e9)  # 3 input tokens per output token
    # One 8-GPU instance at $2/GPU-hour: $11,680 a month. The API charges $5 per million
    # output tokens (3 x $1 + $2), so renting wins above 11,680 / 5 = 2,336 M tokens/month.
    deployment = Deployment("h100-sxm", 4, 1.0, capacity_output_tokens_per_s=1000.0)
    found = break_even_cloud_vs_api(deployment, volume, api, 2.0, 8)
    assert found.output_tokens_per_month == pytest.approx(2.336e9)
    # The rented 8 GPUs hold twice the 4-GPU capacity: 2000 tok/s x 730 h = 5.256e9 a month.
    assert found.utilisation == pytest.approx(2.336e9 / 5.256e9)
    assert found.cheaper_above == "cloud" and found.notes == ""


def test_break_even_owned_vs_cloud():
    params = OwnedParams(
        server_price_usd=240_000,
        gpus_per_server=8,
        life_years=5,
        electricity_usd_per_kwh=0.0,
        hosting_usd_per_kw_month=0.0,
        staff_usd_per_month=0.0,
    )
    # Owning: $4,000 a month. Renting 8 GPUs at $2: $11,680 a month at full use, for
    # 8 x 100 tok/s x 730 h = 2.1024e9 tokens, so $5.5556e-6 per token; owning wins above
    # 4,000 / 5.5556e-6 = 7.2e8 tokens a month (34% utilisation).
    deployment = Deployment("h100-sxm", 1, 1.0, capacity_output_tokens_per_s=100.0)
    found = break_even_owned_vs_cloud(deployment, params, 2.0)
    assert found.output_tokens_per_month == pytest.approx(4000 / (11_680 / 2.1024e9))
    assert found.utilisation == pytest.approx(4000 / 11_680)
    assert found.cheaper_above == "owned"


def test_default_owned_params_from_prices_file():
    params = default_owned_params("h100-sxm")
    assert params.server_price_usd == 270_000 and params.gpus_per_server == 8
    assert params.tdp_w == 700 and params.life_years == 5
    # A GPU priced only as a card: 8 cards plus the rest of the server.
    mi = default_owned_params("mi300x")
    assert mi.server_price_usd == pytest.approx(12_500 * 8 * 1.35)
    assert math.isfinite(mi.tdp_w)
