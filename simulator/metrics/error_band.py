"""The validated error band of the GPU and engine a result was priced with.

One function decides which band applies, reading calibration metadata only:

1. an engine's kernel calibration for the GPU (``calibration/engines/<engine>/<gpu>/
   <version>.yaml``, measured kernel tables with a quarter of the shapes held out): the
   held-out error of its GEMM kernels in the weights' dtype (``metadata.errors.gemm``:
   median and 90th percentile of |error| in kernel time), GEMMs being most of a step; or a
   calibration file's own ``metadata.held_out_error`` (``median_pct``, ``worst_pct``,
   ``rows``, optionally ``metric`` and ``source``);
2. an entry of ``hardware_specs/calibration/error_band.yaml`` ``bands`` for this GPU and
   engine (``gpu``, ``engine``: null for the reference kernels);
3. for a GPU priced by a measured calibration file: the held-out step-time band of the
   validation suite (``step_time``: measured GPUs, rows the fit never saw);
4. otherwise the **datasheet** band (``datasheet``): held-out rows the validation suite priced
   on datasheet defaults, for GPUs without a calibration.

Each band says which it is (``kind``: ``held-out`` or ``datasheet``) and what it applies to.
``benchmarks/validation.py`` writes ``error_band.yaml`` from ``docs/validation.md``'s rows.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

#: The validation suite's bands, next to the shipped calibrations.
ERROR_BAND_FILE = Path("calibration") / "error_band.yaml"


@lru_cache(maxsize=16)
def _read(path: str, mtime: float) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # engine calibrations are large
    try:
        return yaml.load(Path(path).read_text(), Loader=loader) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return _read(str(path), path.stat().st_mtime)


def _band(entry: dict[str, Any], kind: str, applies_to: str, source: str) -> dict[str, Any]:
    band = {
        "median_pct": float(entry["median_pct"]),
        "worst_pct": float(entry["worst_pct"]),
        #: What ``worst_pct`` is: the worst row, or a percentile of the rows.
        "worst_is": entry.get("worst_is", "worst"),
        "rows": int(entry.get("rows") or 0),
        "metric": entry.get("metric", "step time"),
        "kind": kind,
        "applies_to": applies_to,
        "source": entry.get("source") or source,
    }
    band["text"] = describe(band)
    return band


def describe(band: dict[str, Any]) -> str:
    """One line: which band, for what, and its numbers."""
    return (
        f"{band['kind']} band for {band['applies_to']}: {band['metric']} within "
        f"{band['median_pct']:.1f}% (median) and {band['worst_pct']:.1f}% "
        f"({band.get('worst_is', 'worst')}) on {band['rows']} held-out rows ({band['source']})"
    )


def _engine_band(path: Path, weight_dtype: str | None) -> dict[str, Any] | None:
    """The held-out GEMM error of an engine kernel calibration, in the weights' dtype
    (else bf16)."""
    meta = _load(path).get("metadata") or {}
    gemm = (meta.get("errors") or {}).get("gemm") or {}
    found = gemm.get(weight_dtype or "bf16") or gemm.get("bf16")
    held = (found or {}).get("held_out")
    if not held:
        return None
    dtype = weight_dtype if weight_dtype in gemm else "bf16"
    return {
        "median_pct": held["median_abs_pct"],
        "worst_pct": held["p90_abs_pct"],
        "worst_is": "p90",
        "rows": held["n"],
        "metric": f"{dtype} GEMM kernel time (held-out shapes of the measured tables)",
        "source": str(path.relative_to(path.parents[4])) if len(path.parents) > 4 else str(path),
    }


def error_band(
    specs_dir: Path,
    gpu: str,
    engine: str | None,
    calibration: str | None,
    engine_calibration: Path | None = None,
    weight_dtype: str | None = None,
) -> dict[str, Any] | None:
    """The band for ``gpu`` under engine profile ``engine`` (None: reference kernels),
    priced with the calibration file ``calibration`` (None: datasheet defaults) and the
    engine's kernel calibration ``engine_calibration`` (None: no engine kernels); None when
    no band is recorded (see the module docstring)."""
    who = f"{gpu} + {engine or 'reference kernels'}"
    if engine_calibration is not None:
        found = _engine_band(Path(engine_calibration), weight_dtype)
        if found is not None:
            label = f"{gpu} + {engine} kernels ({Path(engine_calibration).stem})"
            return _band(found, "held-out", label, found["source"])
    if calibration:
        meta = (_load(Path(calibration)).get("metadata") or {}).get("held_out_error")
        if isinstance(meta, dict) and "median_pct" in meta:
            return _band(meta, "held-out", who, str(calibration))
    bands = _load(specs_dir / ERROR_BAND_FILE)
    source = str(bands.get("source") or ERROR_BAND_FILE)
    for entry in bands.get("bands") or []:
        if entry.get("gpu") == gpu and entry.get("engine") == engine:
            return _band(entry, "held-out", who, source)
    if calibration and bands.get("step_time"):
        measured = f"{who} (calibrated on measurements of {gpu}; band over measured GPUs"
        if engine:
            measured += f"; no held-out band of the {engine} engine's own yet"
        return _band(bands["step_time"], "held-out", measured + ")", source)
    if bands.get("datasheet"):
        uncalibrated = f"{who} (no calibration: datasheet defaults)"
        return _band(bands["datasheet"], "datasheet", uncalibrated, source)
    return None
