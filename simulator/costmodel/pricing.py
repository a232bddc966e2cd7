"""Where a replica's kernel speed comes from, and the parameters it is priced with.

Kernel speed comes from the engine's own calibration for the GPU and engine version
(measured kernel tables, ``hardware_specs/calibration/engines/<engine>/<gpu>/<version>.yaml``),
falling back to the GPU's PyTorch-reference calibration
(``hardware_specs/calibration/<gpu>.yaml``), then to the datasheet defaults. An engine
profile adds what belongs to the runtime (CUDA graphs, step overhead, fused elementwise
kernels). ``resolve_pricing`` returns the parameters, the kernel tables and a description
that summaries print: which engine and version was priced, from which file, and whether it
fell back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from simulator.costmodel.kernels import KernelTables
from simulator.costmodel.params import CostParams
from simulator.costmodel.profiles import EngineProfile, load_profile
from simulator.errors import UserError

#: Folder of engine calibrations under the catalog's ``calibration`` folder.
ENGINES_DIR = "engines"
_VERSION_PART = re.compile(r"(\d+)|([a-z]+)")
#: Pre-release tags sort before the release, ``post`` after it.
_TAG_ORDER = {"dev": -3, "a": -2, "b": -2, "rc": -1, "post": 1}


def version_key(version: str) -> tuple:
    """Sort key of an engine version: ``1.3.0rc10 < 1.3.0rc20 < 1.3.0 < 1.3.0.post1``."""
    key: list[tuple[int, int]] = []
    for number, tag in _VERSION_PART.findall(version.lower()):
        key.append((0, int(number)) if number else (_TAG_ORDER.get(tag, -1), 0))
    return (*key, (0, 0))


def _calibration_dir() -> Path:
    from simulator.specs.catalog import specs_dir

    return specs_dir() / "calibration"


def shipped_versions(engine: str, gpu: str) -> list[str]:
    """Versions of ``engine`` with a shipped calibration for ``gpu``, oldest first."""
    folder = _calibration_dir() / ENGINES_DIR / engine / gpu
    versions = [p.stem for p in folder.glob("*.yaml")] if folder.is_dir() else []
    return sorted(versions, key=version_key)


def engine_calibration_path(engine: str, gpu: str, version: str | None) -> Path | None:
    """The shipped calibration of ``engine`` (``version``, default the newest) on ``gpu``;
    None when none ships for that GPU. An explicit version that is not shipped is an
    error listing those that are."""
    versions = shipped_versions(engine, gpu)
    if not versions:
        return None
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise UserError(
            f"engine.version: {version!r} of {engine} has no calibration for {gpu}; "
            f"shipped: {', '.join(versions)}"
        )
    return _calibration_dir() / ENGINES_DIR / engine / gpu / f"{version}.yaml"


@dataclass(frozen=True)
class Pricing:
    """What a replica is priced with, and where each part came from."""

    params: CostParams
    kernels: KernelTables | None
    #: File (or "datasheet defaults") of the base parameters.
    parameters: str
    #: Engine profile applied (None: PyTorch reference code as calibrated).
    engine: str | None
    #: Engine version whose kernels were priced (None: no engine calibration used).
    engine_version: str | None
    #: One line: which kernels priced the step and why (fallbacks say so).
    kernel_source: str

    def describe(self) -> dict[str, str | None]:
        """The summary's ``pricing`` entry."""
        return {
            "engine": self.engine,
            "engine_version": self.engine_version,
            "kernels": self.kernel_source,
            "parameters": _short(self.parameters),
        }


def base_parameters(
    gpu: str, calibration: str | None, base_dir: Path | None = None
) -> tuple[CostParams, str]:
    """The GPU's PyTorch-reference calibration: an explicit file, ``"none"`` (datasheet
    defaults) or, when unset, the shipped ``<gpu>.yaml`` if there is one."""
    if calibration is not None and calibration.lower() == "none":
        return CostParams.defaults(), "datasheet defaults"
    if calibration is None:
        shipped = _calibration_dir() / f"{gpu}.yaml"
        if shipped.is_file():
            return CostParams.from_file(shipped), str(shipped)
        return CostParams.defaults(), "datasheet defaults"
    from simulator.specs.files import input_file

    path = Path(calibration)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    input_file(path, "hardware.calibration: file")
    return CostParams.from_file(path), str(path)


def resolve_pricing(
    gpu: str,
    *,
    calibration: str | None = None,
    profile: str | None = None,
    version: str | None = None,
    base_dir: Path | None = None,
) -> Pricing:
    """Parameters and kernel tables for ``gpu`` under engine ``profile`` (see the module
    docstring). ``calibration: "none"`` prices the datasheet alone (no measured kernels)."""
    params, where = base_parameters(gpu, calibration, base_dir)
    if profile is None:
        if version is not None:
            raise UserError("engine.version: needs engine.profile (the engine it versions)")
        return Pricing(params, None, where, None, None, _reference_line(where))
    prof = load_profile(profile)
    if prof.vendors:
        from simulator.specs.catalog import load_gpu

        vendor = load_gpu(gpu).vendor
        if vendor not in prof.vendors:
            raise UserError(
                f"engine.profile: {prof.name} runs on {', '.join(prof.vendors)} GPUs, and "
                f"{gpu} is {vendor}; choose another profile (servesim list profiles)"
            )
    params = prof.apply(params)
    engine = prof.kernel_engine
    datasheet = calibration is not None and calibration.lower() == "none"
    if engine is None or datasheet:
        if version is not None and datasheet and engine is not None:
            raise UserError(
                f"engine.version: {version!r} picks {engine} kernel data, but "
                "hardware.calibration: none prices the datasheet alone; drop one of the two"
            )
        if version is not None:
            raise UserError(f"engine.version: profile {profile!r} has no versioned kernel data")
        return Pricing(params, None, where, prof.name, None, _reference_line(where, prof))
    path = engine_calibration_path(engine, gpu, version)
    if path is None:
        if version is not None:
            raise UserError(f"engine.version: no {engine} calibration ships for {gpu}")
        line = f"{_reference_line(where)} (no {engine} kernel calibration for {gpu})"
        return Pricing(params, None, where, prof.name, None, line)
    kernels = KernelTables.from_file(path)
    line = f"{kernels.label}: calibration/{ENGINES_DIR}/{engine}/{gpu}/{path.name}"
    return Pricing(params, kernels, where, prof.name, kernels.version, line)


def _short(where: str) -> str:
    """A shipped file as ``calibration/...``; other paths and labels unchanged."""
    path = Path(where)
    try:
        return str(path.resolve().relative_to(_calibration_dir().resolve().parent))
    except (ValueError, OSError):
        return where


def _reference_line(where: str, profile: EngineProfile | None = None) -> str:
    if where == "datasheet defaults":
        return "datasheet defaults"
    note = "" if profile is None else f" under the {profile.name} runtime"
    return f"PyTorch reference kernels ({_short(where)}){note}"
