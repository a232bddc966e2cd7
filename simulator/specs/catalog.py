"""The hardware and model catalog: YAML/JSON files under ``hardware_specs/``.

Layout of the catalog folder (see :func:`specs_dir`)::

    gpus/<name>.yaml      one accelerator; every number as {value: ..., source: "..."}
    links.yaml            name -> {kind, description, bandwidth_bytes_per_s, latency_s}
    models/<name>.json    a Hugging Face config.json
    prices.yaml           cloud, purchase, API and data-center prices (see prices.py)

Every loader accepts a catalog name (case-insensitive) or a path to a file of the same
form. ``GpuSpec.sources`` / ``LinkSpec.sources`` map each field (``peak_flops.bf16``,
``memory_bw_bytes_per_s``, ``interconnect``, ...) to its citation. Unknown names
raise :class:`UnknownNameError` (which lists the known names and suggests a close one);
missing or malformed files raise :class:`UserError` naming the file.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from pathlib import Path
from typing import Any

from simulator.errors import UnknownNameError, UserError
from simulator.specs.files import input_file, read_json, read_yaml, shown, stat_error
from simulator.specs.gpu import GpuSpec
from simulator.specs.hf_config import model_spec_from_hf_config
from simulator.specs.link import LinkSpec
from simulator.specs.model import ModelSpec

SPECS_DIR_ENV = "SERVESIM_SPECS_DIR"
#: Value of ``interconnect`` / ``host_link`` meaning "no such link".
NO_LINK = "none"

_GPU_REQUIRED = ("name", "peak_flops", "memory_bytes", "memory_bw_bytes_per_s")
_GPU_OPTIONAL = (
    "vendor",
    "description",
    "notes",
    "l2_bytes",
    "tdp_w",
    "sm_count",
    "boost_clock_hz",
    "interconnect",
    "host_link",
)
_LINK_REQUIRED = ("kind", "bandwidth_bytes_per_s", "latency_s")
_LINK_OPTIONAL = ("name", "description", "max_gpus")


class CatalogNameError(UnknownNameError):
    """An unknown catalog name. When the name starts some known names (``h100`` for
    ``h100-sxm`` and ``h100-pcie``) it suggests the shortest of them rather than the
    closest spelling (``h200``), since a prefix is how people abbreviate catalog names."""

    def __init__(self, kind: str, name: str, known: list[str]):
        super().__init__(kind, name, known)
        extensions = sorted((k for k in known if k.startswith(name)), key=lambda k: (len(k), k))
        if name and extensions:
            message = (
                f"unknown {kind} {name!r}; did you mean {extensions[0]!r}? "
                f"known: {', '.join(sorted(known))}"
            )
            self.messages = [message]
            self.args = (message,)


# ----------------------------------------------------------------------------- locations
def specs_dir() -> Path:
    """The catalog folder: ``$SERVESIM_SPECS_DIR`` if set, else the copy packaged inside
    the installed wheel (``simulator/_data/hardware_specs``), else the repository's
    ``hardware_specs/``."""
    override = os.environ.get(SPECS_DIR_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise UserError(f"{SPECS_DIR_ENV}={override!r} is not a directory")
        return path
    return _packaged_specs_dir()


@functools.cache
def _packaged_specs_dir() -> Path:
    """The packaged catalog, else the repository's (found once: it does not move)."""
    package_root = Path(__file__).resolve().parents[1]
    packaged = package_root / "_data" / "hardware_specs"
    if packaged.is_dir():
        return packaged
    return package_root.parent / "hardware_specs"


def list_gpus() -> list[str]:
    """Catalog GPU names (file stems under ``gpus/``), sorted."""
    return sorted(p.stem for p in (specs_dir() / "gpus").glob("*.yaml"))


def list_links() -> list[str]:
    """Catalog link names (keys of ``links.yaml``), sorted."""
    return sorted(_links_file(specs_dir() / "links.yaml"))


def list_models() -> list[str]:
    """Catalog model names (file stems under ``models/``), sorted."""
    return sorted(p.stem for p in (specs_dir() / "models").glob("*.json"))


