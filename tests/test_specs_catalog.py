"""The hardware/model catalog: every file loads, numbers carry sources, errors name things."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from simulator.errors import UnknownNameError, UserError
from simulator.specs import catalog
from simulator.specs.catalog import (
    gpu_catalog_entry,
    list_gpus,
    list_links,
    list_models,
    load_gpu,
    load_link,
    load_model,
    specs_dir,
)
from simulator.specs.prices import cloud_prices_per_gpu_hour, datacenter_defaults, load_prices

REQUIRED_GPUS = [
    "h100-sxm", "h100-pcie", "h200", "a100-sxm-80gb", "a100-pcie-80gb", "a100-sxm-40gb",
    "l40s", "l4", "a10g", "rtx-4090", "rtx-3090", "rtx-5090", "mi300x", "b200",
    "m2-ultra", "m3-max", "m4-max", "cpu-server",
]  # fmt: skip
REQUIRED_LINKS = [
    "pcie3", "pcie4", "pcie5", "pcie6", "nvlink3", "nvlink4", "nvlink5", "nvlink-bridge",
    "infiniband-hdr", "infiniband-ndr", "infiniband-xdr", "ethernet-100g", "ethernet-200g",
    "ethernet-400g", "xgmi",
]  # fmt: skip
REQUIRED_MODELS = [
    "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
    "mistral-7b", "qwen2.5-7b", "qwen2.5-72b", "llama-2-70b", "mixtral-8x7b", "mixtral-8x22b",
    "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3", "deepseek-r1", "gpt-oss-120b",
    "gpt-oss-20b",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_cache():
    catalog.clear_cache()
    yield
    catalog.clear_cache()


def test_catalog_folder_is_the_repository_one_by_default(monkeypatch):
    monkeypatch.delenv(catalog.SPECS_DIR_ENV, raising=False)
    assert (specs_dir() / "gpus" / "h100-sxm.yaml").is_file()


def test_required_names_are_listed():
    assert set(REQUIRED_GPUS) <= set(list_gpus())
    assert set(REQUIRED_LINKS) <= set(list_links())
    assert set(REQUIRED_MODELS) <= set(list_models())
    assert "none" not in list_links()


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_every_gpu_loads_with_a_source_for_every_number(name):
    gpu = load_gpu(name)
    assert gpu.name == name
    assert gpu.peak_flops["bf16"] > 0
    assert gpu.memory_bytes > 0 and gpu.memory_bw_bytes_per_s > 0
    raw = gpu_catalog_entry(name)
    numeric_fields = [f"peak_flops.{dtype}" for dtype in raw["peak_flops"]]
    numeric_fields += [k for k in ("memory_bytes", "memory_bw_bytes_per_s", "l2_bytes", "tdp_w",
                                   "sm_count", "boost_clock_hz") if k in raw]  # fmt: skip
    for field in numeric_fields:
        assert gpu.sources[field].strip(), field
    for link in (gpu.interconnect, gpu.host_link):
        assert link == "" or link in list_links()


def test_gpu_numbers_match_the_data_sheet():
    h100 = load_gpu("h100-sxm")
    assert h100.peak_flops["bf16"] == pytest.approx(989.4e12)
    assert h100.peak_flops["fp8"] == pytest.approx(1978.9e12)
    assert h100.memory_bw_bytes_per_s == pytest.approx(3.35e12)
    assert h100.interconnect == "nvlink4" and h100.host_link == "pcie5"
    # 141 GiB of HBM3e, of which CUDA reports 150.1e9 B on the lent H200
    assert load_gpu("h200").memory_bytes == pytest.approx(150.11e9)
    assert load_gpu("mi300x").interconnect == "xgmi"
    # GeForce bf16 is the FP32-accumulate rate, half of the FP16-accumulate one.
    assert load_gpu("rtx-4090").peak_flops["bf16"] == pytest.approx(165.2e12)
    # SMs x clock: the SM counts of the reference sheet, clocks derived from FP32 peaks.
    assert h100.sm_count == 132 and h100.sm_cycles_per_s == pytest.approx(132 * 1.98e9)
    assert load_gpu("rtx-4090").sm_count == 128
    assert load_gpu("m2-ultra").sm_cycles_per_s == 0  # not known: ceilings that need it stay off
    # Apple and the CPU server have no links at all.
    assert load_gpu("m2-ultra").interconnect == "" and load_gpu("m2-ultra").host_link == ""


def test_gpu_spec_falls_back_to_bf16_for_formats_without_a_native_path():
    a100 = load_gpu("a100-sxm-80gb")
    assert "fp8" not in a100.peak_flops
    assert a100.flops_for("fp8") == a100.peak_flops["bf16"]


@pytest.mark.parametrize("name", REQUIRED_LINKS)
def test_every_link_loads(name):
    link = load_link(name)
    assert link.name == name
    assert link.bandwidth_bytes_per_s > 1e9
    assert 0 < link.latency_s < 1e-4
    assert link.sources["bandwidth_bytes_per_s"] and link.sources["latency_s"]


def test_link_numbers_are_per_direction():
    assert load_link("nvlink4").bandwidth_bytes_per_s == pytest.approx(450e9)
    assert load_link("pcie5").bandwidth_bytes_per_s == pytest.approx(63e9)
    assert load_link("infiniband-ndr").bandwidth_bytes_per_s == pytest.approx(50e9)
    nv = load_link("nvlink4")
    assert nv.transfer_s(450e9) == pytest.approx(1.0 + nv.latency_s)


def test_none_is_not_a_link():
    with pytest.raises(UserError, match="no link"):
        load_link("none")


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_every_model_loads(name):
    model = load_model(name)
    assert model.name == name
    assert model.param_count() > 1e9


def test_unknown_gpu_suggests_the_close_catalog_name():
    with pytest.raises(UnknownNameError) as err:
        load_gpu("h100")
    assert "did you mean 'h100-sxm'" in str(err.value)
    assert "a100-sxm-80gb" in str(err.value)  # the known names are listed
    with pytest.raises(UnknownNameError, match=r"did you mean 'llama-3\.1-8b'"):
        load_model("llama-3.1-8")
    with pytest.raises(UnknownNameError, match="did you mean 'nvlink4'"):
        load_link("nvlink-4")


def test_catalog_names_ignore_letter_case():
    assert load_gpu("H100-SXM").name == "h100-sxm"
    assert load_link("NVLink4").name == "nvlink4"
    assert load_model("Llama-3.1-8B").name == "llama-3.1-8b"


def test_catalog_entry_is_a_copy_with_sources():
    entry = gpu_catalog_entry("h100-sxm")
    assert "source" in entry["memory_bw_bytes_per_s"]
    entry["memory_bw_bytes_per_s"]["value"] = 0
    assert gpu_catalog_entry("h100-sxm")["memory_bw_bytes_per_s"]["value"] > 0


def test_loads_are_cached():
    assert load_gpu("h100-sxm") is load_gpu("h100-sxm")
    assert load_model("llama-3.1-8b") is load_model("llama-3.1-8b")


# ----------------------------------------------------------------------------- paths
def _copy_model_dir(tmp_path: Path, catalog_name: str, dir_name: str) -> Path:
    folder = tmp_path / dir_name
    folder.mkdir()
    shutil.copy(specs_dir() / "models" / f"{catalog_name}.json", folder / "config.json")
    return folder


def test_a_config_json_path_or_its_folder_loads(tmp_path):
    folder = _copy_model_dir(tmp_path, "llama-3.1-8b", "Meta-Llama-3.1-8B-Instruct")
    by_file = load_model(str(folder / "config.json"))
    by_dir = load_model(str(folder))
    assert by_file.name == by_dir.name == "Meta-Llama-3.1-8B-Instruct"
    assert by_file.param_count() == load_model("llama-3.1-8b").param_count()
    single = tmp_path / "my-model.json"
    shutil.copy(folder / "config.json", single)
    assert load_model(str(single)).name == "my-model"


def test_a_bad_config_reports_the_missing_field_and_the_file(tmp_path):
    config = json.loads((specs_dir() / "models" / "qwen2.5-7b.json").read_text())
    del config["num_hidden_layers"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(config))
    with pytest.raises(UserError) as err:
        load_model(str(path))
    assert "num_hidden_layers" in str(err.value)
    assert str(path) in str(err.value)


def test_missing_and_malformed_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match=r"nope\.yaml"):
        load_gpu(str(missing))
    with pytest.raises(UserError, match="does not exist"):
        load_model(str(tmp_path / "absent.json"))
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_model(str(tmp_path))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad\.yaml:2:1: not valid YAML"):
        load_gpu(str(bad_yaml))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(UserError, match=r"bad\.json:\d+:\d+: not valid JSON"):
        load_model(str(bad_json))


def _gpu_yaml(**overrides) -> dict:
    data = {
        "name": "test-gpu",
        "peak_flops": {"bf16": {"value": "100.0e12", "source": "test"}},
        "memory_bytes": {"value": 16e9, "source": "test"},
        "memory_bw_bytes_per_s": {"value": "1e12", "source": "test"},
        "interconnect": {"value": "none", "source": "test"},
        "host_link": {"value": "pcie4", "source": "test"},
    }
    data.update(overrides)
    return data


def test_a_gpu_file_path_loads_and_reads_unsigned_exponents(tmp_path):
    path = tmp_path / "test-gpu.yaml"
    path.write_text(yaml.safe_dump(_gpu_yaml()))
    gpu = load_gpu(str(path))
    assert gpu.peak_flops["bf16"] == pytest.approx(100e12)  # "100.0e12" is a string to YAML
    assert gpu.memory_bw_bytes_per_s == pytest.approx(1e12)
    assert gpu.interconnect == "" and gpu.host_link == "pcie4"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"memory_bytes": 16e9}, "memory_bytes must be a mapping"),
        ({"memory_bytes": {"value": 16e9}}, "memory_bytes must be a mapping"),
        ({"memory_bytes": {"value": "lots", "source": "x"}}, "'lots' is not a number"),
        ({"memory_bytes": {"value": 16e9, "source": ""}}, "memory_bytes.source"),
        ({"peak_flops": {"fp8": {"value": 1e15, "source": "x"}}}, "include bf16"),
        ({"host_link": {"value": "pcie9", "source": "x"}}, "unknown link.*'pcie9'"),
        ({"colour": "green"}, "unknown field 'colour'"),
        ({"sm_count": {"value": 13.5, "source": "x"}}, "sm_count 13.5 must be a whole number"),
    ],
)
def test_malformed_gpu_fields_are_named(tmp_path, overrides, message):
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(_gpu_yaml(**overrides)))
    with pytest.raises(UserError, match=message):
        load_gpu(str(path))


def test_a_missing_required_gpu_field_is_named(tmp_path):
    data = _gpu_yaml()
    del data["memory_bw_bytes_per_s"]
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="'memory_bw_bytes_per_s' is missing"):
        load_gpu(str(path))


def test_a_link_file_path_loads(tmp_path):
    path = tmp_path / "my-link.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kind": "ethernet",
                "bandwidth_bytes_per_s": {"value": 3.125e9, "source": "25 GbE line rate"},
                "latency_s": {"value": 5e-6, "source": "guess for a test"},
            }
        )
    )
    link = load_link(str(path))
    assert link.name == "my-link" and link.bandwidth_bytes_per_s == pytest.approx(3.125e9)


def test_env_var_points_the_catalog_elsewhere(tmp_path, monkeypatch):
    (tmp_path / "gpus").mkdir()
    (tmp_path / "models").mkdir()
    shutil.copy(specs_dir() / "links.yaml", tmp_path / "links.yaml")
    (tmp_path / "gpus" / "only-gpu.yaml").write_text(yaml.safe_dump(_gpu_yaml(name="only-gpu")))
    monkeypatch.setenv(catalog.SPECS_DIR_ENV, str(tmp_path))
    assert specs_dir() == tmp_path
    assert list_gpus() == ["only-gpu"]
    assert load_gpu("only-gpu").name == "only-gpu"
    with pytest.raises(UnknownNameError):
        load_gpu("h100-sxm")
    monkeypatch.setenv(catalog.SPECS_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(UserError, match="is not a directory"):
        specs_dir()


# ----------------------------------------------------------------------------- prices
def test_prices_load_and_reference_catalog_names():
    prices = load_prices()
    gpus, models = set(list_gpus()), set(list_models())
    assert prices["cloud_gpu"] and prices["api"] and prices["hardware_purchase"]
    for row in prices["cloud_gpu"]:
        assert row["gpu"] in gpus and row["source"] and row["date"]
    for row in prices["api"]:
        assert row["catalog_model"] is None or row["catalog_model"] in models
    defaults = datacenter_defaults(prices)
    assert 0.03 < defaults["electricity_usd_per_kwh"] < 0.3
    assert 1.0 <= defaults["pue"] < 2.0
    assert defaults["server_life_years"] >= 3


def test_cloud_prices_are_per_gpu_hour_and_sorted():
    rows = cloud_prices_per_gpu_hour("h100-sxm", "on_demand")
    values = [row["price_per_gpu_hour"] for row in rows]
    assert values == sorted(values) and len(values) >= 5
    p5 = next(row for row in rows if row["instance"] == "p5.48xlarge")
    assert p5["price_per_gpu_hour"] == pytest.approx(55.04 / 8, rel=1e-3)
    assert all(row["spot_per_gpu_hour"] is not None
               for row in cloud_prices_per_gpu_hour("rtx-4090", "spot"))  # fmt: skip
    with pytest.raises(UserError, match="price kind"):
        cloud_prices_per_gpu_hour("h100-sxm", "cheap")


def test_a_bad_prices_file_names_the_row_and_field(tmp_path):
    data = yaml.safe_load((specs_dir() / "prices.yaml").read_text())
    del data["cloud_gpu"][2]["source"]
    data["api"][0]["output_per_mtok"] = -1
    data["cloud_gpu"][1]["gpu"] = "h900"
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        load_prices(path)
    assert "cloud_gpu[2]: field 'source' is missing" in str(err.value)
    data["cloud_gpu"][2]["source"] = "restored"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        load_prices(path)
    text = str(err.value)
    assert "gpu 'h900' is not in the GPU catalog" in text
    assert "output_per_mtok must be a non-negative number" in text
