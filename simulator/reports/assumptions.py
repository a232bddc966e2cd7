"""What a report's numbers assume, with sources and dates: the price rows used, the
data-center defaults, the cost model's efficiencies and where they come from, the
calibration's measured error and the validation results (where the repository has them).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from simulator.api import resolve_calibration
from simulator.errors import UserError
from simulator.planning.machines import DEFAULT_BUSY_POWER_FRACTION, DEFAULT_IDLE_POWER_FRACTION
from simulator.planning.tco import PriceOption
from simulator.specs.catalog import specs_dir
from simulator.specs.files import read_yaml
from simulator.specs.prices import load_prices

#: Where the validation results live, relative to the repository root.
VALIDATION_DOC = Path("docs") / "validation.md"


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def price_rows(options: list[PriceOption], gpu: str) -> list[dict[str, Any]]:
    """One row per price used: what, value, date and source; then the owned machine's
    assumptions and the data-centre defaults."""
    prices = load_prices()
    rows = []
    machine = None
    for option in options:
        if option.kind == "cloud" and option.offer:
            o = option.offer
            shape = "NVLink" if o.nvlink else "no NVLink between GPUs"
            rows.append(
                {
                    "item": f"rent: {o.label}, {o.gpus_per_instance} GPU(s) per instance ({shape})",
                    "value": f"${o.price_per_gpu_hour:.3f} per GPU-hour"
                    + (f" ({o.reserved_terms})" if o.reserved_terms else ""),
                    "date": o.date,
                    "source": o.source,
                }
            )
        elif option.kind == "api" and option.api:
            a = option.api
            cached = a.get("cached_input_per_mtok")
            value = f"${a['input_per_mtok']:g} in / ${a['output_per_mtok']:g} out per Mtok"
            if cached is not None:
                value += f", cached in ${cached:g}"
            rows.append(
                {
                    "item": f"API {a['provider']} {a['model']}",
                    "value": value,
                    "date": a["date"],
                    "source": a["source"],
                }
            )
        elif option.kind == "owned" and option.machine:
            machine = option.machine
    if machine is not None:
        rows.append(
            {
                "item": f"own: {machine.description} ({machine.kind}, {machine.hosting})",
                "value": f"${machine.price_usd:,.0f} for {machine.gpus_per_machine} GPU(s), "
                f"{machine.life_years:g} years",
                "date": "",
                "source": "; ".join(machine.assumptions),
            }
        )
        rows.append(
            {
                "item": "own: running costs",
                "value": f"${machine.electricity_usd_per_kwh:g}/kWh, PUE {machine.pue:g}, "
                f"hosting ${machine.hosting_usd_per_kw_month:g}/kW-month",
                "date": "",
                "source": "prices.yaml datacenter (or plan.tco)",
            }
        )
    for key, entry in prices["datacenter"].items():
        rows.append(
            {
                "item": f"data center: {key}",
                "value": f"{entry['value']:g}",
                "date": entry.get("date", ""),
                "source": entry.get("source", ""),
            }
        )
    rows.append(
        {
            "item": "GPU power, idle and busy (fraction of TDP)",
            "value": f"{DEFAULT_IDLE_POWER_FRACTION:g} / {DEFAULT_BUSY_POWER_FRACTION:g}",
            "date": "",
            "source": "simulator.planning.machines (rule of thumb; conservative busy draw)",
        }
    )
    return rows


def efficiency_rows(scenario) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """(source of the cost-model parameters, its metadata, one row per parameter)."""
    params, source = resolve_calibration(scenario)
    profile = getattr(scenario.engine, "profile", None)
    if profile:
        from simulator.costmodel.profiles import load_profile

        params = load_profile(profile).apply(params)
    metadata: dict[str, Any] = {}
    fitted: set[str] = set()
    path = Path(source)
    if path.is_file():
        try:
            metadata = (read_yaml(path, "calibration file") or {}).get("metadata") or {}
        except (UserError, AttributeError):
            metadata = {}
        fitted = set(metadata.get("fitted_parameters") or [])
    rows = []
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if value is None:
            continue
        rows.append(
            {
                "parameter": f.name,
                "value": f"{value:.4g}" if isinstance(value, float) else str(value),
                "origin": "fitted" if f.name in fitted else "documented default",
            }
        )
    with contextlib.suppress(ValueError):
        source = str(path.resolve().relative_to(specs_dir().resolve().parent))
    if profile:
        source += f", engine profile {profile!r} applied"
    return source, metadata, rows


def error_band(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The calibration fit's errors per kind of measured row (median and worst |%|)."""
    rows = []
    for kind, stats in (metadata.get("error_fitted_rows") or {}).items():
        rows.append(
            {
                "rows": kind,
                "n": stats.get("n"),
                "median_abs_pct": stats.get("median_abs_pct"),
                "max_abs_pct": stats.get("max_abs_pct"),
            }
        )
    return rows


def validation_summary() -> dict[str, Any]:
    """Whether validation results exist, and the rows of their held-out summary table
    (the first markdown table under a "## Summary" heading)."""
    path = _repo_root() / VALIDATION_DOC
    if not path.is_file():
        return {"available": False, "path": str(VALIDATION_DOC), "header": [], "rows": []}
    lines = path.read_text().splitlines()
    header: list[str] = []
    rows: list[list[str]] = []
    in_summary = False
    for line in lines:
        if line.startswith("## "):
            if rows:
                break
            in_summary = line.lower().startswith("## summary")
            continue
        if not in_summary:
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if not header:
                header = cells
            else:
                rows.append(cells)
        elif rows:
            break
    return {"available": True, "path": str(VALIDATION_DOC), "header": header, "rows": rows}
