"""What a sweep's cache is keyed by: everything that can change a point's answer.

A point's key is the sha256 of its resolved scenario (JSON, defaults filled in), the
content of every file the scenario's strings name (model configs, GPU and link specs,
traces, calibration and sample files), the catalog folder in use, and the simulator's
code and version. Editing any of them gives new results, never a stale cached one.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from simulator.config.scenario import Scenario
from simulator.costmodel.moe import companion_curve_file


def package_version() -> str:
    try:
        return metadata.version("servesim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _digest_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _tree_digest(root: Path, pattern: str, stamp: tuple) -> str:
    return _digest_files(sorted(p for p in root.rglob(pattern) if p.is_file()), root)


def _tree_stamp(root: Path, pattern: str) -> tuple:
    """Names, sizes and modification times under ``root``: what invalidates a digest."""
    return tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob(pattern))
        if p.is_file()
    )


def code_and_catalog_digest() -> str:
    """Digest of the simulator's code (its .py files and version) and of the catalog
    folder in use (GPU, link, model, calibration, price files): any change to either can
    change an answer."""
    from simulator.specs.catalog import specs_dir

    code = Path(__file__).resolve().parents[1]
    catalog = specs_dir().resolve()
    return hashlib.sha256(
        "|".join(
            (
                package_version(),
                _tree_digest(code, "*.py", _tree_stamp(code, "*.py")),
                _tree_digest(catalog, "*", _tree_stamp(catalog, "*")),
            )
        ).encode()
    ).hexdigest()


#: Longest scenario text looked up as a possible file name.
_MAX_PATH_CHARS = 4096


def _named_file(text: str, base_dir: Path) -> Path | None:
    """The file a scenario string names, resolved as the loaders do (model, GPU and link
    paths from the working folder, traces, calibration and sample files from the
    scenario's folder; a folder holding a config.json names that file)."""
    if len(text) > _MAX_PATH_CHARS or "\n" in text or "\x00" in text:
        return None
    for candidate in (Path(text).expanduser(), base_dir / text):
        try:
            if candidate.is_dir():
                candidate = candidate / "config.json"
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):
            continue
    return None


def referenced_files(data: Any, base_dir: Path, path: str = "") -> dict[str, str]:
    """sha256 of every file a resolved scenario's strings name, by dotted key."""
    found: dict[str, str] = {}
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict | list):
            found.update(referenced_files(value, base_dir, where))
        elif isinstance(value, str) and (named := _named_file(value, base_dir)) is not None:
            found[where] = hashlib.sha256(named.read_bytes()).hexdigest()
            # a calibration's grouped-GEMM curve may sit beside it and price with it
            if (curve := companion_curve_file(named)) is not None:
                found[f"{where}:moe"] = hashlib.sha256(curve.read_bytes()).hexdigest()
    return found


def scenario_hash(scenario: Scenario, environment: str | None = None) -> str:
    """Content hash of a resolved scenario: what it says (defaults filled in), the content
    of every file it names (model config, GPU and link specs, trace, calibration, sample
    files), and ``environment``: the catalog in use and the simulator's code and version
    (``code_and_catalog_digest()``, computed when not given)."""
    data = scenario.model_dump(mode="json")
    text = json.dumps(
        {
            "scenario": data,
            "files": referenced_files(data, scenario.base_dir),
            "code_and_catalog": environment or code_and_catalog_digest(),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()