def clear_cache() -> None:
    """Forget loaded files (after editing catalog files in a running process)."""
    for cached in (_read_yaml_cached, _read_json_cached, _gpu_from_file, _model_from_file):
        cached.cache_clear()


# ----------------------------------------------------------------------------- file reading
def _looks_like_path(name_or_path: str) -> bool:
    return (
        os.sep in name_or_path
        or "/" in name_or_path
        or name_or_path.endswith((".yaml", ".yml", ".json"))
        or name_or_path.startswith(".")
    )


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL character: not a folder
        return False


def _existing_file(path: Path, what: str) -> Path:
    return input_file(path, f"{what} file").resolve()


def _file_key(path: Path) -> tuple[Path, int, int]:
    """Cache key of a file: its path, modification time and size, so that an edited file
    is read again."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise stat_error(path, exc, "file") from None
    return path, stat.st_mtime_ns, stat.st_size


def _read_yaml(path: Path) -> Any:
    """Parsed YAML of ``path`` (``yaml.safe_load``), cached while the file is unchanged."""
    return _read_yaml_cached(_file_key(path))


def _read_json(path: Path) -> Any:
    """Parsed JSON of ``path``, cached while the file is unchanged."""
    return _read_json_cached(_file_key(path))


@functools.lru_cache(maxsize=256)
def _read_yaml_cached(key: tuple[Path, int, int]) -> Any:
    return read_yaml(key[0], "spec file")


@functools.lru_cache(maxsize=256)
def _read_json_cached(key: tuple[Path, int, int]) -> Any:
    return read_json(key[0], "model config")


#: Allowed range of each number of a GPU or link spec: (lowest, highest), both included;
#: wide enough for any real device, narrow enough that no step time or memory plan
#: becomes zero, infinite or absurd.
SPEC_RANGES: dict[str, tuple[float, float]] = {
    "peak_flops": (1e6, 1e19),
    "memory_bytes": (1e6, 1e15),
    "memory_bw_bytes_per_s": (1e6, 1e15),
    "l2_bytes": (0.0, 1e12),
    "tdp_w": (0.0, 1e6),
    "sm_count": (1.0, 1e6),
    "boost_clock_hz": (0.0, 1e11),
    "bandwidth_bytes_per_s": (1e3, 1e15),
    "latency_s": (0.0, 60.0),
    "max_gpus": (2, 1 << 20),
}


def _number(entry: Any, where: str, field: str, sources: dict[str, str]) -> float:
    """Read ``{value: <number>, source: "..."}`` into a float within the field's
    ``SPEC_RANGES`` and record its source."""
    if not isinstance(entry, dict) or "value" not in entry or "source" not in entry:
        raise UserError(f"{where}: {field} must be a mapping {{value: <number>, source: <text>}}")
    value = entry["value"]
    # PyYAML reads exponents without a sign (80.0e9) as strings: accept numeric strings.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"{where}: {field}.value {shown(value)} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: {field}.value {value!r} is not a number")
    low, high = SPEC_RANGES[field.split(".")[0]]
    number = float(value) if not isinstance(value, int) or abs(value) < 1e300 else math.inf
    if not (math.isfinite(number) and low <= number <= high):
        raise UserError(
            f"{where}: {field}.value {number!r} must be a finite number from {low:g} to {high:g}"
        )
    source = entry["source"]
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{where}: {field}.source must be a non-empty text")
    sources[field] = source
    return number


def _text(entry: Any, where: str, field: str, sources: dict[str, str]) -> str:
    """Read ``{value: <text>, source: "..."}`` (or a bare text) and record its source."""
    if isinstance(entry, dict):
        if "value" not in entry or "source" not in entry:
            raise UserError(f"{where}: {field} must be {{value: <text>, source: <text>}}")
        sources[field] = str(entry["source"])
        entry = entry["value"]
    if not isinstance(entry, str):
        raise UserError(f"{where}: {field} must be a text, got {entry!r}")
    return entry


def _check_keys(data: dict, where: str, required: tuple, optional: tuple) -> None:
    problems = [f"{where}: field {key!r} is missing" for key in required if key not in data]
    allowed = required + optional
    problems += [
        f"{where}: unknown field {key!r}; allowed: {', '.join(allowed)}"
        for key in data
        if key not in allowed
    ]
    if problems:
        raise UserError(problems)


# ----------------------------------------------------------------------------- GPUs
#: Longest catalog name or file name looked up (a file system allows 255 bytes).
MAX_NAME_CHARS = 255


def _check_name(kind: str, name: str) -> None:
    """A catalog name or path short enough to be one, as text."""
    if not isinstance(name, str):
        raise UserError(f"{kind} {name!r} must be a catalog name or a path")
    if "\x00" in name or (not _looks_like_path(name) and len(name) > MAX_NAME_CHARS):
        raise UserError(
            f"unknown {kind} {shown(name)}; a catalog name or file name has at most "
            f"{MAX_NAME_CHARS} characters"
        )


def _catalog_name(name: str, known: list[str]) -> str:
    """``name`` as spelled in the catalog when it differs only in letter case."""
    if name in known:
        return name
    by_lower = {k.lower(): k for k in known}
    return by_lower.get(name.lower(), name)


def gpu_catalog_spelling(name: str) -> str:
    """``name`` as the GPU catalog spells it (``H100-SXM`` -> ``h100-sxm``): calibrations,
    prices and engine kernel files are found by that spelling. Paths and unknown names are
    returned unchanged (loading them reports what is wrong)."""
    if not isinstance(name, str) or _looks_like_path(name):
        return name
    return _catalog_name(name, list_gpus())


def _gpu_path(name_or_path: str) -> Path:
    _check_name("GPU", name_or_path)
    if _looks_like_path(name_or_path):
        return _existing_file(Path(name_or_path).expanduser(), "GPU spec")
    path = specs_dir() / "gpus" / f"{_catalog_name(name_or_path, list_gpus())}.yaml"
    if not path.is_file():
        raise CatalogNameError("GPU", name_or_path, list_gpus())
    return path.resolve()


def gpu_catalog_entry(name: str) -> dict[str, Any]:
    """The raw YAML of one GPU (numbers with their sources), for display."""
    data = _read_yaml(_gpu_path(name))
    return copy.deepcopy(data)


def load_gpu(name_or_path: str) -> GpuSpec:
    """A GpuSpec from a catalog name (``h100-sxm``) or a path to a GPU YAML file."""
    return _gpu_from_file(_file_key(_gpu_path(name_or_path)))


@functools.lru_cache(maxsize=128)
def _gpu_from_file(key: tuple[Path, int, int]) -> GpuSpec:
    path = key[0]
    data = _read_yaml(path)
    where = str(path)
    if not isinstance(data, dict):
        raise UserError(f"{where}: a GPU spec must be a YAML mapping")
    _check_keys(data, where, _GPU_REQUIRED, _GPU_OPTIONAL)
    sources: dict[str, str] = {}
    flops_in = data["peak_flops"]
    if not isinstance(flops_in, dict) or "bf16" not in flops_in:
        raise UserError(
            f"{where}: peak_flops must map dtypes to {{value, source}} and include bf16"
        )
    peak_flops = {
        dtype: _number(entry, where, f"peak_flops.{dtype}", sources)
        for dtype, entry in flops_in.items()
    }
    fields: dict[str, Any] = {
        "name": str(data["name"]),
        "peak_flops": peak_flops,
        "memory_bytes": _number(data["memory_bytes"], where, "memory_bytes", sources),
        "memory_bw_bytes_per_s": _number(
            data["memory_bw_bytes_per_s"], where, "memory_bw_bytes_per_s", sources
        ),
        "vendor": str(data.get("vendor", "")),
    }
    for key in ("l2_bytes", "tdp_w", "boost_clock_hz"):
        if key in data:
            fields[key] = _number(data[key], where, key, sources)
    if "sm_count" in data:
        sm_count = _number(data["sm_count"], where, "sm_count", sources)
        if sm_count < 1 or sm_count != int(sm_count):
            raise UserError(f"{where}: sm_count {sm_count!r} must be a whole number >= 1")
        fields["sm_count"] = int(sm_count)
    known_links = list_links()
    for key in ("interconnect", "host_link"):
        if key not in data:
            continue
        link = _text(data[key], where, key, sources)
        if link != NO_LINK and link not in known_links:
            raise CatalogNameError(f"link (in {where}: {key})", link, [*known_links, NO_LINK])
        fields[key] = "" if link == NO_LINK else link
    return GpuSpec(sources=sources, **fields)


# ----------------------------------------------------------------------------- links
def _links_file(path: Path) -> dict[str, Any]:
    data = _read_yaml(_existing_file(path, "link catalog"))
    if not isinstance(data, dict):
        raise UserError(f"{path}: the link catalog must map link names to link specs")
    return data


def _link_from_mapping(name: str, data: Any, where: str) -> LinkSpec:
    if not isinstance(data, dict):
        raise UserError(f"{where}: link {name!r} must be a mapping")
    _check_keys(data, where, _LINK_REQUIRED, _LINK_OPTIONAL)
    sources: dict[str, str] = {}
    kind = _text(data["kind"], where, "kind", sources)
    bandwidth = _number(data["bandwidth_bytes_per_s"], where, "bandwidth_bytes_per_s", sources)
    latency = _number(data["latency_s"], where, "latency_s", sources)
    max_gpus = 0
    if "max_gpus" in data:
        max_gpus = int(_number(data["max_gpus"], where, "max_gpus", sources))
    return LinkSpec(
        name=name,
        kind=kind,
        bandwidth_bytes_per_s=bandwidth,
        latency_s=latency,
        sources=sources,
        max_gpus=max_gpus,
    )


def load_link(name_or_path: str) -> LinkSpec:
    """A LinkSpec from a catalog name (``nvlink4``) or a path to a YAML file holding one
    link mapping (its ``name`` field, or the file stem, names it)."""
    _check_name("link", name_or_path)
    if _looks_like_path(name_or_path):
        path = _existing_file(Path(name_or_path).expanduser(), "link spec")
        data = _read_yaml(path)
        name = data.get("name", path.stem) if isinstance(data, dict) else path.stem
        return _link_from_mapping(str(name), data, str(path))
    if name_or_path == NO_LINK:
        raise UserError(f"{NO_LINK!r} means no link; it cannot be loaded as one")
    catalog_path = (specs_dir() / "links.yaml").resolve()
    links = _links_file(catalog_path)
    name_or_path = _catalog_name(name_or_path, list(links))
    if name_or_path not in links:
        raise CatalogNameError("link", name_or_path, sorted(links))
    return _link_from_mapping(name_or_path, links[name_or_path], f"{catalog_path} [{name_or_path}]")


# ----------------------------------------------------------------------------- models
def load_model(name_or_path: str) -> ModelSpec:
    """A ModelSpec from a catalog name (``llama-3.1-8b``), a path to a config.json, or a
    directory that contains a config.json (as a downloaded Hugging Face model does).
    A bare catalog name wins over a same-named folder in the working directory."""
    _check_name("model", name_or_path)
    known = list_models()
    is_catalog_name = not _looks_like_path(name_or_path) and (
        _catalog_name(name_or_path, known) in known
    )
    if not is_catalog_name and (
        _looks_like_path(name_or_path) or _is_dir(Path(name_or_path).expanduser())
    ):
        path = Path(name_or_path).expanduser()
        if _is_dir(path):
            path = path / "config.json"
            if not path.is_file():
                raise UserError(f"{path.parent}: directory has no config.json")
        path = _existing_file(path, "model config")
        # A Hugging Face download is a folder holding config.json: name it after the folder.
        name = path.parent.name if path.name == "config.json" else path.stem
        return _model_from_file(_file_key(path), name)
    name_or_path = _catalog_name(name_or_path, known)
    path = specs_dir() / "models" / f"{name_or_path}.json"
    if not path.is_file():
        raise CatalogNameError("model", name_or_path, known)
    return _model_from_file(_file_key(path.resolve()), name_or_path)


@functools.lru_cache(maxsize=128)
def _model_from_file(key: tuple[Path, int, int], name: str) -> ModelSpec:
    path = key[0]
    return model_spec_from_hf_config(_read_json(path), name=name, source=str(path))
