"""The validated error band of the GPU and engine a result was priced with.

One function decides which band applies, reading calibration metadata only:

1. an engine's kernel calibration for the GPU: the held-out error of that engine's published
   serving runs on the GPU for models of the kind priced (``error_band.yaml`` ``bands``
   entries with ``gpu``, ``engine`` and ``models``: dense or moe, written from
   ``docs/validation.md`` section K), the whole answer being judged; where there are none,
   the held-out error of the calibration's GEMM kernels in the weights' dtype
   (``metadata.errors.gemm``: median and 90th percentile of |error| in kernel time), GEMMs
   being most of a step;
2. a calibration file's own ``metadata.held_out_error`` (``median_pct``, ``worst_pct``,
   ``rows``, optionally ``metric`` and ``source``);
3. an entry of ``error_band.yaml`` ``bands`` for this GPU and engine without ``models``
   (``engine``: null for the reference kernels);
4. for an MoE model on a measured calibration file: the held-out MoE step band, with the
   GPU's grouped expert GEMM curve (``moe_step_time``) or without one
   (``moe_step_time_dense_experts``), where it is wider than the step-time band;
5. for a GPU priced by a measured calibration file: the held-out step-time band of the
   validation suite (``step_time``: measured GPUs, rows the fit never saw);
6. otherwise the **datasheet** band (``datasheet``): held-out rows the validation suite priced
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


def _serving_band(bands: dict[str, Any], gpu: str, engine: str, moe: bool) -> dict | None:
    """The held-out band of published serving runs of ``engine`` on ``gpu`` for models of
    the kind priced (dense or MoE), if the validation suite has one."""
    models = "moe" if moe else "dense"
    for entry in bands.get("bands") or []:
        if (entry.get("gpu"), entry.get("engine"), entry.get("models")) == (gpu, engine, models):
            return entry
    return None


def _moe_band(bands: dict[str, Any], calibration: str) -> tuple[dict | None, str]:
    """The held-out MoE step band for a reference calibration: with its grouped expert
    GEMM curve (``<stem>-moe.yaml`` beside it), else the band of expert GEMMs priced at
    dense-GEMM efficiency."""
    path = Path(calibration)
    if path.with_name(f"{path.stem}-moe.yaml").is_file():
        return bands.get("moe_step_time"), "grouped expert GEMM curve"
    return bands.get("moe_step_time_dense_experts"), "no grouped expert GEMM curve"


def _wider(band: dict | None, other: dict | None) -> dict | None:
    """The wider of two bands (by median): an MoE step also runs attention and dense layers,
    judged by the step-time band."""
    if band is None or other is None:
        return band or other
    return band if band["median_pct"] >= other["median_pct"] else other


def error_band(
    specs_dir: Path,
    gpu: str,
    engine: str | None,
    calibration: str | None,
    engine_calibration: Path | None = None,
    weight_dtype: str | None = None,
    moe: bool = False,
) -> dict[str, Any] | None:
    """The band for ``gpu`` under engine profile ``engine`` (None: reference kernels),
    priced with the calibration file ``calibration`` (None: datasheet defaults) and the
    engine's kernel calibration ``engine_calibration`` (None: no engine kernels), for a
    dense or ``moe`` model; None when no band is recorded (see the module docstring)."""
    who = f"{gpu} + {engine or 'reference kernels'}"
    bands = _load(specs_dir / ERROR_BAND_FILE)
    source = str(bands.get("source") or ERROR_BAND_FILE)
    if engine_calibration is not None and engine:
        serving = _serving_band(bands, gpu, engine, moe)
        if serving is not None:
            label = f"{gpu} + {engine} kernels ({Path(engine_calibration).stem}), "
            label += "MoE models" if moe else "dense models"
            return _band(serving, "held-out", label, source)
    if engine_calibration is not None:
        found = _engine_band(Path(engine_calibration), weight_dtype)
        if found is not None:
            label = f"{gpu} + {engine} kernels ({Path(engine_calibration).stem})"
            return _band(found, "held-out", label, found["source"])
    if calibration:
        meta = (_load(Path(calibration)).get("metadata") or {}).get("held_out_error")
        if isinstance(meta, dict) and "median_pct" in meta:
            return _band(meta, "held-out", who, str(calibration))
    for entry in bands.get("bands") or []:
        if entry.get("gpu") == gpu and entry.get("engine") == engine and "models" not in entry:
            return _band(entry, "held-out", who, source)
    if calibration and moe:
        found, how = _moe_band(bands, calibration)
        widest = _wider(found, bands.get("step_time"))
        if found is not None and widest is found:
            label = f"{who} (calibrated on measurements of {gpu}; MoE steps, {how})"
            return _band(found, "held-out", label, source)
    if calibration and bands.get("step_time"):
        measured = f"{who} (calibrated on measurements of {gpu}; band over measured GPUs"
        if engine:
            measured += f"; no held-out band of the {engine} engine's own yet"
        return _band(bands["step_time"], "held-out", measured + ")", source)
    if bands.get("datasheet"):
        uncalibrated = f"{who} (no calibration: datasheet defaults)"
        return _band(bands["datasheet"], "datasheet", uncalibrated, source)
    return None
