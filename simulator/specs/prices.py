"""Prices of cloud GPUs, hardware, LLM APIs and data-center operation (``prices.yaml``).

Every row carries a date and a source. :func:`load_prices` checks the shape of the file
(required fields, non-negative numbers, known GPU names) and returns a plain dict; the
helpers below pick rows out of it.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from simulator.errors import UserError
from simulator.specs import catalog

_SECTIONS = (
    "cloud_gpu",
    "market_indices",
    "hardware_purchase",
    "api",
    "datacenter",
    "electricity_by_state_usd_per_kwh",
)
_CLOUD_REQUIRED = ("provider", "instance", "gpus_per_instance", "gpu", "date", "source")
_CLOUD_PRICES = ("on_demand_per_gpu_hour", "reserved_per_gpu_hour", "spot_per_gpu_hour")
_HARDWARE_REQUIRED = ("item", "kind", "gpu", "gpus", "price_usd", "date", "source")
_API_REQUIRED = ("provider", "model", "input_per_mtok", "output_per_mtok", "date", "source")
_DATACENTER_REQUIRED = (
    "electricity_usd_per_kwh",
    "pue",
    "colocation_usd_per_kw_month",
    "server_life_years",
)
PRICE_KINDS = ("on_demand", "reserved", "spot")


def prices_path() -> Path:
    """Location of the catalog's ``prices.yaml``."""
    return catalog.specs_dir() / "prices.yaml"


def load_prices(path: str | Path | None = None) -> dict[str, Any]:
    """The price tables (a fresh copy), validated; ``path`` defaults to the catalog's file."""
    resolved = Path(path).expanduser() if path is not None else prices_path()
    if not resolved.is_file():
        raise UserError(f"{resolved}: prices file does not exist")
    return copy.deepcopy(_load_validated(catalog._file_key(resolved.resolve())))


@functools.lru_cache(maxsize=8)
def _load_validated(key: tuple[Path, int, int]) -> dict[str, Any]:
    path = key[0]
    data = catalog._read_yaml(path)
    where = str(path)
    if not isinstance(data, dict):
        raise UserError(f"{where}: the prices file must be a YAML mapping")
    problems: list[str] = []
    for key in data:
        if key not in _SECTIONS:
            problems.append(f"{where}: unknown section {key!r}; allowed: {', '.join(_SECTIONS)}")
    for key in ("cloud_gpu", "hardware_purchase", "api", "datacenter"):
        if key not in data:
            problems.append(f"{where}: section {key!r} is missing")
    if problems:
        raise UserError(problems)
    known_gpus = set(catalog.list_gpus())
    problems += _check_rows(data["cloud_gpu"], f"{where}: cloud_gpu", _CLOUD_REQUIRED)
    problems += _check_rows(
        data["hardware_purchase"], f"{where}: hardware_purchase", _HARDWARE_REQUIRED
    )
    problems += _check_rows(data["api"], f"{where}: api", _API_REQUIRED)
    if not problems:
        problems += _check_cloud(data["cloud_gpu"], f"{where}: cloud_gpu", known_gpus)
        problems += _check_hardware(
            data["hardware_purchase"], f"{where}: hardware_purchase", known_gpus
        )
        problems += _check_api(data["api"], f"{where}: api")
    problems += _check_datacenter(data["datacenter"], f"{where}: datacenter")
    if problems:
        raise UserError(problems)
    return data


def _check_rows(rows: Any, where: str, required: tuple[str, ...]) -> list[str]:
    if not isinstance(rows, list):
        return [f"{where} must be a list of rows"]
    problems = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(f"{where}[{i}] must be a mapping")
            continue
        problems += [
            f"{where}[{i}]: field {key!r} is missing" for key in required if key not in row
        ]
    return problems


def _bad_number(value: Any, allow_none: bool) -> bool:
    if value is None:
        return not allow_none
    return isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0


