"""NVIDIA AIConfigurator's measured kernel tables, as installed by ``aiconfigurator-core``.

The package ships, per system (GPU) and op, one folder per engine and engine version::

    aiconfigurator_core/systems/data/<system>/<op>/<engine>/<version>/*.parquet
                                                            collection_meta.yaml

with latencies in milliseconds. This module finds them, picks the version of each op that
goes with an engine version, reads a table into a DataFrame, and keeps its provenance
(package version, file, collection metadata) for the calibration that is written from it.
Reading needs ``pyarrow`` (``pip install 'servesim[engines]'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulator.costmodel.pricing import version_key
from simulator.errors import UserError

PACKAGE = "aiconfigurator-core"
#: AIConfigurator system name -> servesim catalog GPU.
SYSTEM_GPUS = {
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200",
    "a100_sxm": "a100-sxm-80gb",
    "b200_sxm": "b200",
    "b300_sxm": "b300",
    "gb200": "gb200",
    "gb300": "gb300",
    "l40s": "l40s",
    "rtx_pro_6000_server": "rtx-pro-6000",
}
ENGINES = ("trtllm", "vllm", "sglang")
#: Op folder and parquet table of each kind of measurement.
TABLES = {
    "gemm": ("gemm", "gemm_perf"),
    "context_attention": ("attention", "context_attention_perf"),
    "generation_attention": ("attention", "generation_attention_perf"),
    "moe": ("moe", "moe_perf"),
    "custom_allreduce": ("comm", "custom_allreduce_perf"),
    # the two kernels of runtime FP8 activation quantisation: the scale (amax) and the cast
    "compute_scale": ("quantize", "computescale_perf"),
    "scale_matrix": ("quantize", "scale_matrix_perf"),
}


@dataclass(frozen=True)
class Table:
    """One measured table and where it came from."""

    kind: str
    engine: str
    version: str
    path: Path
    collection: dict[str, Any]
    frame: pd.DataFrame

    def provenance(self, root: Path) -> dict[str, Any]:
        return {
            "file": str(self.path.relative_to(root.parent)),
            "version": self.version,
            "rows": len(self.frame),
            "collection_meta": self.collection,
        }


def package_root() -> Path:
    """The installed ``aiconfigurator_core/systems`` folder."""
    try:
        import aiconfigurator_core
    except ImportError:
        raise UserError(
            "--from-aiconfigurator: the aiconfigurator-core package is not installed "
            "(pip install 'servesim[engines]')"
        ) from None
    return Path(aiconfigurator_core.__file__).resolve().parent / "systems"


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def system_gpu(system: str) -> str:
    """The catalog GPU of an AIConfigurator system name."""
    if system not in SYSTEM_GPUS:
        known = ", ".join(sorted(SYSTEM_GPUS))
        raise UserError(f"--from-aiconfigurator: unknown system {system!r}; known: {known}")
    return SYSTEM_GPUS[system]


def table_versions(root: Path, system: str, kind: str, engine: str) -> list[str]:
    """Versions of ``engine`` with table ``kind`` for ``system``, oldest first."""
    op, name = TABLES[kind]
    folder = root / "data" / system / op / engine
    if not folder.is_dir():
        return []
    found = [d.name for d in folder.iterdir() if _table_file(d, name) is not None]
    return sorted(found, key=version_key)


def version_for(root: Path, system: str, kind: str, engine: str, anchor: str) -> str | None:
    """The version of table ``kind`` that goes with engine version ``anchor``: the same
    version, else the newest before it, else the oldest after it; None when none."""
    versions = table_versions(root, system, kind, engine)
    if not versions:
        return None
    if anchor in versions:
        return anchor
    earlier = [v for v in versions if version_key(v) < version_key(anchor)]
    return earlier[-1] if earlier else versions[0]


def _table_file(folder: Path, name: str) -> Path | None:
    """The table ``name`` in ``folder``: parquet as the package ships it, or CSV."""
    for suffix in (".parquet", ".csv"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return None


def read_table(root: Path, system: str, kind: str, engine: str, version: str) -> Table:
    """Read one table (parquet needs pyarrow) with its collection metadata."""
    op, name = TABLES[kind]
    folder = root / "data" / system / op / engine / version
    path = _table_file(folder, name)
    if path is None:
        raise UserError(f"--from-aiconfigurator: no table {name} in {folder}")
    meta_path = folder / "collection_meta.yaml"
    meta = yaml.safe_load(meta_path.read_text()) if meta_path.is_file() else {}
    return Table(kind, engine, version, path, meta or {}, _read_frame(path))


def read_nccl(root: Path, system: str) -> Table | None:
    """The system's NCCL collective table (``comm/nccl/<version>/nccl_perf``): the NCCL
    version its system spec names (``misc.nccl_version``, what AIConfigurator reads), else
    the newest; None when the system has none."""
    folder = root / "data" / system / "comm" / "nccl"
    if not folder.is_dir():
        return None
    found = sorted(
        (d.name for d in folder.iterdir() if _table_file(d, "nccl_perf") is not None),
        key=version_key,
    )
    if not found:
        return None
    spec_path = root / f"{system}.yaml"
    spec = yaml.safe_load(spec_path.read_text()) if spec_path.is_file() else {}
    named = str(((spec or {}).get("misc") or {}).get("nccl_version", ""))
    version = named if named in found else found[-1]
    path = _table_file(folder / version, "nccl_perf")
    meta_path = folder / version / "collection_meta.yaml"
    meta = yaml.safe_load(meta_path.read_text()) if meta_path.is_file() else {}
    return Table("nccl", "nccl", version, path, meta or {}, _read_frame(path))


def _read_frame(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            "--from-aiconfigurator: reading the tables needs pyarrow "
            "(pip install 'servesim[engines]')"
        ) from None
    return pq.read_table(path).to_pandas()


def engine_versions(root: Path, system: str, engine: str) -> list[str]:
    """Engine versions a calibration can be written for: those with a GEMM table."""
    return table_versions(root, system, "gemm", engine)


def licence_notice() -> str:
    """The notice every file derived from the tables carries."""
    return (
        f"Derived from NVIDIA AIConfigurator's measured kernel tables ({PACKAGE} "
        f"{package_version()}, aiconfigurator_core/systems/data), Copyright (c) 2025-2026 "
        "NVIDIA CORPORATION & AFFILIATES, licensed under the Apache License, Version 2.0 "
        "(SPDX-License-Identifier: Apache-2.0; a copy is hardware_specs/calibration/engines/"
        "LICENSE-Apache-2.0.txt, or http://www.apache.org/licenses/LICENSE-2.0). Changes: "
        "latencies converted to efficiencies of the datasheet peaks and fitted to interpolation "
        "grids by servesim calibrate --from-aiconfigurator."
    )
