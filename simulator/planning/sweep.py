"""Sweeps: the cross product of scenario settings, simulated anywhere, cached by content.

``sweep(scenario, {"hardware.gpu": ["h100-sxm", "h200"], "workload.arrival.rate_per_s":
[5, 10]})`` simulates the four points and returns one row per point: the grid values, the
point's ``scenario_hash``, an ``error`` (empty when it ran) and the flattened summary
(``ttft_ms.p99``, ``slo.attainment``, ...).

A point's hash is the sha256 of its resolved scenario (JSON, defaults filled in), the
package version and the content of the files it reads (trace, calibration). With a cache
folder, each finished point is stored as ``<hash>.json`` as soon as it finishes, and a
rerun (or the rest of an interrupted sweep) only simulates points whose file is missing.
Rows come out in grid order, whatever ran them and in whatever order they finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.executors import run_tasks
from simulator.planning.outcome import scenario_data, scenario_from_data

#: Summary fields that are not one number per run, left out of sweep rows.
NESTED_FIELDS_LEFT_OUT = ("per_class", "rejections", "saturation_details")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["hardware.gpu=h100-sxm,h200", "engine.max_num_seqs=64,128"]`` -> a grid; each value
    is read as YAML (numbers stay numbers)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UserError(f"--grid {item!r}: expected dotted.key=v1,v2,...")
        try:
            values = [yaml.safe_load(v) for v in raw.split(",")]
        except yaml.YAMLError as exc:
            raise UserError(f"--grid {item!r}: a value is not valid YAML ({exc})") from None
        if key in grid:
            raise UserError(f"--grid {key}: given twice")
        grid[key] = values
    return grid


def expand_grid(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def package_version() -> str:
    try:
        return metadata.version("servesim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _file_digest(path: Path) -> str:
    if not path.is_file():
        return "missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scenario_hash(scenario: Scenario) -> str:
    """Content hash of a resolved scenario: what it says, the files it reads, the version."""
    data = scenario.model_dump(mode="json")
    files = {}
    for name, rel in (
        ("trace", scenario.workload.trace),
        ("calibration", scenario.hardware.calibration),
    ):
        if rel and rel.lower() != "none":
            path = Path(rel) if Path(rel).is_absolute() else scenario.base_dir / rel
            files[name] = _file_digest(path)
    text = json.dumps(
        {"scenario": data, "files": files, "version": package_version()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """One level of columns: ``ttft_ms.p99``, ``slo.attainment``, ``slo.all_met``, ..."""
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if key in NESTED_FIELDS_LEFT_OUT:
            continue
        if key == "slo":
            value = value or {}
            row["slo.attainment"] = value.get("attainment")
            row["slo.all_met"] = value.get("all_met")
        elif isinstance(value, Mapping):
            for sub, v in value.items():
                row[f"{key}.{sub}"] = v
        else:
            row[key] = value
    return row


def run_point(payload: dict[str, Any]) -> dict[str, Any]:
    """Simulate one sweep point (a task for any executor); JSON-ready result."""
    from simulator.api import run

    point = scenario_from_data(payload["scenario"], payload["base_dir"])
    try:
        summary = run(point).summary
    except UserError as exc:
        return {"error": "; ".join(exc.messages), "summary": {}}
    # A JSON round trip makes fresh and cached results the same numbers (NaN -> None).
    return json.loads(json.dumps({"error": "", "summary": flatten_summary(summary)}))


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def sweep(
    scenario: Scenario | str | Path,
    grid: Mapping[str, list[Any]],
    workers: int = 1,
    dask_scheduler: Any = None,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate every point of ``grid`` (dotted scenario keys -> values); one row per point.

    ``dask_scheduler``: an address or a ``distributed.Client``; else ``workers`` local
    processes. ``cache_dir``: store and reuse finished points there."""
    from simulator.api import load_scenario

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if not grid:
        raise UserError("--grid: give at least one dotted.key=v1,v2,...")
    points = expand_grid(grid)
    payloads, hashes, problems = [], [], []
    for i, values in enumerate(points):
        try:
            resolved = scenario.with_settings(values)
        except UserError as exc:
            where = ", ".join(f"{k}={v}" for k, v in values.items())
            problems += [f"grid point {i} ({where}): {m}" for m in exc.messages]
            continue
        payloads.append({"scenario": scenario_data(resolved), "base_dir": str(scenario.base_dir)})
        hashes.append(scenario_hash(resolved))
    if problems:
        raise UserError(problems)

    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, digest in enumerate(hashes):
        cached = cache / f"{digest}.json" if cache is not None else None
        if cached is not None and cached.is_file():
            try:
                results[i] = json.loads(cached.read_text())
                continue
            except json.JSONDecodeError:
                pass  # a damaged entry is simulated again
        todo.append(i)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(points),
            initial=len(points) - len(todo),
            unit="point",
            desc="sweeping",
            file=sys.stderr,
            leave=False,
        )
    try:
        tasks = [payloads[i] for i in todo]
        for j, result in run_tasks(
            run_point, tasks, workers=workers, dask_scheduler=dask_scheduler
        ):
            i = todo[j]
            results[i] = result
            if cache is not None:
                _write_atomic(cache / f"{hashes[i]}.json", result)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    rows = []
    for i, values in enumerate(points):
        result = results[i]
        rows.append(
            {**values, "scenario_hash": hashes[i], "error": result["error"], **result["summary"]}
        )
    frame = pd.DataFrame(rows)
    frame.attrs["simulated"] = len(todo)
    frame.attrs["cached"] = len(points) - len(todo)
    return frame


def check_output(path: str | Path) -> None:
    """Fail before a sweep runs if its results could not be written to ``path``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return
    if suffix not in (".parquet", ".pq"):
        raise UserError(f"-o {path}: unknown extension {suffix!r}; use .csv or .parquet")
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        raise UserError(f"-o {path}: Parquet needs pyarrow (pip install pyarrow); or write .csv")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a sweep's rows as CSV or Parquet (by the file's extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        try:
            frame.to_parquet(path, index=False)
        except ImportError:
            raise UserError(
                f"-o {path}: Parquet needs pyarrow (pip install pyarrow); or write .csv"
            ) from None
    else:
        raise UserError(f"-o {path}: unknown extension {suffix!r}; use .csv or .parquet")
    return path
