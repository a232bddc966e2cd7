"""Sweeps: the cross product of scenario settings, simulated anywhere, cached by content.

``sweep(scenario, {"hardware.gpu": ["h100-sxm", "h200"], "workload.arrival.rate_per_s":
[5, 10]})`` simulates the four points and returns one row per point: the grid values, the
point's ``scenario_hash``, an ``error`` (empty when it ran) and the flattened summary
(``ttft_ms.p99``, ``slo.attainment``, ...).

A point's hash covers everything that can change its answer (``sweep_cache``: the
resolved scenario, every file it names, the catalog, the simulator's code and version).
With a cache folder, each finished point is stored whole as ``<hash>.json`` as soon as it
finishes, and a rerun (or the rest of an interrupted sweep) only simulates points whose
file is missing. Rows come out in grid order, whatever ran them and in whatever order they
finished. Every point is validated, and the whole sweep's run time estimated, before
anything runs.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Set
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.config.loader import with_settings
from simulator.config.scenario import Scenario
from simulator.errors import UserError
from simulator.planning.executors import run_tasks
from simulator.planning.outcome import scenario_data, scenario_from_data
from simulator.planning.sweep_cache import code_and_catalog_digest, scenario_hash
from simulator.specs.files import parse_yaml, shown

#: Summary fields that are not one number per run, left out of sweep rows.
NESTED_FIELDS_LEFT_OUT = ("per_class", "rejections", "saturation_details")
#: Most points a grid may have (each is validated before anything runs).
MAX_GRID_POINTS = 10_000
#: Scenario sections no simulation reads, and why: sweeping one repeats the same run.
NOT_SIMULATED = {
    "plan": "is read by `servesim plan`, not by a simulation",
    "search": "is read by `servesim plan`, not by a simulation",
    "name": "is a label",
    "description": "is a label",
}
#: What to do about a cache that cannot be used, for messages.
CACHE_HINT = "remove or rename it, or run without the cache (--no-cache)"


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["hardware.gpu=h100-sxm,h200", "engine.max_num_seqs=64,128"]`` -> a grid; each value
    is read as YAML (numbers stay numbers). Values holding commas themselves (mappings, say)
    are given as one YAML list: ``slo.ttft_ms=[{p99: 500}, {p99: 1000}]``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UserError(f"--grid {item!r}: expected dotted.key=v1,v2,... or dotted.key=[...]")
        if raw.strip().startswith("["):
            values = parse_yaml(raw, f"--grid {key}")
            if not isinstance(values, list):
                raise UserError(f"--grid {key}: expected a YAML list of values, [v1, v2, ...]")
        else:
            values = [parse_yaml(v, f"--grid {key}") for v in raw.split(",")]
        if key in grid:
            raise UserError(f"--grid {key}: given twice")
        grid[key] = values
    return grid


def _grid_key(key: Any) -> str:
    """A grid key: a dotted scenario key that a simulation reads."""
    if not isinstance(key, str):
        raise UserError(
            f"--grid key {key!r}: not a string ({type(key).__name__}); keys are dotted "
            "scenario keys such as 'workload.arrival.rate_per_s'"
        )
    parts = key.split(".")
    if not all(part.strip() for part in parts):
        raise UserError(
            f"--grid key {shown(key)}: expected a dotted scenario key such as "
            "'workload.arrival.rate_per_s'"
        )
    if parts[0] in NOT_SIMULATED:
        raise UserError(
            f"--grid {key}: {parts[0]!r} {NOT_SIMULATED[parts[0]]}, so every point would be "
            "the same simulation; sweep keys a simulation reads (model, hardware, engine, "
            "workload, slo, cost, ...)"
        )
    return key


def _grid_values(key: str, values: Any) -> list[Any]:
    """A grid key's values as a list. A single value is refused rather than taken as a
    one-value list: a string would otherwise be iterated into its characters."""
    if isinstance(values, str | int | float | bool):
        given = shown(values) if isinstance(values, str) else repr(values)
        raise UserError(
            f"--grid {key}: {given} is a single value, not a list of values; give a list, "
            f"e.g. [{given}]"
        )
    if isinstance(values, bytes | Mapping | Set) or not isinstance(values, Iterable):
        # a set has no order, and the grid's order is the rows' order
        raise UserError(
            f"--grid {key}: not a list of values ({type(values).__name__}); give a list"
        )
    # numpy arrays and pandas series: their plain Python values
    listed = values.tolist() if hasattr(values, "tolist") else list(values)
    if not listed:
        raise UserError(f"--grid {key}: no values; give at least one")
    return listed


def check_grid(grid: Any) -> dict[str, list[Any]]:
    """``grid`` as dotted key -> list of values; a ``UserError`` naming what is wrong."""
    if not isinstance(grid, Mapping):
        raise UserError(
            f"grid: not a mapping ({type(grid).__name__}); give dotted scenario keys and "
            "lists of values, e.g. {'workload.arrival.rate_per_s': [5, 10]}"
        )
    if not grid:
        raise UserError("--grid: give at least one dotted.key=v1,v2,...")
    return {_grid_key(key): _grid_values(key, values) for key, values in grid.items()}


def expand_grid(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest (at most
    ``MAX_GRID_POINTS``)."""
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_GRID_POINTS:
        sizes = " × ".join(str(len(values)) for values in grid.values())
        raise UserError(
            f"--grid: {sizes} = {count:,} points; a sweep has at most {MAX_GRID_POINTS:,}"
        )
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


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
    """Write a cache entry whole: to a temporary name, then renamed into place."""
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(
            f"cache entry {shown(path)}: cannot write it ({exc.strerror or exc}); {CACHE_HINT}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _open_cache(cache_dir: str | Path) -> Path:
    """The cache folder, created if missing, checked writable before anything runs."""
    cache = Path(cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(
            f"cache folder {shown(cache)} is a file; it must be a folder: {CACHE_HINT}"
        ) from None
    except NotADirectoryError:
        raise UserError(
            f"cache folder {shown(cache)}: a part of its path is a file, not a folder"
        ) from None
    except OSError as exc:
        raise UserError(
            f"cache folder {shown(cache)}: cannot create it ({exc.strerror or exc})"
        ) from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".servesim-probe-", dir=cache)
    except OSError as exc:
        raise UserError(
            f"cache folder {shown(cache)}: cannot write in it ({exc.strerror or exc}); {CACHE_HINT}"
        ) from None
    os.close(handle)
    os.unlink(probe)
    return cache


def _is_result(data: Any) -> bool:
    """Whether ``data`` has the shape ``run_point`` gives: an error and no numbers, or
    numbers and no error."""
    if not isinstance(data, dict) or set(data) != {"error", "summary"}:
        return False
    error, summary = data["error"], data["summary"]
    return (
        isinstance(error, str)
        and isinstance(summary, dict)
        and bool(error) != bool(summary)
        and not {"error", "scenario_hash"} & set(summary)
    )


def _read_entry(path: Path) -> dict[str, Any] | None:
    """A cache entry's result; None when missing or damaged (the point is simulated again
    and its entry replaced)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"cache entry {shown(path)}: {exc.strerror or exc}; {CACHE_HINT}") from None
    if not stat.S_ISREG(mode):
        # a folder cannot be replaced by a file, and reading a pipe would wait forever
        raise UserError(f"cache entry {shown(path)} is not a regular file; {CACHE_HINT}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None  # unreadable, not JSON, or not UTF-8
    return data if _is_result(data) else None


def _resolve_points(
    scenario: Scenario, points: list[dict[str, Any]], source: str = "<scenario>"
) -> tuple[list[Scenario], list[dict[str, Any]]]:
    """Each grid point as a validated scenario and as a task payload; every invalid point
    reported at once (naming ``source``, the scenario file), before anything runs."""
    resolved, payloads, problems = [], [], []
    for i, values in enumerate(points):
        try:
            point = with_settings(scenario, values, source)
        except UserError as exc:
            where = ", ".join(f"{k}={v}" for k, v in values.items())
            problems += [f"grid point {i} ({where}): {m}" for m in exc.messages]
            continue
        resolved.append(point)
        payloads.append({"scenario": scenario_data(point), "base_dir": str(scenario.base_dir)})
    if problems:
        raise UserError(problems)
    return resolved, payloads


def _cached_results(cache: Path | None, hashes: list[str]) -> tuple[dict[int, dict], list[int]]:
    """Results found in the cache by point, and the points still to simulate."""
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, digest in enumerate(hashes):
        found = _read_entry(cache / f"{digest}.json") if cache is not None else None
        if found is None:
            todo.append(i)
        else:
            results[i] = found
    return results, todo


def check_sweep_budget(points: list[Scenario], *, allow_long_run: bool = False) -> None:
    """Refuse a sweep whose points cannot run (arrivals past the simulated span, no
    request expected) or whose estimated total run time is over the budget."""
    from simulator.workload.budget import BUDGET_S, budget_problems, estimate_work

    problems, total_s = [], 0.0
    for point in points:
        estimate = estimate_work(
            point.workload.model_dump(),
            max_batched_tokens=point.engine.max_num_batched_tokens,
            base_dir=point.base_dir,
        )
        problems += budget_problems(estimate, allow_long_run=True)
        total_s += estimate.run_time_s if estimate is not None else 0.0
    if problems:
        raise UserError(list(dict.fromkeys(problems)))
    if total_s > BUDGET_S and not allow_long_run:
        raise UserError(
            f"sweep: {len(points)} points to simulate, an estimated {total_s / 60:,.1f} "
            f"minutes of simulation, over the budget of {BUDGET_S / 60:g} minutes; pass "
            "--allow-long-run to run it anyway"
        )


def sweep(
    scenario: Scenario | str | Path,
    grid: Mapping[str, list[Any]],
    workers: int = 1,
    dask_scheduler: Any = None,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    allow_long_run: bool = True,
    source: str | None = None,
) -> pd.DataFrame:
    """Simulate every point of ``grid`` (dotted scenario keys -> values); one row per point.

    Each key's values are a list (a tuple, a NumPy array, ...): a single value, a string
    included, is refused rather than taken as a one-value list. Keys no simulation reads
    (under ``plan`` or ``search``, ``name``, ``description``) are refused: every point
    would be the same run.

    ``dask_scheduler``: an address or a ``distributed.Client``; else ``workers`` local
    processes. ``cache_dir``: store and reuse finished points there. Without
    ``allow_long_run``, points that would take longer than the run budget in all are
    refused before anything runs. Errors of a point name ``source`` (default: the scenario
    file given, else ``<scenario>``)."""
    from simulator.api import load_scenario

    if not isinstance(scenario, Scenario):
        source = source or str(scenario)
        scenario = load_scenario(scenario)
    points = expand_grid(check_grid(grid))
    resolved, payloads = _resolve_points(scenario, points, source or "<scenario>")
    cache = _open_cache(cache_dir) if cache_dir is not None else None
    environment = code_and_catalog_digest()
    hashes = [scenario_hash(point, environment) for point in resolved]
    results, todo = _cached_results(cache, hashes)
    check_sweep_budget([resolved[i] for i in todo], allow_long_run=allow_long_run)

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
    """Write a sweep's rows as CSV or Parquet (by the file's extension), whole: to a
    temporary name in the same folder, renamed into place when complete."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserError(f"-o {path}: unknown extension {suffix!r}; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except ImportError:
        raise UserError(
            f"-o {path}: Parquet needs pyarrow (pip install pyarrow); or write .csv"
        ) from None
    except OSError as exc:
        raise UserError(f"-o {path}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
