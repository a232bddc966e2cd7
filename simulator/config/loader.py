"""Read a scenario YAML safely, apply ``--set`` overrides, report every error at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.config.scenario import Scenario
from simulator.errors import UnknownNameError, UserError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"engine.max_num_seqs=128"`` -> (["engine", "max_num_seqs"], 128); the value is YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected dotted.key=value, e.g. engine.max_num_seqs=128")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {text!r}: value is not valid YAML ({exc.problem})") from None
    return [part for part in key.strip().split(".")], value


def set_dotted(data: dict, key: str | list[str], value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for the key ``"a.b"`` (or ``["a", "b"]``), creating
    sections as needed."""
    parts = key.split(".") if isinstance(key, str) else key
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each ``dotted.key=value`` in a nested dict (creating sections as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(data, path, value)
    return data


def _data_path(loc: tuple, data: object) -> list[str]:
    """The error location as keys of the user's data: union tags pydantic adds
    (``poisson`` in ``arrival.poisson.rate_per_s``) are not keys and are dropped."""
    parts: list[str] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif not last:
                continue  # a tag of a tagged union, not a key
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        parts.append(str(part))
    return parts


def _format_error(err: dict, data: object) -> str:
    loc = ".".join(_data_path(err["loc"], data))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if err["type"] == "missing":
        return f"{loc}: required key is missing"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    return f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}"


def _catalog_errors(data: dict) -> list[str]:
    from simulator.specs.catalog import load_gpu, load_link, load_model

    errors: list[str] = []
    hardware = data.get("hardware") if isinstance(data.get("hardware"), dict) else {}
    checks = [
        ("model", data.get("model"), load_model),
        ("hardware.gpu", hardware.get("gpu"), load_gpu),
        ("hardware.interconnect", hardware.get("interconnect"), load_link),
    ]
    for field, value, loader in checks:
        if isinstance(value, str):
            try:
                loader(value)
            except UnknownNameError as exc:
                errors.append(f"{field}: {exc}")
            except UserError as exc:
                errors.extend(f"{field}: {m}" for m in exc.messages)
    return errors


def scenario_from_dict(
    data: Any, *, source: str = "<scenario>", base_dir: Path | None = None
) -> Scenario:
    """Validate a scenario mapping; raise UserError listing every problem with its dotted path.
    Relative paths in it resolve from ``base_dir`` (default: the working directory)."""
    if not isinstance(data, dict):
        raise UserError(
            f"{source}: a scenario must be a mapping of keys, got {type(data).__name__}"
        )
    errors = _catalog_errors(data)
    if "base_dir" in data:
        errors.append("base_dir: unknown key")
    try:
        given = {**data, "base_dir": Path(base_dir)} if base_dir is not None else data
        scenario = Scenario.model_validate(given)
    except ValidationError as exc:
        errors.extend(_format_error(e, data) for e in exc.errors())
        scenario = None
    if errors:
        raise UserError([f"{source}: {e}" for e in dict.fromkeys(errors)])
    return scenario


def read_scenario_file(path: Path) -> Any:
    """The parsed YAML of a scenario file; a missing file or bad YAML is a ``UserError``
    naming the file (and the line and column of a syntax error)."""
    if not path.is_file():
        raise UserError(f"scenario file {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load and validate a scenario file; relative paths inside it resolve from its folder."""
    path = Path(path)
    data = read_scenario_file(path)
    if isinstance(data, dict):
        data = apply_overrides(data, overrides or [])
    return scenario_from_dict(data, source=str(path), base_dir=path.resolve().parent)