def _check_cloud(rows: list[dict], where: str, known_gpus: set[str]) -> list[str]:
    problems = []
    for i, row in enumerate(rows):
        label = f"{where}[{i}] ({row['provider']} {row['instance']})"
        if row["gpu"] not in known_gpus:
            problems.append(f"{label}: gpu {row['gpu']!r} is not in the GPU catalog")
        count = row["gpus_per_instance"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{label}: gpus_per_instance must be a positive integer, got {count!r}")
        prices = [row.get(key) for key in _CLOUD_PRICES]
        for key, value in zip(_CLOUD_PRICES, prices, strict=True):
            if _bad_number(value, allow_none=True):
                problems.append(f"{label}: {key} must be a non-negative number or null")
        if all(value is None for value in prices):
            problems.append(f"{label}: gives no price ({', '.join(_CLOUD_PRICES)})")
    return problems


def _check_hardware(rows: list[dict], where: str, known_gpus: set[str]) -> list[str]:
    problems = []
    for i, row in enumerate(rows):
        label = f"{where}[{i}] ({row['item']})"
        if row["gpu"] is not None and row["gpu"] not in known_gpus:
            problems.append(f"{label}: gpu {row['gpu']!r} is not in the GPU catalog")
        if _bad_number(row["price_usd"], allow_none=False) or row["price_usd"] <= 0:
            problems.append(f"{label}: price_usd must be a positive number")
    return problems


def _check_api(rows: list[dict], where: str) -> list[str]:
    problems = []
    known_models = set(catalog.list_models())
    for i, row in enumerate(rows):
        label = f"{where}[{i}] ({row['provider']} {row['model']})"
        for key in ("input_per_mtok", "output_per_mtok"):
            if _bad_number(row[key], allow_none=False):
                problems.append(f"{label}: {key} must be a non-negative number")
        if _bad_number(row.get("cached_input_per_mtok"), allow_none=True):
            problems.append(f"{label}: cached_input_per_mtok must be a non-negative number or null")
        model = row.get("catalog_model")
        if model is not None and model not in known_models:
            problems.append(f"{label}: catalog_model {model!r} is not in the model catalog")
    return problems


def _check_datacenter(section: Any, where: str) -> list[str]:
    if not isinstance(section, dict):
        return [f"{where} must be a mapping of name -> {{value, source}}"]
    problems = [
        f"{where}: {key!r} is missing" for key in _DATACENTER_REQUIRED if key not in section
    ]
    for key, entry in section.items():
        if not isinstance(entry, dict) or "value" not in entry or not entry.get("source"):
            problems.append(f"{where}.{key} must be {{value: <number>, source: <text>}}")
        elif _bad_number(entry["value"], allow_none=False):
            problems.append(f"{where}.{key}.value must be a non-negative number")
    return problems


# ----------------------------------------------------------------------------- helpers
def cloud_prices_per_gpu_hour(
    gpu: str, kind: str = "on_demand", prices: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows of ``cloud_gpu`` for ``gpu`` that give a ``kind`` price (on_demand, reserved or
    spot), cheapest first; each row gains ``price_per_gpu_hour``."""
    if kind not in PRICE_KINDS:
        raise UserError(f"price kind {kind!r} is not known; allowed: {', '.join(PRICE_KINDS)}")
    table = prices if prices is not None else load_prices()
    key = f"{kind}_per_gpu_hour"
    rows = [
        {**row, "price_per_gpu_hour": row[key]}
        for row in table["cloud_gpu"]
        if row["gpu"] == gpu and row.get(key) is not None
    ]
    return sorted(rows, key=lambda row: row["price_per_gpu_hour"])


def datacenter_defaults(prices: dict[str, Any] | None = None) -> dict[str, float]:
    """Data-center defaults as plain numbers: electricity_usd_per_kwh, pue,
    colocation_usd_per_kw_month, server_life_years, ..."""
    table = prices if prices is not None else load_prices()
    return {key: float(entry["value"]) for key, entry in table["datacenter"].items()}
